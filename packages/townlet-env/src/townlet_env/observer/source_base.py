"""`Source`: what the observer's server talks to, and what every source of ticks shares.

The server only talks to a `Source`: it asks for the hello message, forwards admin commands,
and subscribes clients to the source's hub. The concrete sources (`source.LiveSource`,
`source.TrainerSource`, `replay.ReplaySource`) say where ticks come from; this module holds the
commands, pacing and tick messages they have in common, so that one more kind of source is one
more subclass, with no change to the server or the page.

Commands arrive on the server's event loop while the town steps on another thread: they only
change fields under `_lock`, and anything that touches the town itself (difficulty, a console
action) is picked up by the stepping thread between ticks.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from townlet_env.core.town import Town, TownView
from townlet_env.observer import frames, life
from townlet_env.observer.arguments import CommandError, _int, _number
from townlet_env.observer.hub import Hub, Mailbox
from townlet_env.observer.schema import VERSION

MAX_WATCHED = 16
MAX_STEP = 1000
MAX_SPEED = 1000.0
# Each tick message repeats the events of the last EVENT_TICKS ticks (at most MAX_EVENTS), so
# a client that missed ticks to latest-wins still sees what happened in them.
EVENT_TICKS = 32
MAX_EVENTS = 64
# The timeline's markers (deaths, exits, events starting and ending, regenerations): a source
# keeps the newest MAX_MARKERS_KEPT of every watched town (a tick message: see life.nearest).
MAX_MARKERS_KEPT = 4096


# Every field a command sets (and the stepping thread reads under the lock): what an undone
# command puts back. A new command that sets another field adds it here.
COMMANDED = (
    "paused",
    "_steps_left",
    "speed",
    "watched",
    "controlled",
    "_difficulty",
    "_console_action",
    "_seek_to",
    "_event_commands",
)


class Source:
    kind = "source"
    commands: tuple[str, ...] = ("pause", "resume", "step", "watch")

    def __init__(self, town: Town, watched: list[int] | None = None, speed: float = 0.0) -> None:
        self.town = town
        self.hub = Hub()
        self._lock = threading.Condition()
        self._stopping = False
        self.tick = 0
        self.paused = False
        self.speed = speed
        self._steps_left = 0  # ticks still to run while paused ('step n')
        self.watched = list(watched if watched is not None else range(min(4, town.num_towns)))
        self.controlled: int | None = None
        self._before: TownView | None = None
        self._recent: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._markers: deque[dict[str, Any]] = deque(maxlen=MAX_MARKERS_KEPT)
        self._last_text: str | None = None
        self._shown: tuple[Any, ...] = ()  # the settings the last published tick showed
        self._last_actions: torch.Tensor | None = None
        self._last_training: dict[str, Any] | None = None

    # --- what the server asks ---------------------------------------------------------------

    def hello(self, role: str) -> dict[str, Any]:
        with self._lock:
            watched = list(self.watched)
        return frames.hello(self.town, role, self.kind, watched, list(self.commands))

    def subscribe(self, box: Mailbox) -> None:
        """Give a new client the latest tick at once, so a paused source is not a blank page."""
        if self._last_text is not None:
            box.put(self._last_text)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": VERSION,
            "source": self.kind,
            "tick": self.tick,
            "paused": self.paused,
            "clients": self.hub.clients,
        }

    def command(self, msg: dict[str, Any], audit: Callable[[], None] | None = None) -> dict[str, Any]:
        """Apply one admin command; return what it set, or raise CommandError changing nothing.
        `audit` runs after the command is checked and set, still under the lock (the stepping
        thread has not seen it): if it raises, every setting is put back and the error goes on,
        so a command that cannot be audited never takes effect."""
        name = msg.get("command")
        if not isinstance(name, str) or name not in self.commands:
            known = ", ".join(self.commands)
            raise CommandError(f"unknown command {repr(name)[:40]} for a {self.kind} source (known: {known})")
        handler: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, f"_cmd_{name}")
        with self._lock:
            before = {key: copy.copy(getattr(self, key)) for key in COMMANDED if hasattr(self, key)}
            detail = handler(msg)
            if audit is not None:
                try:
                    audit()
                except BaseException:
                    for key, value in before.items():
                        setattr(self, key, value)
                    raise
            self._lock.notify_all()
        return detail

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()

    # --- commands every source has -----------------------------------------------------------

    def _cmd_pause(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.paused, self._steps_left = True, 0
        return {"paused": True}

    def _cmd_resume(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.paused, self._steps_left = False, 0
        return {"paused": False}

    def _cmd_step(self, msg: dict[str, Any]) -> dict[str, Any]:
        n = _int(msg, "n", 1, MAX_STEP, default=1)
        self.paused, self._steps_left = True, self._steps_left + n
        return {"paused": True, "steps": self._steps_left}

    def _cmd_watch(self, msg: dict[str, Any]) -> dict[str, Any]:
        towns = msg.get("towns")
        n = self.town.num_towns
        if (
            not isinstance(towns, list)
            or not 1 <= len(towns) <= MAX_WATCHED
            or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < n for t in towns)
        ):
            raise CommandError(f"'towns' must be a list of 1-{MAX_WATCHED} town indices in [0, {n})")
        self.watched = list(dict.fromkeys(towns))
        return {"watched": self.watched}

    def _cmd_speed(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.speed = _number(msg, "value", 0.0, MAX_SPEED)
        return {"speed": self.speed}

    # --- for the stepping thread -------------------------------------------------------------

    def _pending(self) -> bool:
        """Work for the stepping thread that must not wait for a step (a replay's seek); called
        under `_lock`."""
        return False

    def _pace(self, started: float) -> None:
        """Sleep out the rest of this tick's time slot, waking early for any command."""
        with self._lock:
            while not self._stopping and self.speed > 0 and not self.paused and not self._pending():
                left = started + 1.0 / self.speed - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)

    def _gate(self, release: Callable[[], bool] | None = None) -> bool:
        """Wait while paused with no steps owed; False once the source is stopping. While it
        waits, a command that changed what a tick shows (pause, watch, control) republishes the
        current tick, so clients see it without a step."""
        while True:
            with self._lock:
                if self._stopping:
                    return False
                if self._pending():
                    return True
                if not self.paused or self._steps_left > 0:
                    if self.paused:
                        self._steps_left -= 1
                    return True
                if release is not None and release():  # e.g. Ctrl-C: let the owner stop cleanly
                    return True
                stale = self._settings() != self._shown
                if not stale:
                    self._lock.wait(0.5)
            if stale:
                self._publish(self._last_actions, self._last_training)

    def _settings(self) -> tuple[Any, ...]:
        return (self.paused, self.speed, tuple(self.watched), self.controlled)

    def _publish(
        self,
        actions: torch.Tensor | None,
        training: dict[str, Any] | None = None,
        terminated: torch.Tensor | None = None,
        exits: torch.Tensor | None = None,
    ) -> None:
        """Send the current state of the watched towns; `actions`, `terminated` and `exits` (an
        economy level's exit reason codes) are the last tick's, per slot, when known."""
        with self._lock:
            watched, controlled = list(self.watched), self.controlled
            paused, speed = self.paused, self.speed
            self._shown = self._settings()
        self._last_actions, self._last_training = actions, training
        view = self.town.view(watched)
        mine = frames.watched_slots(self.town, watched, actions)
        ended = frames.watched_slots(self.town, watched, terminated)
        interact = self.town.level.interact_action
        reasons = life.exit_reasons(self.town.level, frames.watched_slots(self.town, watched, exits))
        happened = frames.events(self._before, view, self.tick, interact, mine, ended, reasons)
        self._recent.extend(happened)
        self._markers.extend(e for e in happened if e["kind"] in life.MARKER_KINDS)
        self._before = view
        events = [e for e in self._recent if e["tick"] > self.tick - EVENT_TICKS]
        msg = {
            "type": "tick",
            "version": VERSION,
            "tick": self.tick,
            "paused": paused,
            "speed": speed,
            "controlled": controlled,
            "towns": frames.town_objects(self.town, view, actions),
            "events": events,
            "timeline": self.timeline(watched),
            "training": _finite(training) if training is not None else None,
        }
        self._last_text = json.dumps(msg, separators=(",", ":"))
        self.hub.publish(self._last_text)

    def latest(self) -> dict[str, Any] | None:
        """The last tick message published (without its per-client `dropped`), or None."""
        return None if self._last_text is None else dict(json.loads(self._last_text))

    def timeline(self, watched: list[int]) -> dict[str, Any]:
        """The `timeline` of a tick message: the markers seen since the source started."""
        return {
            "end": self.tick,
            "known": self.tick,
            "markers": life.nearest(self._markers, watched, self.tick),
        }


def _finite(figures: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a figure not known yet (no episode ended) is null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in figures.items()}


class ThreadedSource(Source):
    """A source whose ticks come from a thread of its own (`_run`), started by `start()`."""

    thread_name = "townlet-observer"
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError


__all__ = ["COMMANDED", "CommandError", "Source", "ThreadedSource"]
