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

from townlet_env.core.economy_tables import (
    ABSENCES as ABSENCES,
)
from townlet_env.core.economy_tables import (
    BROKE as BROKE,
)
from townlet_env.core.economy_tables import (
    EMPLOYER as EMPLOYER,
)
from townlet_env.core.economy_tables import (
    END as END,
)
from townlet_env.core.economy_tables import (
    FIRINGS as FIRINGS,
)
from townlet_env.core.economy_tables import (
    GATHERING as GATHERING,
)
from townlet_env.core.economy_tables import (
    HOME_X as HOME_X,
)
from townlet_env.core.economy_tables import (
    HOME_Y as HOME_Y,
)
from townlet_env.core.economy_tables import (  # the tables and constants, re-exported
    HOURS_PER_DAY as HOURS_PER_DAY,
)
from townlet_env.core.economy_tables import (
    LATE as LATE,
)
from townlet_env.core.economy_tables import (
    ON_TIME as ON_TIME,
)
from townlet_env.core.economy_tables import (
    OUTAGE as OUTAGE,
)
from townlet_env.core.economy_tables import (
    POPCOUNT as POPCOUNT,
)
from townlet_env.core.economy_tables import (
    READY as READY,
)
from townlet_env.core.economy_tables import (
    REHIRE_AT as REHIRE_AT,
)
from townlet_env.core.economy_tables import (
    SHIFT as SHIFT,
)
from townlet_env.core.economy_tables import (
    SPIKE as SPIKE,
)
from townlet_env.core.economy_tables import (
    VACANT as VACANT,
)
from townlet_env.core.economy_tables import (
    WAITING as WAITING,
)
from townlet_env.core.economy_tables import (
    WORK_COLUMNS as WORK_COLUMNS,
)
from townlet_env.core.economy_tables import (
    EconomyTables as EconomyTables,
)
from townlet_env.core.economy_tables import (
    compile_economy as compile_economy,
)
from townlet_env.core.economy_tables import (
    popcount as popcount,
)
from townlet_env.core.state import TownState

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


def absences(tables: EconomyTables, bits: torch.Tensor) -> torch.Tensor:
    """[N] absences counted in the window's bit masks `bits` (one gather for windows up to 12)."""
    if tables.absence_count is None:
        return popcount(bits, tables.spec.jobs.absence_window)
    return tables.absence_count.index_select(0, bits)


# --- leaving -----------------------------------------------------------------------------------


def leave(
    tables: EconomyTables,
    state: TownState,
    meters: torch.Tensor,
    died: torch.Tensor,
    living: torch.Tensor,
    work: torch.Tensor,
    at_zero: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(evicted [N] bool, exit_reason [N] long, work after) from the post-tick meters
    (`at_zero`: which terminal meters are at 0, when the caller has it).

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
    if at_zero is None:
        at_zero = meters.index_select(1, tables.terminal_index) <= 0.0
    first = at_zero.long().argmax(dim=1) + 1  # 1 + the first terminal meter at 0
    reason = torch.where(died, first, 0)
    evicted = None
    if out_of_work is not None:
        reason = torch.where(out_of_work, n_reasons - 1, reason)
        evicted = out_of_work
    if out_of_money is not None:  # an agent out of both is out of money
        reason = torch.where(out_of_money, n_reasons - 2, reason)
        evicted = out_of_money if evicted is None else evicted | out_of_money
    if evicted is None:
        evicted = torch.zeros_like(died)
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
        # on time, late and absent exclude each other: one gather from the term's four values
        code = (job.on_time + job.late * 2 + job.absent * 3) * living  # 0: none, or not living
        terms["punctuality"] = tables.punctuality.index_select(0, code)
    if spec.terminal:
        terms["terminal"] = tables.terminal_penalty.index_select(0, reason)
    # added term by term, in order: a sum over a stacked dimension adds in an order that
    # depends on the number of slots (the same agent would get another reward in another batch)
    values = iter(terms.values())
    total = next(values)
    for value in values:
        total = total + value
    total = total.clamp(*clip)
    counted = living | (reason > 0)  # the rows of the others are 0 below, whatever their total
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
