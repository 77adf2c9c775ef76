"""Progress while training: throughput, episodes, survival, stages, epsilon, loss. On a terminal a
live table (rich); otherwise (CI, nohup, a cluster job's log) one plain line every 30 seconds."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

PLAIN_EVERY = 30.0  # seconds between two plain lines


class Progress:
    """Redraws a one-row table at most twice a second on a terminal; prints a plain line at least
    every 30 seconds when stderr is not one; silent when disabled."""

    def __init__(self, enabled: bool, total: int):
        self.total = total
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.plain = enabled and not self.console.is_terminal
        self.last_line = time.perf_counter()
        live = enabled and not self.plain
        self.live = Live(console=self.console, refresh_per_second=2, transient=False) if live else None
        if self.live is not None:
            self.live.start()
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.first_steps: int | None = None

    def update(self, steps: int, summary: dict[str, Any], stats: dict[str, float]) -> None:
        now = time.perf_counter()
        if self.first_steps is None:
            self.first_steps, self.started = steps, now
        if self.plain and now - self.last_line >= PLAIN_EVERY:
            self.last_line = now
            print(self.line(steps, summary, stats, now), file=sys.stderr, flush=True)
        if self.live is None:
            return
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
            "beta" if "beta" in summary else "epsilon",
            "loss",
            "eval",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            f"{steps:,}/{self.total:,}",
            f"{rate:,.0f}",
            f"{summary['episodes']:,}",
            f"{summary['mean_survival']:.1f}",
            f"{summary['mean_stage']:.2f}",
            f"{summary.get('beta', summary['epsilon']):.3f}",
            f"{stats['loss']:.4f}" if "loss" in stats else "-",
            f"{summary['eval']:.1f}" if summary.get("eval") is not None else "-",
        )
        self.live.update(table)

    def line(self, steps: int, summary: dict[str, Any], stats: dict[str, float], now: float) -> str:
        rate = (steps - (self.first_steps or 0)) / max(now - self.started, 1e-9)
        loss = f"{stats['loss']:.4f}" if "loss" in stats else "-"
        evaluation = f" eval {summary['eval']:.1f}" if summary.get("eval") is not None else ""
        explore = "beta" if "beta" in summary else "epsilon"  # DAgger's beta; epsilon-greedy's epsilon
        return (
            f"agent-steps {steps:,}/{self.total:,} ({rate:,.0f}/s) episodes {summary['episodes']:,} "
            f"survival {summary['mean_survival']:.1f} stage {summary['mean_stage']:.2f} "
            f"{explore} {summary.get(explore, 0.0):.3f} loss {loss}{evaluation}"
        )

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
