"""A slow, plain-Python reference of one Townlet tick, for differential tests of the tensor core.

It reads the validated level pack (`LevelConfig`), never the compiled tensor tables, and walks
agents and cells with ordinary loops, so it is an independent reading of the rules that
docs/index.md, meters.md, cascades.md and affordances.md describe:

    ref = from_tensor_state(cfg, core_state)
    ref_next, rewards, terminated, truncated, invalid = ref_step(cfg, ref, actions)
    mask, obs = ref_action_mask(cfg, ref_next), ref_observe(cfg, ref_next)

Arithmetic is in Python floats (float64) while the core works in float32, so the two agree to
about 1e-6. A discrete outcome that hangs on a float comparison (can the agent afford a use,
did a terminal meter reach 0) can then legitimately differ when the deciding value sits right
at its boundary; `ref_step_detail` and `ref_action_mask_detail` report such agents as
`near_boundary`, so a test can excuse exactly those and nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from townlet_env.config import LevelConfig
from townlet_env.core.layout import ObservationLayout, build_layout
from townlet_env.core.state import TownState

HOURS_PER_DAY = 24
BOUNDARY = 1e-6  # float32 vs float64 disagreement allowed on a discrete decision


@dataclass
class RefAgent:
    meters: list[float]  # pack order
    x: int
    y: int
    alive: bool
    progress: int  # ticks done of the current multi-tick use
    life_steps: int
    difficulty: float


@dataclass
class RefTown:
    clock: int
    affordances: list[tuple[int, int]]  # (x, y) of each affordance, pack order


@dataclass
class RefState:
    agents: list[RefAgent]
    towns: list[RefTown]
    agents_per_town: int
    walls: frozenset[tuple[int, int]] = field(default_factory=frozenset)

    def town_of(self, slot: int) -> int:
        return slot // self.agents_per_town

    def town_slots(self, town: int) -> range:
        k = self.agents_per_town
        return range(town * k, (town + 1) * k)

    def copy(self) -> RefState:
        agents = [dataclasses.replace(a, meters=list(a.meters)) for a in self.agents]
        towns = [RefTown(t.clock, list(t.affordances)) for t in self.towns]
        return RefState(agents, towns, self.agents_per_town, self.walls)


@dataclass
class RefStepResult:
    state: RefState
    rewards: list[float]
    terminated: list[bool]
    truncated: list[bool]
    invalid: list[bool]
    executed: list[int]
    used: list[bool]  # INTERACT executed on an affordance this tick
    completed: list[bool]  # a use finished this tick (always, for an instant use)
    near_boundary: list[bool]  # affordability or the terminal check hung on a float within BOUNDARY


def from_tensor_state(cfg: LevelConfig, ts: TownState) -> RefState:
    """Read a core `TownState` once into plain Python values."""
    meters = ts.meters.tolist()
    pos = ts.position.tolist()
    alive, progress = ts.alive.tolist(), ts.progress.tolist()
    life, difficulty = ts.life_steps.tolist(), ts.difficulty.tolist()
    agents = [
        RefAgent(meters[i], pos[i][0], pos[i][1], alive[i], progress[i], life[i], difficulty[i])
        for i in range(len(meters))
    ]
    towns = [
        RefTown(clock, [(p[0], p[1]) for p in aff])
        for clock, aff in zip(ts.clock.tolist(), ts.affordance_position.tolist(), strict=True)
    ]
    walls = frozenset((x, y) for x, y in cfg.world.walls)
    return RefState(agents, towns, len(agents) // len(towns), walls)


# --- rules -------------------------------------------------------------------------------------


def meter_index(cfg: LevelConfig) -> dict[str, int]:
    return {name: i for i, name in enumerate(cfg.meter_names)}


def is_open(cfg: LevelConfig, aff: int, hour: int) -> bool:
    hours = cfg.affordances.affordances[aff].hours
    if not cfg.world.day_cycle or hours == "always":
        return True
    open_, close = hours
    return open_ <= hour < close or open_ <= hour + HOURS_PER_DAY < close


def on_grid(cfg: LevelConfig, x: int, y: int) -> bool:
    return 0 <= x < cfg.world.width and 0 <= y < cfg.world.height


def affordance_under(state: RefState, slot: int) -> int | None:
    agent = state.agents[slot]
    cells = state.towns[state.town_of(slot)].affordances
    for a, cell in enumerate(cells):
        if cell == (agent.x, agent.y):
            return a
    return None


def holder(state: RefState, slot: int) -> int:
    """The one agent of the town who may use the affordance under `slot` (capacity 1): an agent
    part-way through a use first, then the lowest slot."""
    me = state.agents[slot]
    here = [
        j
        for j in state.town_slots(state.town_of(slot))
        if state.agents[j].alive and (state.agents[j].x, state.agents[j].y) == (me.x, me.y)
    ]
    return min(here, key=lambda j: (state.agents[j].progress == 0, j))


def price(cfg: LevelConfig, aff: int) -> dict[str, float]:
    """What the agent must hold to start: a whole use (instant) or one tick (multi-tick)."""
    spec = cfg.affordances.affordances[aff]
    ticks = 1 if cfg.world.interaction == "multi_tick" else spec.ticks
    return {name: amount * ticks for name, amount in spec.cost.items()}


def interact_check(cfg: LevelConfig, state: RefState, slot: int) -> tuple[bool, bool]:
    """(may INTERACT, the affordability decision was within BOUNDARY of flipping)."""
    aff = affordance_under(state, slot)
    if aff is None:
        return False, False
    clock = state.towns[state.town_of(slot)].clock
    if not is_open(cfg, aff, clock % HOURS_PER_DAY) or holder(state, slot) != slot:
        return False, False
    idx = meter_index(cfg)
    meters = state.agents[slot].meters
    margins = [meters[idx[name]] - need for name, need in price(cfg, aff).items()]
    affordable = all(m >= 0 for m in margins)
    return affordable, any(abs(m) <= BOUNDARY for m in margins)


def ref_action_mask_detail(cfg: LevelConfig, state: RefState) -> tuple[list[list[bool]], list[bool]]:
    """Mask of every slot, and per slot whether its INTERACT entry sits on the boundary."""
    actions = cfg.actions.actions
    mask, near = [], []
    for slot, agent in enumerate(state.agents):
        row, close = [], False
        for spec in actions:
            if not agent.alive:
                row.append(spec.kind == "wait")
            elif spec.kind == "move":
                assert spec.delta is not None
                x, y = agent.x + spec.delta[0], agent.y + spec.delta[1]
                row.append(on_grid(cfg, x, y) and (x, y) not in state.walls)
            elif spec.kind == "interact":
                legal, close = interact_check(cfg, state, slot)
                row.append(legal)
            else:
                row.append(True)
        mask.append(row)
        near.append(close)
    return mask, near


def ref_action_mask(cfg: LevelConfig, state: RefState) -> list[list[bool]]:
    return ref_action_mask_detail(cfg, state)[0]


# --- one tick ----------------------------------------------------------------------------------


class _Meters:
    """One agent's meters with the clamp to [0, 1], remembering the lowest unclamped value of
    the tick so the terminal check can tell a clear death from one decided by rounding."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)
        self.lowest = [math.inf] * len(values)

    def add(self, m: int, delta: float) -> None:
        raw = self.values[m] + delta
        self.lowest[m] = min(self.lowest[m], raw)
        self.values[m] = min(1.0, max(0.0, raw))


