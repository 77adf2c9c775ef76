"""The state of the plain-Python reference (`townlet_env.testing.reference`): agents and towns as
ordinary Python values, read once from a core `TownState`, and the rules that only look at it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from townlet_env.config import LevelConfig
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
    # social levels (docs/social.md): ties toward each slot of the town in slot order, traits,
    # the tick the agent joined its queue (-1: none) and the ticks it has held a queue up
    trust: list[float] = field(default_factory=list)
    familiarity: list[float] = field(default_factory=list)
    rivalry: list[float] = field(default_factory=list)
    personality: list[float] = field(default_factory=list)
    queue_key: int = -1
    stall: int = 0
    # economy levels (docs/economy.md): employer, shift, absences, rehire_at, firings, broke,
    # vacant, home x, home y (the columns of TownState.work); the reward of the episode so far
    work: list[int] = field(default_factory=list)
    ledger: float = 0.0


@dataclass
class RefTown:
    clock: int
    affordances: list[tuple[int, int]]  # (x, y) of each affordance, pack order
    # economy levels: per catalogue event, the tick it ends at, may start again, and its value
    event_end: list[int] = field(default_factory=list)
    event_ready: list[int] = field(default_factory=list)
    event_value: list[float] = field(default_factory=list)


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
        agents = [
            dataclasses.replace(
                a,
                meters=list(a.meters),
                trust=list(a.trust),
                familiarity=list(a.familiarity),
                rivalry=list(a.rivalry),
                personality=list(a.personality),
                work=list(a.work),
            )
            for a in self.agents
        ]
        towns = [
            RefTown(t.clock, list(t.affordances), list(t.event_end), list(t.event_ready), list(t.event_value))
            for t in self.towns
        ]
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
    chat_partner: list[int] = field(default_factory=list)  # social levels: partner's slot in town, -1
    chat_success: list[bool] = field(default_factory=list)
    reward_terms: dict[str, list[float]] = field(default_factory=dict)
    # economy levels: why each slot's agent left (0: it did not), and the job side of the tick
    exit_reason: list[int] = field(default_factory=list)
    wage: list[float] = field(default_factory=list)
    on_time: list[bool] = field(default_factory=list)
    late: list[bool] = field(default_factory=list)
    absent: list[bool] = field(default_factory=list)
    fired: list[bool] = field(default_factory=list)


def from_tensor_state(cfg: LevelConfig, ts: TownState) -> RefState:
    """Read a core `TownState` once into plain Python values."""
    meters = ts.meters.tolist()
    pos = ts.position.tolist()
    alive, progress = ts.alive.tolist(), ts.progress.tolist()
    life, difficulty = ts.life_steps.tolist(), ts.difficulty.tolist()
    social = [ts.trust.tolist(), ts.familiarity.tolist(), ts.rivalry.tolist(), ts.personality.tolist()]
    queue_key, stall = ts.queue_key.tolist(), ts.stall.tolist()
    work, ledger = ts.work.tolist(), ts.ledger.tolist()
    agents = [
        RefAgent(
            meters[i],
            pos[i][0],
            pos[i][1],
            alive[i],
            progress[i],
            life[i],
            difficulty[i],
            trust=social[0][i],
            familiarity=social[1][i],
            rivalry=social[2][i],
            personality=social[3][i],
            queue_key=queue_key[i],
            stall=stall[i],
            work=work[i],
            ledger=ledger[i][0] if ledger[i] else 0.0,
        )
        for i in range(len(meters))
    ]
    events, values = ts.event_clock.tolist(), ts.event_value.tolist()
    towns = [
        RefTown(clock, [(p[0], p[1]) for p in aff], [e[0] for e in ev], [e[1] for e in ev], val)
        for clock, aff, ev, val in zip(
            ts.clock.tolist(), ts.affordance_position.tolist(), events, values, strict=True
        )
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
