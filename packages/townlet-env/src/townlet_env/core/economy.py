"""The economy of a level with an `economy.yaml` (docs/economy.md): jobs with shifts, prices that
events move, evictions, the nightly reset and the economy's reward terms.

Everything is a tensor batched over towns and slots. A tick reads the events active in each
town at its start (`Market`), pays wages and docks lateness with the actions' own effects,
checks shifts, absences and firings, evicts, and adds its reward terms to the social ones.
Randomness (drawing events, newcomers) lives in `events.py` and `lifecycle.py`, outside the
tick, like births in `spawn.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet_env.config import LevelConfig
from townlet_env.config.economy import EVENT_KINDS, EconomyFile, exit_reason_names
from townlet_env.core.state import TownState

HOURS_PER_DAY = 24
# columns of `TownState.work` (long): the employment and lifecycle facts of each slot
EMPLOYER, SHIFT, ABSENCES, REHIRE_AT, FIRINGS, BROKE, VACANT, HOME_X, HOME_Y = range(9)
WORK_COLUMNS = 9
WAITING, ON_TIME, LATE = 0, 1, 2  # SHIFT: not arrived at this shift yet, arrived on time, late
END, READY = 0, 1  # `TownState.event_clock[..., i]`: tick an event ends at, tick it may start again
SPIKE, OUTAGE, GATHERING = range(3)
POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.long)


@dataclass(frozen=True)
class EconomyTables:
    """What the economy's rules need, compiled once from economy.yaml."""

    spec: EconomyFile
    money: int  # meter index
    place: torch.Tensor  # [J] long, the affordance of each employer
    shift_start: torch.Tensor  # [J] long hour
    shift_end: torch.Tensor  # [J] long hour (exclusive)
    wage: torch.Tensor  # [J] float32 per tick
    # per employer and hour, at employer * 24 + hour: one gather each instead of comparisons
    in_shift: torch.Tensor  # [J * 24] bool
    on_time_hour: torch.Tensor  # [J * 24] bool: in the shift's grace period
    last_hour: torch.Tensor  # [J * 24] bool: the shift's last tick
    until_start: torch.Tensor  # [J * 24] float32: hours until the next start / 24
    base_price: torch.Tensor  # [A] float32
    cost: torch.Tensor  # [A, M] float32, the per-tick cost that prices multiply
    event_names: tuple[str, ...]
    event_kind: torch.Tensor  # [E] long: SPIKE, OUTAGE or GATHERING
    event_target: torch.Tensor  # [E, A] bool
    event_chance: torch.Tensor  # [E] float32, chance to start per tick inside its hours
    event_hours: torch.Tensor  # [E, 24] bool, may start at this hour
    event_cooldown: torch.Tensor  # [E] long
    duration_low: torch.Tensor  # [E] long
    duration_span: torch.Tensor  # [E] long, high - low + 1
    value_low: torch.Tensor  # [E] float32
    value_span: torch.Tensor  # [E] float32
    by_kind: tuple[tuple[tuple[int, torch.Tensor], ...], ...]  # per kind: (event, its [A] targets)
    exit_reasons: tuple[str, ...]
    terminal_index: torch.Tensor  # [terminal meters] long, in pack order (death reasons 1..)
    terminal_penalty: torch.Tensor  # [R] float32 per exit reason (0 for "none")
    reset_low: torch.Tensor  # [M] float32, the nightly clamp (0 where unlisted)
    reset_high: torch.Tensor  # [M] float32 (1 where unlisted)
    # fused forms of the above, so that a tick reads each in one gather
    hour_flags: torch.Tensor  # [J * 24, 3] bool: in_shift, on_time_hour, last_hour
    job_hours: torch.Tensor  # [J * 24, 2] float32: in_shift as a float, until_start
    spikes: tuple[int, ...]  # the events of each kind, in catalogue order
    outages: tuple[int, ...]
    gatherings: tuple[int, ...]
    # per absence bit mask (None for windows over 12 shifts): fired at the end of a shift, and
    # the observation's share of the absences that fire
    chance_by_hour: torch.Tensor  # [24, E] float32: event_chance, -1 outside its hours
    duration_top: torch.Tensor  # [E] long: duration_span - 1
    is_outage: torch.Tensor  # [E] bool
    fires: torch.Tensor | None  # [2^window] bool
    absence_share: torch.Tensor | None  # [2^window] float32

    @property
    def n_events(self) -> int:
        return len(self.event_names)