def ref_step(
    cfg: LevelConfig, state: RefState, actions: list[int]
) -> tuple[RefState, list[float], list[bool], list[bool], list[bool]]:
    r = ref_step_detail(cfg, state, actions)
    return r.state, r.rewards, r.terminated, r.truncated, r.invalid


def ref_step_detail(cfg: LevelConfig, state: RefState, actions: list[int]) -> RefStepResult:
    specs = cfg.actions.actions
    wait = next(i for i, a in enumerate(specs) if a.kind == "wait")
    mask, near = ref_action_mask_detail(cfg, state)
    new = state.copy()
    n = len(state.agents)
    out = RefStepResult(
        new, [0.0] * n, [False] * n, [False] * n, [False] * n, [wait] * n, [False] * n, [False] * n, near
    )
    for slot, before in enumerate(state.agents):
        action = actions[slot]
        out.invalid[slot] = not mask[slot][action]
        executed = action if mask[slot][action] else wait
        out.executed[slot] = executed
        if not before.alive:
            new.agents[slot].progress = 0
            continue
        meters = _Meters(before.meters)
        out.used[slot], out.completed[slot] = _act(cfg, state, new, slot, executed, meters)
        _drain(cfg, meters, before.difficulty)
        agent = new.agents[slot]
        agent.meters = meters.values
        died, close = _terminal_check(cfg, meters)
        out.near_boundary[slot] |= close
        agent.alive = not died
        out.terminated[slot] = died
        if died:
            agent.progress = 0
        else:
            out.rewards[slot] = ref_reward(cfg, agent.meters)
        agent.life_steps += 1
    for town in new.towns:
        town.clock += 1
    for slot, agent in enumerate(new.agents):
        town = new.towns[new.town_of(slot)]
        out.truncated[slot] = agent.alive and town.clock >= cfg.world.max_steps
    return out


