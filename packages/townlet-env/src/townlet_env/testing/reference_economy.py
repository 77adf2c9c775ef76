"""The plain-Python reference of the economy (docs/economy.md), agent by agent and town by town.

It reads economy.yaml through the validated `LevelConfig` and walks agents, towns and events
with loops: the market an event makes, a shift's bookkeeping, evictions, the reward terms, the
nightly reset, the observation fields, and (given the same uniforms as the core) the event
scheduler and the arrivals of newcomers.
"""

from __future__ import annotations

from dataclasses import dataclass

from townlet_env.config import LevelConfig
from townlet_env.config.economy import EconomyFile, exit_reason_names
from townlet_env.core.layout import ObservationLayout
from townlet_env.testing.reference_state import (
    BOUNDARY,
    HOURS_PER_DAY,
    RefAgent,
    RefState,
    RefTown,
    affordance_under,
)

EMPLOYER, SHIFT, ABSENCES, REHIRE_AT, FIRINGS, BROKE, VACANT, HOME_X, HOME_Y = range(9)


def spec_of(cfg: LevelConfig) -> EconomyFile:
    assert cfg.economy is not None
    return cfg.economy


def aff_index(cfg: LevelConfig, name: str) -> int:
    return [a.name for a in cfg.affordances.affordances].index(name)


# --- the market ----------------------------------------------------------------------------------


def is_active(town: RefTown, e: int) -> bool:
    return town.clock < town.event_end[e]


def _hits(cfg: LevelConfig, town: RefTown, aff: int, kind: str) -> list[float]:
    name = cfg.affordances.affordances[aff].name
    return [
        town.event_value[e]
        for e, event in enumerate(spec_of(cfg).events.catalogue)
        if event.kind == kind and name in event.targets and is_active(town, e)
    ]


def price(cfg: LevelConfig, town: RefTown, aff: int) -> float:
    value = spec_of(cfg).prices.get(cfg.affordances.affordances[aff].name, 1.0)
    for factor in _hits(cfg, town, aff, "price_spike"):
        value *= factor
    return value


def closed(cfg: LevelConfig, town: RefTown, aff: int) -> bool:
    return bool(_hits(cfg, town, aff, "outage"))


def boost(cfg: LevelConfig, state: RefState, slot: int) -> float:
    """The chat gain factor of a gathering at the affordance the slot stands on (1: none)."""
    aff = affordance_under(state, slot)
    value = 1.0
    if cfg.economy is None or aff is None:
        return value
    for factor in _hits(cfg, state.towns[state.town_of(slot)], aff, "gathering"):
        value *= factor
    return value


def price_here(cfg: LevelConfig, state: RefState, slot: int) -> float:
    aff = affordance_under(state, slot)
    return 1.0 if aff is None else price(cfg, state.towns[state.town_of(slot)], aff)


def closed_here(cfg: LevelConfig, state: RefState, slot: int) -> bool:
    aff = affordance_under(state, slot)
    return aff is not None and closed(cfg, state.towns[state.town_of(slot)], aff)


# --- jobs ----------------------------------------------------------------------------------------


@dataclass
class Job:
    wage: float = 0.0
    late_fee: float = 0.0
    on_time: bool = False
    late: bool = False
    absent: bool = False
    fired: bool = False


def shift(cfg: LevelConfig, state: RefState, slot: int) -> tuple[Job, list[int]]:
    """The job side of the tick for one slot, from the state at its start: (what happened, the
    slot's work columns after it)."""
    spec = spec_of(cfg).jobs
    agent = state.agents[slot]
    work = list(agent.work)
    clock = state.towns[state.town_of(slot)].clock
    hour = clock % HOURS_PER_DAY
    employer = spec.employers[work[EMPLOYER]]
    start, end = employer.shift
    job = Job()
    hired = agent.alive and clock >= work[REHIRE_AT]
    if not hired:
        return job, work
    present = start <= hour < end and affordance_under(state, slot) == aff_index(cfg, employer.place)
    if present:
        job.wage = employer.wage
        if work[SHIFT] == 0:
            job.on_time = hour - start < spec.grace
            job.late = not job.on_time
            job.late_fee = spec.late_penalty if job.late else 0.0
            work[SHIFT] = 1 if job.on_time else 2
    if hour == end - 1:  # the shift's last tick
        job.absent = work[SHIFT] == 0
        work[ABSENCES] = ((work[ABSENCES] << 1) | int(job.absent)) & ((1 << spec.absence_window) - 1)
        work[SHIFT] = 0
        if bin(work[ABSENCES]).count("1") >= spec.absences_to_fire:
            job.fired = True
            work[ABSENCES] = 0
            work[REHIRE_AT] = clock + 1 + spec.rehire_cooldown
            work[FIRINGS] += 1
    return job, work


