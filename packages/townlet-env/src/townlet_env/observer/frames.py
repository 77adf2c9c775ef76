"""Telemetry messages built from a `Town`: the level description and one tick of watched towns.

Events are found by comparing two consecutive views of the same towns, so the same code serves
a live town (one view per tick) and a trainer (one view per published frame, several ticks
apart): a death is an agent alive before and dead now, a newcomer a slot whose life restarted,
a regeneration a town whose clock went back, a use an agent that made progress or stands on an
affordance after INTERACT.
"""

from __future__ import annotations

from typing import Any

import torch

from townlet_env.core import CompiledLevel
from townlet_env.core.town import Town, TownView
from townlet_env.observer import life
from townlet_env.observer.schema import VERSION


def describe(level: CompiledLevel) -> dict[str, Any]:
    """The `level` object of the hello message."""
    thresholds: dict[str, float] = {}
    for group in level.config.cascades.groups:
        for cascade in group.cascades:
            # the highest threshold is where the meter first starts to hurt another one
            thresholds[cascade.source] = max(thresholds.get(cascade.source, 0.0), float(cascade.threshold))
    walls = level.walls.nonzero().tolist()  # [y, x] rows
    return {
        "name": level.name,
        "width": int(level.width),
        "height": int(level.height),
        "walls": [[x, y] for y, x in walls],
        "meters": list(level.meter_names),
        "thresholds": [thresholds.get(name) for name in level.meter_names],
        "terminal": [bool(t) for t in level.terminal.tolist()],
        "affordances": list(level.affordance_names),
        "actions": list(level.action_names),
        "day_cycle": bool(level.day_cycle),
        "max_steps": int(level.max_steps),
        "social": level.social is not None,
        "economy": life.describe_economy(level),
    }


def hello(town: Town, role: str, source: str, watched: list[int], commands: list[str]) -> dict[str, Any]:
    return {
        "type": "hello",
        "version": VERSION,
        "role": role,
        "source": source,
        "level": describe(town.level),
        "num_towns": town.num_towns,
        "agents_per_town": town.agents_per_town,
        "watched": list(watched),
        "commands": commands,
    }


def town_objects(town: Town, view: TownView, actions: torch.Tensor | None) -> list[dict[str, Any]]:
    """One `town` object per viewed town; `actions` is [num_slots] of the last tick, or None."""
    k, n_aff = town.agents_per_town, town.level.n_affordances
    clock, hour = view.clock.tolist(), view.hour.tolist()
    aff_pos, pos = view.affordance_position.tolist(), view.position.tolist()
    meters = view.meters.float().clamp(0, 1).tolist()
    alive, progress = view.alive.tolist(), view.progress.tolist()
    lifetimes, underfoot = view.life_steps.tolist(), view.affordance.tolist()
    last = actions.tolist() if actions is not None else None
    places = view.queue_position.tolist() if view.queue_position is not None else None
    out = []
    for i, t in enumerate(view.towns.tolist()):
        occupancy = [0] * n_aff
        agents = []
        jobs = life.jobs(town.level, view, i)
        for j in range(k):
            slot = t * k + j
            if alive[i][j] and underfoot[i][j] >= 0:
                occupancy[underfoot[i][j]] += 1
            agent = {
                "slot": slot,
                "x": pos[i][j][0],
                "y": pos[i][j][1],
                "alive": bool(alive[i][j]),
                "meters": [round(m, 4) for m in meters[i][j]],
                "affordance": underfoot[i][j],
                "progress": progress[i][j],
                "life": lifetimes[i][j],
                "action": last[slot] if last is not None else None,
            }
            if places is not None:
                agent["queue"] = places[i][j]
            if jobs is not None:
                agent["job"] = jobs[j]
            agents.append(agent)
        obj = {
            "town": t,
            "clock": clock[i],
            "hour": hour[i],
            "affordances": aff_pos[i],
            "occupancy": occupancy,
            "agents": agents,
        }
        # social and economy levels only: the page draws what is there
        for key, value in (
            ("ties", life.ties(view, i)),
            ("queues", life.queues(view, i, t * k, n_aff)),
            ("events", life.active_events(view, i)),
        ):
            if value is not None:
                obj[key] = value
        out.append(obj)
    return out


def events(
    before: TownView | None,
    after: TownView,
    tick: int,
    interact: int,
    actions: torch.Tensor | None,
    terminated: torch.Tensor | None = None,
    reasons: list[str] | None = None,
) -> list[dict[str, Any]]:
    """What happened between two views of the same towns (nothing when the towns differ).

    `actions` and `terminated` are per watched slot, in view order, when known. Without
    `terminated` a death is inferred: with autoreset a dead agent is replaced in the same tick,
    so a restarted life in a town that was not regenerated means its predecessor died. With
    `reasons` (per watched slot, an economy level's exit reason names, '' for none) an agent
    that left is an `exit` with its reason rather than a `death`.
    """
    if before is None or not torch.equal(before.towns, after.towns):
        return []
    out: list[dict[str, Any]] = []
    towns = after.towns.tolist()
    k = after.alive.shape[1]
    regenerated = (after.clock < before.clock).tolist()
    died = (before.alive & ~after.alive).tolist()
    newcomer = (after.life_steps < before.life_steps).tolist()
    underfoot = after.affordance.tolist()
    progressed = (after.progress > before.progress).tolist()
    shape = (len(towns), k)
    acted = (actions == interact).view(shape).tolist() if actions is not None and interact >= 0 else None
    ended = terminated.view(shape).tolist() if terminated is not None else None
    for i, t in enumerate(towns):
        for j in range(k):
            slot = t * k + j
            inferred = died[i][j] or (newcomer[i][j] and not regenerated[i])
            why = reasons[i * k + j] if reasons is not None else ""
            if why:
                out.append({"kind": "exit", "tick": tick, "town": t, "slot": slot, "reason": why})
            elif ended[i][j] if ended is not None else inferred:
                out.append({"kind": "death", "tick": tick, "town": t, "slot": slot})
            if regenerated[i]:
                continue
            if newcomer[i][j]:
                out.append({"kind": "newcomer", "tick": tick, "town": t, "slot": slot})
            elif underfoot[i][j] >= 0 and (progressed[i][j] or (acted is not None and acted[i][j])):
                out.append(
                    {"kind": "use", "tick": tick, "town": t, "slot": slot, "affordance": underfoot[i][j]}
                )
        out += life.town_events(before, after, i, t, tick, regenerated[i])
        if regenerated[i]:
            out.append({"kind": "regeneration", "tick": tick, "town": t})
    return out


def watched_slots(town: Town, towns: list[int], per_slot: torch.Tensor | None) -> torch.Tensor | None:
    """The rows of a per-slot tensor (actions, terminated) for the watched towns, in view order."""
    if per_slot is None:
        return None
    actions = per_slot
    k = town.agents_per_town
    index = torch.tensor(towns, dtype=torch.long, device=actions.device)
    slots = (index[:, None] * k + torch.arange(k, device=actions.device)).flatten()
    return actions.index_select(0, slots)
