"""Terminal progress while training (rich): throughput, episodes, survival, stages, epsilon, loss."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table


class Progress:
    """Redraws a one-row table at most twice a second; silent when disabled or not a terminal."""

    def __init__(self, enabled: bool, total: int):
        self.total = total
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.live = Live(console=self.console, refresh_per_second=2, transient=False) if enabled else None
        if self.live is not None:
            self.live.start()
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.first_steps: int | None = None

    def update(self, steps: int, summary: dict[str, Any], stats: dict[str, float]) -> None:
        if self.live is None:
            return
        now = time.perf_counter()
        if self.first_steps is None:
            self.first_steps, self.started = steps, now
        if now - self.last_draw < 0.5 and steps < self.total:
            return
        self.last_draw = now
        rate = (steps - self.first_steps) / max(now - self.started, 1e-9)
        table = Table(box=None, pad_edge=False)
        for column in (
            "agent-steps",
            "steps/s",
            "episodes",
            "mean survival",
            "mean stage",
            "epsilon",
            "loss",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            f"{steps:,}/{self.total:,}",
            f"{rate:,.0f}",
            f"{summary['episodes']:,}",
            f"{summary['mean_survival']:.1f}",
            f"{summary['mean_stage']:.2f}",
            f"{summary['epsilon']:.3f}",
            f"{stats['loss']:.4f}" if "loss" in stats else "-",
        )
        self.live.update(table)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
