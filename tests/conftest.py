"""Shared fixtures for the test suite."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, settings

# Tests use small tensors, where a second thread costs more than it gives on a shared 2-core machine.
torch.set_num_threads(1)

# CI gets more examples; local runs stay quick. Deadlines are off: machines are shared and noisy.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# --- a real filesystem that fills up ----------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test: a real full disk, not a mocked write. Mounting needs
    root, which CI has; elsewhere the test is skipped and says why."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a full-disk test mounts a small tmpfs, which needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(directory: Path, leave: int) -> None:
    """Fill the filesystem of `directory` until about `leave` bytes remain free."""
    filler = directory / ".filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    with filler.open("r+b") as f:
        f.truncate(max(filler.stat().st_size - leave, 0))


@pytest.fixture
def filled() -> Any:
    """`filled(directory, leave)`: fill the filesystem of `directory` but `leave` bytes."""
    return fill