def leave(
    cfg: LevelConfig, was_alive: bool, work: list[int], meters: list[float], lowest_money: float, died: bool
) -> tuple[bool, int, bool]:
    """(evicted, exit reason, the money decision hung on rounding); updates `work`'s broke and
    vacant columns."""
    spec = spec_of(cfg)
    life = spec.lifecycle
    money = meters[cfg.meter_names.index(spec.money)]
    living = was_alive and not died
    work[BROKE] = work[BROKE] + 1 if living and money <= 0.0 else 0
    close = living and money <= BOUNDARY and lowest_money >= -BOUNDARY
    broke_out = living and life.evict_broke_ticks > 0 and work[BROKE] >= life.evict_broke_ticks
    fired_out = living and life.evict_firings > 0 and work[FIRINGS] >= life.evict_firings
    terminal = [m.name for m in cfg.meters.meters if m.terminal]
    reasons = exit_reason_names(terminal)
    reason = 0
    if died:
        reason = 1 + next(i for i, m in enumerate(terminal) if meters[cfg.meter_names.index(m)] <= 0.0)
    elif broke_out:
        reason = reasons.index("evicted_broke")
    elif fired_out:
        reason = reasons.index("evicted_fired")
    evicted = broke_out or fired_out
    gone = not (living and not evicted)
    work[VACANT] = (0 if was_alive else work[VACANT] + 1) if gone else 0
    return evicted, reason, close


def reward(
    cfg: LevelConfig,
    terms: dict[str, float],
    living: bool,
    reason: int,
    job: Job,
    agent: RefAgent,
    was_alive: bool,
) -> tuple[float, dict[str, float]]:
    """(reward, every term) of one slot; updates its ledger."""
    spec = spec_of(cfg).reward
    terms = {name: (value if living else 0.0) for name, value in terms.items()}
    if spec.wage is not None:
        terms["wage"] = spec.wage * job.wage if living else 0.0
    if spec.punctuality is not None:
        p = spec.punctuality
        value = p.on_time * job.on_time - p.late * job.late - p.absent * job.absent
        terms["punctuality"] = value if living else 0.0
    if spec.terminal:
        reasons = exit_reason_names([m.name for m in cfg.meters.meters if m.terminal])
        terms["terminal"] = spec.terminal.get(reasons[reason], 0.0)
    assert cfg.social is not None
    low, high = cfg.social.reward.clip
    total = min(high, max(low, sum(terms.values())))
    if not (living or reason > 0):
        return 0.0, terms
    lo, hi = spec.episode_clip
    value = min(hi - agent.ledger, max(lo - agent.ledger, total))
    if was_alive:
        agent.ledger += value
    return value, terms


def nightly(cfg: LevelConfig, state: RefState) -> None:
    """At hour 0 of the new clock: living agents go home, stop, leave queues; meters clamped."""
    reset = spec_of(cfg).lifecycle.nightly_reset
    if reset is None:
        return
    for slot, agent in enumerate(state.agents):
        if not agent.alive or state.towns[state.town_of(slot)].clock % HOURS_PER_DAY:
            continue
        agent.x, agent.y = agent.work[HOME_X], agent.work[HOME_Y]
        agent.progress, agent.queue_key, agent.stall = 0, -1, 0
        for name, (low, high) in reset.meters.items():
            m = cfg.meter_names.index(name)
            agent.meters[m] = min(high, max(low, agent.meters[m]))


# --- randomness, given the core's draws ---------------------------------------------------------


