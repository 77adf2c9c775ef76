"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM end it with a checkpoint.

While a run is active the first signal only records a request; the loop finishes its current
step, saves, and returns. A second signal raises KeyboardInterrupt at once, abandoning a save in
progress: saves write a temporary file and rename it, so the checkpoints already on disk stay
intact. The previous handlers come back when the run ends.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Context manager; `received` is the first stop signal's number, or None."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received is not None else None

    def __enter__(self) -> StopRequests:
        # Python delivers signals to the main thread only; a run in another thread keeps the
        # process's handlers (and Ctrl-C raises KeyboardInterrupt in the main thread as usual).
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = number

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        for number, previous in self._previous.items():
            # None: a handler installed outside Python, which cannot be put back; the default
            # is the nearest thing.
            signal.signal(number, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
