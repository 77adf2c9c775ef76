"""`townlet-train train --observe [PORT]`: the observer page attached to a training run.

The trainer calls `observer.after_step(trainer, stats)` once per env step (one line in
Trainer.run). The figures are only computed when a frame goes out, at most 20 times a second
and only while someone watches, so an unwatched run pays one attribute check per step.
An admin's pause holds training between two steps until resume (or step N).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Observer:
    def __init__(
        self,
        trainer: Any,
        port: int,
        host: str = "127.0.0.1",
        audit: Path | None = None,
        paused: bool = False,
    ) -> None:
        try:
            from townlet_env.observer import AuditLog, TrainerSource
            from townlet_env.observer.server import ServerThread, create_app
        except ImportError:
            raise ValueError(
                '--observe needs the observer extra: pip install "townlet-env[observer]"'
            ) from None
        self.source = TrainerSource(trainer.env.town, paused=paused)
        self.audit = AuditLog(audit if audit is not None else Path(trainer.run_dir) / "observer-audit.jsonl")
        self.server = ServerThread(create_app(self.source, audit=self.audit), host, port).start()

    @property
    def url(self) -> str:
        return f"http://{self.server.server.config.host}:{self.server.port}/"

    def after_step(self, trainer: Any, stats: dict[str, float]) -> None:
        self.source.after_step(lambda: figures(trainer, stats))

    def close(self) -> None:
        self.source.stop()
        self.server.stop()


def figures(trainer: Any, stats: dict[str, float]) -> dict[str, Any]:
    """The `training` object of a tick message (docs/telemetry.md)."""
    summary = trainer.summary()
    return {
        "agent_steps": int(summary["agent_steps"]),
        "episodes": int(summary["episodes"]),
        "survival": float(summary["mean_survival"]),
        "stage": float(summary["mean_stage"]),
        "epsilon": float(summary["epsilon"]),
        "loss": float(stats["loss"]) if "loss" in stats else None,
    }


def attach(trainer: Any, port: int | None) -> Observer | None:
    """Start the observer for `trainer` (None: no --observe) and tell the user where it is."""
    if port is None:
        return None
    trainer.observer = Observer(trainer, port)
    print(f"observing at {trainer.observer.url} (audit log {trainer.observer.audit.path})")
    return trainer.observer