def _act(
    cfg: LevelConfig, before: RefState, new: RefState, slot: int, executed: int, meters: _Meters
) -> tuple[bool, bool]:
    """Phase 1: the action's own effects plus any affordance use, with one clamp at the end."""
    idx = meter_index(cfg)
    spec = cfg.actions.actions[executed]
    delta = [0.0] * len(meters.values)
    for name, amount in spec.effects.items():
        delta[idx[name]] += amount
    agent = new.agents[slot]
    used = completed = False
    if spec.kind == "interact":
        aff_index = affordance_under(before, slot)
        assert aff_index is not None, "a legal INTERACT stands on an affordance"
        aff = cfg.affordances.affordances[aff_index]
        used = True
        if cfg.world.interaction == "multi_tick":
            agent.progress = before.agents[slot].progress + 1
            completed = agent.progress >= aff.ticks
            if completed:
                agent.progress = 0
            uses = 1
        else:
            completed, uses = True, aff.ticks
        for name, amount in aff.effects.items():
            delta[idx[name]] += uses * amount
        for name, amount in aff.cost.items():
            delta[idx[name]] -= uses * amount
        if completed:
            for name, amount in aff.completion.items():
                delta[idx[name]] += amount
    else:
        agent.progress = 0
        if spec.kind == "move":
            assert spec.delta is not None
            agent.x += spec.delta[0]
            agent.y += spec.delta[1]
    for m, d in enumerate(delta):
        meters.add(m, d)
    return used, completed


def _drain(cfg: LevelConfig, meters: _Meters, difficulty: float) -> None:
    """Phase 2: base drain x difficulty, the modulations, then each cascade one at a time."""
    idx = meter_index(cfg)
    for m, spec in enumerate(cfg.meters.meters):
        meters.add(m, -spec.drain * difficulty)
    for mod in cfg.cascades.modulations:
        source = meters.values[idx[mod.source]]
        meters.add(idx[mod.target], -mod.base * (mod.offset + mod.scale * (1.0 - source)))
    for group in cfg.cascades.groups:
        for cas in group.cascades:
            source = meters.values[idx[cas.source]]
            if source < cas.threshold:
                loss = cas.strength * (cas.threshold - source) / cas.threshold
                meters.add(idx[cas.target], -loss)


def _terminal_check(cfg: LevelConfig, meters: _Meters) -> tuple[bool, bool]:
    """(died, the decision hung on rounding).

    Within a tick a meter can only fall after phase 1, so a terminal meter ends at 0 exactly
    when some clamp saw it at or below 0. If that value, or a final value above 0, is within
    BOUNDARY of 0, float32 rounding in the core may decide the other way.
    """
    died = close = False
    for m, spec in enumerate(cfg.meters.meters):
        if not spec.terminal:
            continue
        value = meters.values[m]
        died |= value <= 0.0
        if value <= BOUNDARY and meters.lowest[m] >= -BOUNDARY:
            close = True
    return died, close


def ref_reward(cfg: LevelConfig, meters: list[float]) -> float:
    spec = cfg.reward.reward
    idx = meter_index(cfg)
    if spec.kind == "product":
        reward = math.prod(meters[idx[name]] for name in spec.meters)
    elif spec.kind == "weighted_sum":
        reward = spec.base + sum(w * (meters[idx[name]] - spec.centre) for name, w in spec.weights.items())
    else:
        reward = spec.base + spec.bonus * math.prod(meters[idx[name]] for name in spec.bonus_meters)
    if spec.clip is not None:
        reward = min(spec.clip[1], max(spec.clip[0], reward))
    return reward


# --- observation -------------------------------------------------------------------------------


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
