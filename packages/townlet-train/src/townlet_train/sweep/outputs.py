"""Writing the outputs of `seeds` and `sweep`: each file atomically (temporary file, fsync,
rename), none replaced without --force; and the progress line."""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from townlet_env.files import atomic_output, check_output


def check_outputs(paths: list[Path], force: bool) -> None:
    """Before any work: refuse outputs that exist (without --force)."""
    for path in paths:
        check_output(path, force)


def write_text(path: Path, text: str, force: bool) -> None:
    with atomic_output(path, force) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any, force: bool) -> None:
    write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n", force)


def write_figure(path: Path, draw: Callable[[], Any], force: bool) -> None:
    """`draw()` returns a matplotlib Figure (or Axes); saved as PNG, then closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are marked experimental
        drawn = draw()
    figure = getattr(drawn, "figure", drawn)
    try:
        figure.tight_layout()
        with atomic_output(path, force) as tmp:
            figure.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(figure)


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def interval(ci: list[float] | None) -> str:
    return "-" if not ci else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


class Watch:
    """Progress: on a terminal one line rewritten in place; otherwise a plain line whenever the
    counts change (and at most every `every` seconds while they do not)."""

    def __init__(self, stream: TextIO | None = None, every: float = 30.0):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.every, self.last_line, self.last_time = every, "", 0.0

    def show(self, line: str) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        elif line != self.last_line or now - self.last_time >= self.every:
            self.stream.write(line + "\n")
        else:
            return
        self.stream.flush()
        self.last_line, self.last_time = line, now

    def close(self) -> None:
        if self.tty and self.last_line:
            self.stream.write("\n")
            self.stream.flush()