def compile_economy(cfg: LevelConfig) -> EconomyTables | None:
    spec = cfg.economy
    if spec is None:
        return None
    names = [a.name for a in cfg.affordances.affordances]
    meters = cfg.meter_names
    f32 = torch.float32
    cost = torch.zeros(len(names), len(meters))
    for a, aff in enumerate(cfg.affordances.affordances):
        for meter, amount in aff.cost.items():
            cost[a, meters.index(meter)] += amount
    events = spec.events.catalogue
    target = torch.zeros(len(events), len(names), dtype=torch.bool)
    hours = torch.zeros(len(events), HOURS_PER_DAY, dtype=torch.bool)
    for e, event in enumerate(events):
        for t in event.targets:
            target[e, names.index(t)] = True
        hours[e, event.hours[0] : event.hours[1]] = True
    terminal = [m.name for m in cfg.meters.meters if m.terminal]
    reasons = exit_reason_names(terminal)
    low, high = torch.zeros(len(meters)), torch.ones(len(meters))
    if spec.lifecycle.nightly_reset is not None:
        for meter, (lo, hi) in spec.lifecycle.nightly_reset.meters.items():
            low[meters.index(meter)], high[meters.index(meter)] = lo, hi
    jobs = spec.jobs.employers
    hour = torch.arange(HOURS_PER_DAY)
    start = torch.tensor([j.shift[0] for j in jobs])[:, None]
    end = torch.tensor([j.shift[1] for j in jobs])[:, None]
    in_shift = ((hour >= start) & (hour < end)).flatten()
    on_time_hour = ((hour >= start) & (hour - start < spec.jobs.grace) & (hour < end)).flatten()
    last_hour = (hour == end - 1).flatten()
    until_start = (((start - hour) % HOURS_PER_DAY).to(f32) / HOURS_PER_DAY).flatten()
    kinds = [EVENT_KINDS.index(e.kind) for e in events]
    chance = torch.tensor([e.chance_per_day / (e.hours[1] - e.hours[0]) for e in events], dtype=f32)
    duration_span = torch.tensor([e.duration[1] - e.duration[0] + 1 for e in events], dtype=torch.long)
    window = spec.jobs.absence_window
    masks = popcount(torch.arange(1 << min(window, 12)), window)
    return EconomyTables(
        spec=spec,
        money=meters.index(spec.money),
        place=torch.tensor([names.index(j.place) for j in jobs], dtype=torch.long),
        shift_start=torch.tensor([j.shift[0] for j in jobs], dtype=torch.long),
        shift_end=torch.tensor([j.shift[1] for j in jobs], dtype=torch.long),
        wage=torch.tensor([j.wage for j in jobs], dtype=f32),
        in_shift=in_shift,
        on_time_hour=on_time_hour,
        last_hour=last_hour,
        until_start=until_start,
        base_price=torch.tensor([spec.prices.get(n, 1.0) for n in names], dtype=f32),
        cost=cost,
        event_names=tuple(e.name for e in events),
        event_kind=torch.tensor([EVENT_KINDS.index(e.kind) for e in events], dtype=torch.long),
        event_target=target,
        event_chance=chance,
        event_hours=hours,
        event_cooldown=torch.tensor([e.cooldown for e in events], dtype=torch.long),
        duration_low=torch.tensor([e.duration[0] for e in events], dtype=torch.long),
        duration_span=duration_span,
        value_low=torch.tensor([e.multiplier[0] for e in events], dtype=f32),
        value_span=torch.tensor([e.multiplier[1] - e.multiplier[0] for e in events], dtype=f32),
        by_kind=tuple(
            tuple((e, target[e]) for e, event in enumerate(events) if event.kind == kind)
            for kind in EVENT_KINDS
        ),
        exit_reasons=reasons,
        terminal_index=torch.tensor([meters.index(m) for m in terminal], dtype=torch.long),
        terminal_penalty=torch.tensor([spec.reward.terminal.get(r, 0.0) for r in reasons], dtype=f32),
        reset_low=low,
        reset_high=high,
        hour_flags=torch.stack((in_shift, on_time_hour, last_hour), dim=1),
        job_hours=torch.stack((in_shift.float(), until_start), dim=1),
        chance_by_hour=torch.where(hours, chance[:, None], -1.0).t().contiguous(),
        duration_top=duration_span - 1,
        is_outage=torch.tensor([k == OUTAGE for k in kinds], dtype=torch.bool),
        spikes=tuple(e for e, k in enumerate(kinds) if k == SPIKE),
        outages=tuple(e for e, k in enumerate(kinds) if k == OUTAGE),
        gatherings=tuple(e for e, k in enumerate(kinds) if k == GATHERING),
        fires=masks >= spec.jobs.absences_to_fire if window <= 12 else None,
        absence_share=masks.float() / spec.jobs.absences_to_fire if window <= 12 else None,
    )


