"""The sources of ticks for the observer: a live town stepped by a thread of its own
(`LiveSource`), or a trainer's env stepped by training (`TrainerSource`). What every source
shares, and what the server talks to, is `Source` (`source_base`); a recording played back is
`replay.ReplaySource`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from townlet_env.core.town import Observation, Town
from townlet_env.observer.arguments import CommandError, EventCommands, _int, _number
from townlet_env.observer.source_base import (  # the shared part, importable from here too
    COMMANDED,
    EVENT_TICKS,
    MAX_EVENTS,
    MAX_MARKERS_KEPT,
    MAX_SPEED,
    MAX_STEP,
    MAX_WATCHED,
    Source,
    ThreadedSource,
)

MAX_DIFFICULTY = 10.0


Policy = Callable[[Observation], torch.Tensor]


def random_policy(seed: int) -> Policy:
    """Uniform over the legal actions, from a generator of its own (the same seed, the same run)."""
    draws = torch.Generator().manual_seed(seed)
    return lambda now: now.mask.float().cpu().multinomial(1, generator=draws).squeeze(1)


class LiveSource(EventCommands, ThreadedSource):
    """A town stepped by its own thread at `speed` ticks per second (0: as fast as it goes)."""

    thread_name = "townlet-observer-town"

    kind = "live"
    commands: tuple[str, ...] = (
        "pause",
        "resume",
        "step",
        "speed",
        "difficulty",
        "watch",
        "control",
        "release",
        "action",
    )
    economy_commands = ("trigger_event", "cancel_event")  # added on a level with events

    def __init__(
        self,
        town: Town,
        policy: Policy,
        watched: list[int] | None = None,
        speed: float = 10.0,
        max_ticks: int | None = None,
    ) -> None:
        super().__init__(town, watched, speed)
        self.policy = policy
        self.max_ticks = max_ticks
        self._difficulty: float | None = None  # set by a command, applied between ticks
        self._console_action: int | None = None
        # (trigger or cancel, town, event, duration, value), applied between ticks
        self._event_commands: list[tuple[str, int, str, int, float]] = []
        if town.level.economy is not None:  # only an economy level has events to trigger
            self.commands = (*LiveSource.commands, *self.economy_commands)
        self.finished = threading.Event()

    def start(self) -> None:
        if not self.town.started:
            self.town.reset()
        super().start()

    def _run(self) -> None:
        try:
            now = self.town.observe()
            self._publish(None)
            while (self.max_ticks is None or self.tick < self.max_ticks) and self._gate():
                if self._apply_events():  # at once, paused or not: the page shows it now
                    now = self.town.observe()  # an outage masks INTERACT from this state on
                    self._publish(None)
                    continue
                started = time.monotonic()
                out = self.town.step(self._actions(now))
                now = out
                self.tick += 1
                self._publish(out.executed, terminated=out.terminated, exits=out.economy.get("exit_reason"))
                self._pace(started)
        finally:
            self.finished.set()

    def _pending(self) -> bool:
        return bool(self._event_commands)

    def _actions(self, now: Observation) -> torch.Tensor:
        actions = self.policy(now).to(self.town.device)
        with self._lock:
            if self._difficulty is not None:
                self.town.set_difficulty(self._difficulty)
                self._difficulty = None
            if self.controlled is not None:
                chosen = self._console_action
                actions[self.controlled] = self.town.level.wait_action if chosen is None else chosen
                self._console_action = None
        return actions

    def _cmd_difficulty(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._difficulty = _number(msg, "value", 0.0, MAX_DIFFICULTY)
        return {"difficulty": self._difficulty}

    def _cmd_control(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.controlled = _int(msg, "slot", 0, self.town.num_slots - 1)
        self._console_action = None
        return {"controlled": self.controlled}

    def _cmd_release(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.controlled is None:
            raise CommandError("no slot is under console control")
        self.controlled = self._console_action = None
        return {"controlled": None}

    def _cmd_action(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.controlled is None:
            raise CommandError("take a slot with 'control' before sending actions")
        names = list(self.town.level.action_names)
        value = msg.get("action")
        if isinstance(value, str) and value in names:
            value = names.index(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(names):
            raise CommandError(f"'action' must be one of {', '.join(names)} or its index, got {value!r}")
        self._console_action = value
        return {"action": value}


class TrainerSource(Source):
    """Ticks driven by a training loop: `after_step` publishes at most `fps` frames a second
    (every step while paused or stepping) and blocks only when an admin paused training."""

    kind = "trainer"
    commands = ("pause", "resume", "step", "watch")

    def __init__(
        self, town: Town, watched: list[int] | None = None, fps: float = 20.0, paused: bool = False
    ) -> None:
        super().__init__(town, watched, speed=0.0)
        self.paused = paused  # paused from the start: training waits for an admin's resume
        self.interval = 1.0 / fps
        self._last_publish = -math.inf

    def after_step(
        self,
        training: Callable[[], dict[str, Any]],
        actions: torch.Tensor | None = None,
        release: Callable[[], bool] | None = None,
        terminated: torch.Tensor | None = None,
        exits: torch.Tensor | None = None,
    ) -> None:
        """`release` lets a paused run go on anyway (it is asked about twice a second);
        `terminated` and `exits` (exit reason codes) are the last step's, per slot, when known."""
        self.tick += 1
        now = time.monotonic()
        # Nobody watching costs nothing; the figures are only computed when a frame goes out.
        if (self.hub.clients or self.paused) and (self.paused or now - self._last_publish >= self.interval):
            self._last_publish = now
            self._publish(actions, training(), terminated, exits)
        self._gate(release)


__all__ = [
    "COMMANDED",
    "EVENT_TICKS",
    "MAX_DIFFICULTY",
    "MAX_EVENTS",
    "MAX_MARKERS_KEPT",
    "MAX_SPEED",
    "MAX_STEP",
    "MAX_WATCHED",
    "CommandError",
    "LiveSource",
    "Policy",
    "Source",
    "ThreadedSource",
    "TrainerSource",
    "random_policy",
]