def schedule(cfg: LevelConfig, state: RefState, u: list[list[list[float]]]) -> None:
    """Start the events that the uniforms `u[town][event]` (start, duration, value) pick."""
    spec = spec_of(cfg).events
    for t, town in enumerate(state.towns):
        hour = town.clock % HOURS_PER_DAY
        running = sum(is_active(town, e) for e in range(len(spec.catalogue)))
        for e, event in enumerate(spec.catalogue):
            chance = event.chance_per_day / (event.hours[1] - event.hours[0])
            wants = (
                not is_active(town, e)
                and town.clock >= town.event_ready[e]
                and event.hours[0] <= hour < event.hours[1]
                and u[t][e][0] < chance
            )
            if not wants or running >= spec.max_concurrent:
                continue
            running += 1
            span = event.duration[1] - event.duration[0] + 1
            town.event_end[e] = town.clock + event.duration[0] + min(int(u[t][e][1] * span), span - 1)
            town.event_ready[e] = town.event_end[e] + event.cooldown
            low, high = event.multiplier
            town.event_value[e] = low + u[t][e][2] * (high - low)
            if event.kind == "outage":
                _release(cfg, state, t, event.targets)


def _release(cfg: LevelConfig, state: RefState, town: int, targets: list[str]) -> None:
    for slot in state.town_slots(town):
        aff = affordance_under(state, slot)
        if aff is not None and cfg.affordances.affordances[aff].name in targets:
            agent = state.agents[slot]
            agent.progress, agent.queue_key, agent.stall = 0, -1, 0


def arrivals(cfg: LevelConfig, state: RefState, ended: set[int]) -> list[int]:
    """The empty slots that get a newcomer, in slot order, within each town's cap."""
    life = spec_of(cfg).lifecycle
    cap = min(life.population_cap, state.agents_per_town)
    out = []
    for t in range(len(state.towns)):
        if t in ended:
            continue
        living = sum(state.agents[s].alive for s in state.town_slots(t))
        for s in state.town_slots(t):
            agent = state.agents[s]
            if not agent.alive and agent.work[VACANT] >= life.respawn_delay and living < cap:
                out.append(s)
                living += 1
    return out


# --- observation ---------------------------------------------------------------------------------


def observe_economy(
    cfg: LevelConfig, layout: ObservationLayout, state: RefState, slot: int, obs: list[float]
) -> None:
    spec = spec_of(cfg)
    agent = state.agents[slot]
    town = state.towns[state.town_of(slot)]
    if agent.alive:
        work = agent.work
        obs[layout["employer"].offset + work[EMPLOYER]] = 1.0
        employer = spec.jobs.employers[work[EMPLOYER]]
        start, end = employer.shift
        hour = town.clock % HOURS_PER_DAY
        job = [
            float(town.clock >= work[REHIRE_AT]),
            float(start <= hour < end),
            float(affordance_under(state, slot) == aff_index(cfg, employer.place)),
            float(work[SHIFT] == 1),
            float(work[SHIFT] == 2),
            bin(work[ABSENCES]).count("1") / spec.jobs.absences_to_fire,
            ((start - hour) % HOURS_PER_DAY) / HOURS_PER_DAY,
            min(1.0, max(0, work[REHIRE_AT] - town.clock) / max(spec.jobs.rehire_cooldown, 1)),
            min(1.0, work[BROKE] / max(spec.lifecycle.evict_broke_ticks, 1)),
        ]
        off = layout["job"].offset
        obs[off : off + len(job)] = job
    if spec.events.catalogue:
        longest = max(e.duration[1] for e in spec.events.catalogue)
        for e in range(len(spec.events.catalogue)):
            at = layout["events"].offset + 2 * e
            obs[at] = float(is_active(town, e))
            obs[at + 1] = min(1.0, max(0, town.event_end[e] - town.clock) / longest)
    for a, aff in enumerate(cfg.affordances.affordances):
        channel = layout.channels.index(aff.name)
        obs[layout["prices"].offset + channel] = min(1.0, max(-1.0, price(cfg, town, a) - 1.0))
        obs[layout["closed"].offset + channel] = float(closed(cfg, town, a))
