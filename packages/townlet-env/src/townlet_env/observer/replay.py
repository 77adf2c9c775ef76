"""`ReplaySource`: a recording played back through the observer, with a scrubber (`seek`).

The Replayer re-simulates the recording and verifies its checksums; this source only paces it,
and moves its cursor between ticks on the stepping thread, as LiveSource applies commands.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from townlet_env.observer.source import CommandError, ThreadedSource, _int
from townlet_env.recording import Replayer


class ReplaySource(ThreadedSource):
    kind = "replay"
    thread_name = "townlet-observer-replay"
    commands = ("pause", "resume", "step", "speed", "watch", "seek")

    def __init__(self, path: str | Path, watched: list[int] | None = None, speed: float = 10.0) -> None:
        self.replayer = Replayer(path)
        super().__init__(self.replayer.town, watched, speed)
        self.length = self.replayer.ticks
        self._seek_to: int | None = None
        self.finished = threading.Event()

    def hello(self, role: str) -> dict[str, Any]:
        return {**super().hello(role), "ticks": self.length}

    def _run(self) -> None:
        try:
            self._publish(None)
            while self._gate():
                started = time.monotonic()
                if self._apply_seek():
                    continue
                if self.replayer.tick >= self.length:
                    with self._lock:  # the end: hold the last tick until a seek or a step back
                        self.paused, self._steps_left = True, 0
                    continue
                out = self.replayer.step()
                self.tick = self.replayer.tick
                self._publish(out.executed, terminated=out.terminated)
                self._pace(started)
        finally:
            self.finished.set()

    def _apply_seek(self) -> bool:
        with self._lock:
            target, self._seek_to = self._seek_to, None
        if target is None:
            return False
        self.replayer.seek(target)
        self.tick = self.replayer.tick
        self._before = None  # a jump is not a tick: no events between the two states
        self._publish(None)
        return True

    def _pending(self) -> bool:
        return self._seek_to is not None

    def _cmd_seek(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.length == 0:
            raise CommandError("the recording has no ticks to seek to")
        self._seek_to = _int(msg, "tick", 0, self.length)
        return {"tick": self._seek_to}
