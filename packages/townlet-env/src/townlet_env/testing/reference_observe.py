"""The plain-Python reference of what an agent sees (see `townlet_env.testing.reference`)."""

from __future__ import annotations

import math

from townlet_env.config import LevelConfig
from townlet_env.core.layout import ObservationLayout, build_layout
from townlet_env.testing.reference_economy import observe_economy
from townlet_env.testing.reference_social import observe_social
from townlet_env.testing.reference_state import HOURS_PER_DAY, RefState, affordance_under, on_grid


def ref_observe(cfg: LevelConfig, state: RefState) -> list[list[float]]:
    layout = build_layout(cfg)
    return [_observe_one(cfg, layout, state, slot) for slot in range(len(state.agents))]


def _observe_one(cfg: LevelConfig, layout: ObservationLayout, state: RefState, slot: int) -> list[float]:
    obs = [0.0] * layout.size
    me = state.agents[slot]
    town = state.towns[state.town_of(slot)]
    off = layout["meters"].offset
    obs[off : off + len(me.meters)] = me.meters
    if cfg.world.day_cycle:
        angle = 2 * math.pi * (town.clock % HOURS_PER_DAY) / HOURS_PER_DAY
        obs[layout["time"].offset] = math.sin(angle)
        obs[layout["time"].offset + 1] = math.cos(angle)
    aff = affordance_under(state, slot)
    if cfg.world.interaction == "multi_tick" and aff is not None:
        obs[layout["interaction_progress"].offset] = me.progress / cfg.affordances.affordances[aff].ticks
    obs[layout["episode_progress"].offset] = town.clock / cfg.world.max_steps
    sx, sy = max(cfg.world.width - 1, 1), max(cfg.world.height - 1, 1)
    obs[layout["position"].offset] = me.x / sx
    obs[layout["position"].offset + 1] = me.y / sy
    if aff is not None:
        obs[layout["underfoot"].offset + layout.channels.index(cfg.affordances.affordances[aff].name)] = 1.0
    if layout.encoding == "full":
        _full_view(cfg, layout, state, slot, obs)
    else:
        _window(cfg, layout, state, slot, obs)
    if cfg.social is not None:
        observe_social(cfg, layout, state, slot, obs)
    if cfg.economy is not None:
        observe_economy(cfg, layout, state, slot, obs)
    return obs


def _full_view(
    cfg: LevelConfig, layout: ObservationLayout, state: RefState, slot: int, obs: list[float]
) -> None:
    me = state.agents[slot]
    sx, sy = max(cfg.world.width - 1, 1), max(cfg.world.height - 1, 1)
    town = state.towns[state.town_of(slot)]
    columns = len(layout.channels)  # the field is rows dx, dy, present; a column per channel
    for a, (ax, ay) in enumerate(town.affordances):
        at = layout["affordances"].offset + layout.channels.index(cfg.affordances.affordances[a].name)
        obs[at], obs[at + columns], obs[at + 2 * columns] = (ax - me.x) / sx, (ay - me.y) / sy, 1.0
    if not layout.other_agents:
        return
    others = [j for j in state.town_slots(state.town_of(slot)) if j != slot][: layout.other_agents]
    columns = layout.other_agents
    for entry, j in enumerate(others):
        other = state.agents[j]
        if me.alive and other.alive:
            at = layout["agents"].offset + entry
            obs[at], obs[at + columns], obs[at + 2 * columns] = (
                (other.x - me.x) / sx,
                (other.y - me.y) / sy,
                1.0,
            )


def _window(
    cfg: LevelConfig, layout: ObservationLayout, state: RefState, slot: int, obs: list[float]
) -> None:
    me = state.agents[slot]
    town = state.towns[state.town_of(slot)]
    n_ch = len(layout.channels)
    side = layout.window
    r = side // 2
    others = [
        (state.agents[j].x, state.agents[j].y)
        for j in state.town_slots(state.town_of(slot))
        if j != slot and state.agents[j].alive and me.alive
    ]
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            x, y = me.x + dx, me.y + dy
            base = layout["window"].offset + ((dy + r) * side + (dx + r)) * (n_ch + 2)
            if not on_grid(cfg, x, y) or (x, y) in state.walls:
                obs[base + n_ch] = 1.0
                continue
            for a, cell in enumerate(town.affordances):
                if cell == (x, y):
                    obs[base + layout.channels.index(cfg.affordances.affordances[a].name)] = 1.0
            if (x, y) in others:
                obs[base + n_ch + 1] = 1.0