# --- the market: what the events active at a state do --------------------------------------------


@dataclass(frozen=True)
class Market:
    """The events of each town at one state, and what they mean for each slot's affordance."""

    active: torch.Tensor  # [T, E] bool
    price: torch.Tensor  # [T, A] float32 multiplier: base x every active spike on it
    closed: torch.Tensor  # [T, A] bool: an outage is on
    price_here: torch.Tensor  # [N] float32, of the affordance underfoot (1 where none)
    closed_here: torch.Tensor  # [N] bool
    boost_here: torch.Tensor  # [N] float32, chat gain factor of an active gathering here (1: none)

    def head(self, towns: int, slots: int) -> Market:
        """The market of the first `towns` towns (and their `slots` slots), as views."""
        return Market(
            self.active[:towns],
            self.price[:towns],
            self.closed[:towns],
            self.price_here[:slots],
            self.closed_here[:slots],
            self.boost_here[:slots],
        )


def market(tables: EconomyTables, state: TownState, aff: torch.Tensor) -> Market:
    """What the active events do, from one [T, E, A] factor table: an event's value where it is
    active and targets the affordance, else 1. Spikes then multiply the base prices one event
    at a time in catalogue order (the order the reference and the scalar engine round in; a
    product over the event dimension would add its own), outages close, gatherings boost."""
    active = state.clock[:, None] < state.event_clock[..., END]  # [T, E]
    t, n_aff = state.num_towns, tables.base_price.shape[0]
    hit = active[:, :, None] & tables.event_target  # [T, E, A]
    factor = torch.where(hit, state.event_value[:, :, None], 1.0)
    price = tables.base_price.expand(t, n_aff)
    for e in tables.spikes:
        price = price * factor[:, e]
    closed = any_of(hit, tables.outages)
    boost = factor[:, tables.gatherings[0]] if tables.gatherings else torch.ones_like(price)
    for e in tables.gatherings[1:]:  # 1 x the first factor is that factor exactly
        boost = boost * factor[:, e]
    flat = state.town * n_aff + aff.clamp(min=0)
    on = aff >= 0
    return Market(
        active=active,
        price=price,
        closed=closed,
        price_here=torch.where(on, price.reshape(-1).index_select(0, flat), 1.0),
        closed_here=on & closed.reshape(-1).index_select(0, flat),
        boost_here=torch.where(on, boost.reshape(-1).index_select(0, flat), 1.0),
    )


def any_of(hit: torch.Tensor, events: tuple[int, ...]) -> torch.Tensor:
    """[T, A] whether any of `events` hits (`hit`: [T, E, A])."""
    if not events:
        return torch.zeros_like(hit[:, 0])
    closed = hit[:, events[0]]
    for e in events[1:]:
        closed = closed | hit[:, e]
    return closed


