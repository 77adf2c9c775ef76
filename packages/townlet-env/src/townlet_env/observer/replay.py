"""`ReplaySource`: a recording played back through the observer, with a scrubber (`seek`).

The Replayer re-simulates the recording and verifies its checksums; this source only paces it,
and moves its cursor between ticks on the stepping thread, as LiveSource applies commands.

The timeline of the whole recording (deaths, exits with their reason, events starting and
ending, regenerations) is found by a second Replayer that runs through the recording once in a
thread of its own (`TimelineScan`), with the same code that finds them in a live town: the page
can mark and jump to what happens later than the cursor, and a replay shows the markers a live
run of the same seed showed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from townlet_env.observer import frames, life
from townlet_env.observer.arguments import CommandError, _int
from townlet_env.observer.source_base import ThreadedSource
from townlet_env.recording import Recording, RecordingError, Replayer, load_recording

MAX_SCANNED_MARKERS = 100_000  # a recording with more keeps the first ones (a note says so)


class TimelineScan:
    """The markers of every town of a recording, found by re-simulating it once."""

    def __init__(self, recording: Recording) -> None:
        self.replayer = Replayer(recording, keep=False)
        self.markers: list[dict[str, Any]] = []
        self.known = 0  # ticks scanned so far
        self.error: str | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="townlet-observer-timeline", daemon=True)

    def start(self) -> TimelineScan:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return self.known >= self.replayer.ticks or self.error is not None

    def _run(self) -> None:
        rep = self.replayer
        town, interact = rep.town, rep.town.level.interact_action
        before = town.view()
        try:
            while rep.tick < rep.ticks and not self._stopping:
                out = rep.step()
                view = town.view()
                reasons = life.exit_reasons(town.level, out.economy.get("exit_reason"))
                happened = frames.events(before, view, rep.tick, interact, None, out.terminated, reasons)
                room = MAX_SCANNED_MARKERS - len(self.markers)
                self.markers.extend([e for e in happened if e["kind"] in life.MARKER_KINDS][: max(room, 0)])
                before, self.known = view, rep.tick
        except RecordingError as exc:  # the playback meets the same mismatch and says so
            self.error = str(exc)


class ReplaySource(ThreadedSource):
    kind = "replay"
    thread_name = "townlet-observer-replay"
    commands = ("pause", "resume", "step", "speed", "watch", "seek")

    def __init__(self, path: str | Path, watched: list[int] | None = None, speed: float = 10.0) -> None:
        recording = load_recording(path)
        self.replayer = Replayer(recording)
        super().__init__(self.replayer.town, watched, speed)
        self.length = self.replayer.ticks
        self.scan = TimelineScan(recording)
        self._seek_to: int | None = None
        self.finished = threading.Event()

    def hello(self, role: str) -> dict[str, Any]:
        return {**super().hello(role), "ticks": self.length}

    def start(self) -> None:
        self.scan.start()
        super().start()

    def stop(self) -> None:
        self.scan.stop()
        super().stop()

    def join(self, timeout: float | None = None) -> None:
        self.scan.join(timeout)
        super().join(timeout)

    def timeline(self, watched: list[int]) -> dict[str, Any]:
        scan = self.scan
        known = scan.known  # read before the markers: every marker up to it is in the list
        markers = life.nearest(scan.markers[: len(scan.markers)], watched, self.tick)
        return {"end": self.length, "known": known, "markers": markers}

    def _settings(self) -> tuple[Any, ...]:
        # the first pass's progress, in tenths, is a setting too: a paused replay republishes
        # its tick when more of the timeline is known
        progress = self.scan.known * 10 // max(1, self.length)
        return (*super()._settings(), progress, self.scan.done)

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
                self._publish(out.executed, terminated=out.terminated, exits=out.economy.get("exit_reason"))
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
