"""What admin commands carry: checked arguments (a refusal names what is allowed), and the
commands that start and end a town's events (a live source on an economy level)."""

from __future__ import annotations

import math
import threading
from typing import Any

from townlet_env.core.town import Town

MAX_EVENT_TICKS, MAX_EVENT_VALUE = 10_000, 2.0  # what Town.trigger_event accepts


class CommandError(ValueError):
    """A refused command: the reason goes back to the client, and nothing changed."""


def _number(msg: dict[str, Any], key: str, low: float, high: float, default: float | None = None) -> float:
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommandError(f"'{key}' must be a number in [{low:g}, {high:g}], got {value!r}")
    if not low <= value <= high:
        raise CommandError(f"'{key}' must be in [{low:g}, {high:g}], got {value:g}")
    return float(value)


def _int(msg: dict[str, Any], key: str, low: int, high: int, default: int | None = None) -> int:
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CommandError(f"'{key}' must be a whole number in [{low}, {high}], got {value!r}")
    return value


class EventCommands:
    """`trigger_event` and `cancel_event`: checked and queued under the source's lock, applied by
    the stepping thread between ticks (`_apply_events`)."""

    town: Town
    _lock: threading.Condition
    _event_commands: list[tuple[str, int, str, int, float]]

    def _event_args(self, msg: dict[str, Any]) -> tuple[Any, str, int]:
        """The catalogue entry, name and town a trigger or cancel names, or a refusal naming
        the allowed values."""
        names = self.town.event_names
        name = msg.get("event")
        if not isinstance(name, str) or name not in names:
            raise CommandError(f"'event' must be one of {', '.join(names)}, got {repr(name)[:40]}")
        town = _int(msg, "town", 0, self.town.num_towns - 1)
        assert self.town.level.economy is not None  # the command exists only then
        return self.town.level.economy.spec.events.catalogue[names.index(name)], name, town

    def _cmd_trigger_event(self, msg: dict[str, Any]) -> dict[str, Any]:
        spec, name, town = self._event_args(msg)
        duration = _int(msg, "duration", 1, MAX_EVENT_TICKS, default=spec.duration[1])
        value = _number(msg, "value", 0.0, MAX_EVENT_VALUE, default=spec.multiplier[1])
        self._event_commands = [*self._event_commands, ("trigger", town, name, duration, value)]
        return {"event": name, "town": town, "duration": duration, "value": value}

    def _cmd_cancel_event(self, msg: dict[str, Any]) -> dict[str, Any]:
        _, name, town = self._event_args(msg)
        self._event_commands = [*self._event_commands, ("cancel", town, name, 0, 0.0)]
        return {"event": name, "town": town, "cancelled": True}

    def _apply_events(self) -> bool:
        with self._lock:
            todo, self._event_commands = self._event_commands, []
        for what, town, name, duration, value in todo:
            if what == "trigger":
                self.town.trigger_event(town, name, duration, value)
            else:
                self.town.cancel_event(town, name)
        return bool(todo)


__all__ = ["CommandError", "EventCommands"]