def surcharge(tables: EconomyTables, mkt: Market, a: torch.Tensor, using: torch.Tensor) -> torch.Tensor:
    """[N, M] what a tick of use costs beyond the base price list: cost x (price - 1)."""
    extra = (mkt.price_here - 1.0) * using
    return tables.cost.index_select(0, a) * extra[:, None]


# --- jobs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    """The job side of one tick, from the state at its start (position and hour of the tick)."""

    wage: torch.Tensor  # [N] float32 money earned (on site during the shift, employed, alive)
    late_fee: torch.Tensor  # [N] float32 money docked on a late arrival
    on_time: torch.Tensor  # [N] bool: arrived within the grace period this tick
    late: torch.Tensor  # [N] bool: arrived after it this tick
    absent: torch.Tensor  # [N] bool: the shift ended this tick without an arrival
    fired: torch.Tensor  # [N] bool
    work: torch.Tensor  # [N, 9] long: the columns after the shift's bookkeeping


def employed(state: TownState) -> torch.Tensor:
    return state.per_slot(state.clock) >= state.work[:, REHIRE_AT]


def shift_hours(tables: EconomyTables, state: TownState) -> tuple[torch.Tensor, torch.Tensor]:
    """[N] start and end hour of each slot's employer."""
    employer = state.work[:, EMPLOYER]
    return tables.shift_start.index_select(0, employer), tables.shift_end.index_select(0, employer)


def shift(tables: EconomyTables, state: TownState, aff: torch.Tensor) -> Shift:
    spec = tables.spec.jobs
    work = state.work
    clock = state.per_slot(state.clock)
    employer = work[:, EMPLOYER]
    # into the per-employer hour tables: employer * 24 + hour, one gather for the three flags
    flags = tables.hour_flags.index_select(0, torch.add(clock % HOURS_PER_DAY, employer, alpha=HOURS_PER_DAY))
    hired = state.alive & (clock >= work[:, REHIRE_AT])
    present = hired & flags[:, 0] & (aff == tables.place.index_select(0, employer))
    arriving = present & (work[:, SHIFT] == WAITING)
    on_time = arriving & flags[:, 1]
    late = arriving ^ on_time  # arriving and not on time
    status = torch.where(arriving, LATE - on_time.long(), work[:, SHIFT])
    ending = hired & flags[:, 2]
    absent = ending & (status == WAITING)
    window = (1 << spec.absence_window) - 1
    bits = torch.where(ending, ((work[:, ABSENCES] << 1) | absent) & window, work[:, ABSENCES])
    if tables.fires is None:
        fired = ending & (popcount(bits, spec.absence_window) >= spec.absences_to_fire)
    else:
        fired = ending & tables.fires.index_select(0, bits)
    work = work.clone()
    work[:, SHIFT] = torch.where(ending, WAITING, status)
    work[:, ABSENCES] = bits.masked_fill_(fired, 0)  # bits is this call's own
    work[:, REHIRE_AT] = torch.where(fired, clock + (1 + spec.rehire_cooldown), work[:, REHIRE_AT])
    work[:, FIRINGS] += fired
    return Shift(
        wage=tables.wage.index_select(0, employer) * present,
        late_fee=late * spec.late_penalty,
        on_time=on_time,
        late=late,
        absent=absent,
        fired=fired,
        work=work,
    )


