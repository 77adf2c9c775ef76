"""`townlet-train train --observe [PORT]`: the observer page attached to a training run.

The trainer calls `observer.after_step(trainer, stats)` once per env step (one line in
Trainer.run). The figures are only computed when a frame goes out, at most 20 times a second
and only while someone watches, so an unwatched run pays one attribute check per step.
An admin's pause holds training between two steps until resume (or step N).
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any


class Observer:
    def __init__(
        self,
        trainer: Any,
        port: int = 0,
        host: str = "127.0.0.1",
        audit: Path | None = None,
        paused: bool = False,
        sock: socket.socket | None = None,
    ) -> None:
        _check_extra()
        from townlet_env.observer import AuditLog, TrainerSource
        from townlet_env.observer.server import ServerThread, create_app

        self.source = TrainerSource(trainer.env.town, paused=paused)
        self.audit = AuditLog(audit if audit is not None else Path(trainer.run_dir) / "observer-audit.jsonl")
        app = create_app(self.source, audit=self.audit)
        self.server = ServerThread(app, host, port, sock=sock).start()

    @property
    def url(self) -> str:
        host, port = self.server.sock.getsockname()[:2]
        return f"http://{host}:{port}/"

    def after_step(self, trainer: Any, stats: dict[str, float]) -> None:
        self.source.after_step(
            lambda: figures(trainer, stats),
            actions=trainer.last_action,
            release=stop_requested,
            terminated=trainer.last_terminated,
            exits=trainer.info.get("exit_reason"),  # an economy level's reasons: evictions too
        )

    def close(self) -> None:
        self.source.stop()
        self.server.stop()


def stop_requested() -> bool:
    """Whether Ctrl-C or SIGTERM asked the run to stop: an admin's pause must not hold a run that
    its owner wants ended with a checkpoint. The run's StopRequests is the installed handler."""
    owner = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    return getattr(owner, "received", None) is not None


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


def _check_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        extra = 'pip install "townlet-env[observer]"'
        raise ValueError(f"--observe needs the observer extra: {extra}") from None


def listen(port: int | None, host: str = "127.0.0.1") -> socket.socket | None:
    """Take the port before anything else happens (None: no --observe), so that a port in use
    is one error line before a run directory is made."""
    if port is None:
        return None
    _check_extra()
    from townlet_env.observer.server import listen as bind

    return bind(host, port)


def attach(trainer: Any, sock: socket.socket | None) -> Observer | None:
    """Start the observer for `trainer` on a socket from `listen` and say where it is."""
    if sock is None:
        return None
    trainer.observer = Observer(trainer, sock=sock)
    print(f"observing at {trainer.observer.url} (audit log {trainer.observer.audit.path})")
    return trainer.observer


def run(trainer: Any, total: int, sock: socket.socket | None) -> dict[str, Any]:
    """`trainer.run(total)`, watched on `sock` (from `listen`) when there is one."""
    observer = attach(trainer, sock)
    try:
        result: dict[str, Any] = trainer.run(total)
        return result
    finally:
        if observer is not None:
            observer.close()
