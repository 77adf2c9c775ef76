"""The town's life for the page on social and economy levels: ties, queues, jobs, active events,
and the markers of the episode's timeline.

Everything is read from a `TownView` (a copy), so a live town, a trainer and a replay show the
same thing for the same state. Numbers that only the pack knows (employers' places and shifts,
the event catalogue, exit reasons) go out once, in the hello's `level.economy`.
"""

from __future__ import annotations

from typing import Any

import torch

from townlet_env.core import CompiledLevel
from townlet_env.core.economy import HOURS_PER_DAY, LATE, ON_TIME
from townlet_env.core.town import TownView

# event kinds that mark the timeline: what changed the course of a town, not every use
MARKER_KINDS = ("death", "exit", "event_start", "event_end", "regeneration")
# `job.shift` values, from the state of a job at one tick
SHIFT_STATES = ("fired", "off", "absent", "due", "overdue", "on_time", "late")
MAX_MARKERS = 256  # a tick message's timeline carries at most these, those nearest the current tick


def describe_economy(level: CompiledLevel) -> dict[str, Any] | None:
    """The `level.economy` object of the hello: employers, the event catalogue, exit reasons."""
    tables = level.economy
    if tables is None:
        return None
    names = list(level.affordance_names)
    jobs = tables.spec.jobs
    return {
        "employers": [
            {"place": names.index(e.place), "shift": list(e.shift), "wage": float(e.wage)}
            for e in jobs.employers
        ],
        "events": [
            {"name": e.name, "kind": e.kind, "targets": [names.index(t) for t in e.targets]}
            for e in tables.spec.events.catalogue
        ],
        "exit_reasons": list(tables.exit_reasons),
        "grace": int(jobs.grace),
        "absences_to_fire": int(jobs.absences_to_fire),
    }


def ties(view: TownView, i: int) -> dict[str, Any] | None:
    """Town row i's ties: `trust[a][b]` is agent a's trust toward agent b (slot order)."""
    if view.trust is None or view.familiarity is None or view.rivalry is None:
        return None
    return {
        name: [[round(v, 3) for v in row] for row in getattr(view, name)[i].float().tolist()]
        for name in ("trust", "familiarity", "rivalry")
    }


def queues(view: TownView, i: int, first_slot: int, n_affordances: int) -> list[list[int]] | None:
    """Per affordance, the slots queued on it in serving order (the first is served next)."""
    if view.queue_position is None:
        return None
    out: list[list[tuple[int, int]]] = [[] for _ in range(n_affordances)]
    where, place = view.affordance[i].tolist(), view.queue_position[i].tolist()
    for j, (a, p) in enumerate(zip(where, place, strict=True)):
        if p >= 0 and a >= 0:
            out[a].append((p, first_slot + j))
    return [[slot for _, slot in sorted(q)] for q in out]


def jobs(level: CompiledLevel, view: TownView, i: int) -> list[dict[str, Any]] | None:
    """One `job` object per agent of town row i (None on a level without jobs)."""
    tables = level.economy
    if tables is None or view.employer is None or view.employed is None or view.shift_status is None:
        return None
    assert view.absences is not None and view.firings is not None and view.absent_last is not None
    hour = int(view.clock[i]) % HOURS_PER_DAY
    grace = tables.spec.jobs.grace
    place, start, end = tables.place.tolist(), tables.shift_start.tolist(), tables.shift_end.tolist()
    out = []
    for j, e in enumerate(view.employer[i].tolist()):
        on_site = bool(view.alive[i, j]) and int(view.affordance[i, j]) == place[e]
        status = int(view.shift_status[i, j])
        if not bool(view.employed[i, j]):
            shift = "fired"
        elif not start[e] <= hour < end[e]:
            shift = "absent" if bool(view.absent_last[i, j]) else "off"
        elif status == ON_TIME:
            shift = "on_time"
        elif status == LATE:
            shift = "late"
        else:
            shift = "due" if hour - start[e] < grace else "overdue"
        out.append(
            {
                "employer": e,
                "shift": shift,
                "on_site": on_site,
                "absences": int(view.absences[i, j]),
                "firings": int(view.firings[i, j]),
            }
        )
    return out


def active_events(view: TownView, i: int) -> list[dict[str, Any]] | None:
    """The catalogue events active in town row i: index, ticks left and drawn value."""
    if view.events is None or view.event_left is None or view.event_value is None:
        return None
    left, value = view.event_left[i].tolist(), view.event_value[i].float().tolist()
    return [
        {"event": e, "left": left[e], "value": round(value[e], 3)}
        for e, on in enumerate(view.events[i].tolist())
        if on
    ]


def town_events(
    before: TownView, after: TownView, i: int, town: int, tick: int, regenerated: bool
) -> list[dict[str, Any]]:
    """Catalogue events that started or ended in town row i between two views."""
    if before.events is None or after.events is None or regenerated:
        return []
    was, now = before.events[i].tolist(), after.events[i].tolist()
    out: list[dict[str, Any]] = []
    for e, (a, b) in enumerate(zip(was, now, strict=True)):
        if a != b:
            kind = "event_start" if b else "event_end"
            out.append({"kind": kind, "tick": tick, "town": town, "event": e})
    return out


def exit_reasons(level: CompiledLevel, codes: torch.Tensor | None) -> list[str] | None:
    """Per watched slot, the name of why its agent left this tick ('' when it did not)."""
    if codes is None or level.economy is None:
        return None
    names = level.economy.exit_reasons
    return [names[c] if c else "" for c in codes.tolist()]


def nearest(markers: Any, watched: list[int], tick: int) -> list[dict[str, Any]]:
    """The markers of the watched towns, at most MAX_MARKERS of them (those nearest `tick`), by tick."""
    mine = [m for m in markers if m["town"] in watched]
    if len(mine) > MAX_MARKERS:
        mine = sorted(mine, key=lambda m: abs(m["tick"] - tick))[:MAX_MARKERS]
        mine.sort(key=lambda m: m["tick"])
    return mine