def popcount(bits: torch.Tensor, width: int = 32) -> torch.Tensor:
    """[N] set bits of non-negative longs below 2^width (byte by byte through a table)."""
    table = POPCOUNT.to(bits.device)
    total = table.take(bits & 255)
    for byte in range(1, (width + 7) // 8):
        total = total + table.take((bits >> (8 * byte)) & 255)
    return total


# --- leaving -----------------------------------------------------------------------------------


def leave(
    tables: EconomyTables,
    state: TownState,
    meters: torch.Tensor,
    died: torch.Tensor,
    living: torch.Tensor,
    work: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(evicted [N] bool, exit_reason [N] long, work after) from the post-tick meters.

    `died`: a terminal meter reached 0 (its reason is the first such meter in pack order).
    An agent still living is evicted when its money has been at 0 for `evict_broke_ticks` ticks
    in a row, or when it has been fired `evict_firings` times.
    """
    life = tables.spec.lifecycle
    work = work.clone()
    living_broke = living & (meters[:, tables.money] <= 0.0)
    broke = torch.where(living_broke, work[:, BROKE] + 1, 0)
    work[:, BROKE] = broke
    out_of_money = living & (broke >= life.evict_broke_ticks) if life.evict_broke_ticks else None
    out_of_work = living & (work[:, FIRINGS] >= life.evict_firings) if life.evict_firings else None
    n_reasons = len(tables.exit_reasons)
    at_zero = meters.index_select(1, tables.terminal_index) <= 0.0
    first = at_zero.long().argmax(dim=1) + 1  # 1 + the first terminal meter at 0
    reason = torch.where(died, first, 0)
    evicted = died & False
    if out_of_work is not None:
        reason = torch.where(out_of_work, n_reasons - 1, reason)
        evicted = out_of_work
    if out_of_money is not None:  # an agent out of both is out of money
        reason = torch.where(out_of_money, n_reasons - 2, reason)
        evicted = evicted | out_of_money
    # a slot that is empty after the tick counts the ticks since its agent left
    gone = ~living | evicted
    work[:, VACANT] = torch.where(gone, torch.where(state.alive, 0, work[:, VACANT] + 1), 0)
    return evicted, reason, work


# --- reward ------------------------------------------------------------------------------------


def economy_reward(
    tables: EconomyTables,
    clip: tuple[float, float],
    terms: dict[str, torch.Tensor],
    living: torch.Tensor,
    alive_before: torch.Tensor,
    job: Shift,
    reason: torch.Tensor,
    ledger: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """([N] reward, every term, ledger after): the social terms (0 unless living) with the
    economy's, summed and clipped per tick, then clipped so that the episode's running total
    stays inside `episode_clip`. A leaving agent gets its terminal term on its last tick."""
    spec = tables.spec.reward
    terms = dict(terms)
    if spec.wage is not None:
        terms["wage"] = torch.where(living, spec.wage * job.wage, 0.0)
    if spec.punctuality is not None:
        p = spec.punctuality
        value = p.on_time * job.on_time.float() - p.late * job.late.float() - p.absent * job.absent.float()
        terms["punctuality"] = torch.where(living, value, 0.0)
    if spec.terminal:
        terms["terminal"] = tables.terminal_penalty.index_select(0, reason)
    # added term by term, in order: a sum over a stacked dimension adds in an order that
    # depends on the number of slots (the same agent would get another reward in another batch)
    values = iter(terms.values())
    total = next(values)
    for value in values:
        total = total + value
    total = total.clamp(*clip)
    counted = living | (reason > 0)
    total = torch.where(counted, total, 0.0)
    low, high = spec.episode_clip
    running = ledger[:, 0]
    reward = torch.where(counted, (running + total).clamp(low, high) - running, 0.0)
    return reward, terms, torch.where(alive_before, running + reward, running)[:, None]


# --- the nightly reset -------------------------------------------------------------------------


def nightly(tables: EconomyTables, state: TownState) -> TownState:
    """At the start of a day (the new clock at hour 0): living agents go to their birth cell,
    stop any use, leave any queue; the listed meters are clamped into their range."""
    morning = state.per_slot(state.clock % HOURS_PER_DAY == 0) & state.alive
    home = state.work[:, HOME_X : HOME_Y + 1]
    meters = torch.maximum(torch.minimum(state.meters, tables.reset_high), tables.reset_low)
    return state.replace(
        meters=torch.where(morning[:, None], meters, state.meters),
        position=torch.where(morning[:, None], home, state.position),
        progress=torch.where(morning, 0, state.progress),
        queue_key=torch.where(morning, -1, state.queue_key),
        stall=torch.where(morning, 0, state.stall),
    )
