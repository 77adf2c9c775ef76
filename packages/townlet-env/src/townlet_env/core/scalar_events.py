"""The scalar engine's event scheduler and economy observation fields, for one town.

`schedule` is `events.schedule` on the uniforms that `Town.step_scalar` draws from the town's
generator with `events.draw` (the same draws as `Town.step`, so the two stay in lockstep);
`observe_economy` writes the fields of `observe_economy.economy_view`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from townlet_env.core.economy import (
    ABSENCES,
    BROKE,
    EMPLOYER,
    HOURS_PER_DAY,
    LATE,
    ON_TIME,
    OUTAGE,
    REHIRE_AT,
    SHIFT,
)
from townlet_env.core.level import CompiledLevel
from townlet_env.core.scalar_base import f32

if TYPE_CHECKING:
    from townlet_env.core.scalar_base import TownNumbers as ScalarTown


class EventTables:
    """The scheduler's and the observation's numbers of an economy level."""

    def __init__(self, level: CompiledLevel) -> None:
        tables = level.economy
        assert tables is not None
        spec = tables.spec
        self.chance = tables.event_chance.tolist()
        self.hours = tables.event_hours.tolist()
        self.cooldown = tables.event_cooldown.tolist()
        self.duration_low = tables.duration_low.tolist()
        self.duration_span = tables.duration_span.tolist()
        self.value_low = tables.value_low.tolist()
        self.value_span = tables.value_span.tolist()
        self.max_concurrent = spec.events.max_concurrent
        self.n_employers = len(spec.jobs.employers)
        self.cooldown_scale = max(spec.jobs.rehire_cooldown, 1)
        self.broke_scale = max(spec.lifecycle.evict_broke_ticks, 1)
        # `economy.popcount` counts the bits of whole bytes up to the window's width
        self.absence_bytes = (1 << 8 * ((spec.jobs.absence_window + 7) // 8)) - 1
        self.longest = float(max((e.duration[1] for e in spec.events.catalogue), default=1))
        layout = level.layout
        names = ["nearest", "employer", "job", "events", "prices", "closed"]
        ends = [layout[n].offset for n in names[1:]] + [layout["closed"].offset + layout["closed"].size]
        assert all(layout[n].offset + layout[n].size == e for n, e in zip(names, ends, strict=True)), names
        self.n_ch = layout["prices"].size
        self.channel = level.aff_channel.tolist()
        # the float32 quotients of the job fields, by their integer numerator
        fire = spec.jobs.absences_to_fire
        self.absence_share = [f32(n / fire) for n in range(8 * ((spec.jobs.absence_window + 7) // 8) + 1)]
        self.broke_share = [min(f32(n / self.broke_scale), 1.0) for n in range(self.broke_scale + 1)]
        self._prices_of: list[float] | None = None  # the market's price list the fields below are of
        self._price_fields: list[float] = []
        self._idle_fields: list[float] = []  # the fields while no event is on, of these prices
        self.job_width = self.n_employers + 9  # employer (one-hot) and job
        self.no_job = [0.0] * self.job_width
        n = self.n_employers
        self.employer_rows = [[float(e == m) for e in range(n)] for m in range(n)]


def schedule(town: ScalarTown, u: list[list[float]]) -> bool:
    """Start the events the uniforms `u` ([E][3]: start, duration, value) pick at the town's
    clock: not active, cooled down, inside its hours, `u[e][0]` below its chance; then, in
    catalogue order, as many as the cap on concurrent events leaves room for. True when an
    event started."""
    eco = town.economy
    ev = town.events
    clock = town.clock
    hour = clock % HOURS_PER_DAY
    room = ev.max_concurrent - sum(clock < end for end in eco.end)
    closing: list[int] = []
    wanted = started = 0
    for e, (u_start, u_duration, u_value) in enumerate(u):
        if clock < eco.end[e] or clock < eco.ready[e] or not ev.hours[e][hour] or not u_start < ev.chance[e]:
            continue
        wanted += 1
        if wanted > room:
            continue
        span = ev.duration_span[e]
        duration = ev.duration_low[e] + min(int(f32(u_duration * span)), span - 1)
        end = eco.end[e] = clock + duration
        eco.ready[e] = end + ev.cooldown[e]
        eco.value[e] = f32(ev.value_low[e] + f32(u_value * ev.value_span[e]))
        started += 1
        if eco.kind[e] == OUTAGE:
            closing += eco.targets[e]
    if not started:
        return False
    eco.changed()
    if closing:
        release(town, set(closing))
    return True


def release(town: ScalarTown, shut: set[int]) -> None:
    """Every agent on a closed affordance stops its use and leaves its queue (`events.release`)."""
    social = town.social
    for i in range(town.k):
        if town.affordance(i) in shut:
            town.progress[i] = 0
            if social is not None:
                social.queue_key[i] = -1
                social.stall[i] = 0


def _price_fields(ev: EventTables, price: list[float], closed: list[bool]) -> list[float]:
    """The prices (price - 1, clamped to [-1, 1]) and closed fields, by channel."""
    prices, shut = [0.0] * ev.n_ch, [0.0] * ev.n_ch
    for a, (p, c) in enumerate(zip(price, closed, strict=True)):
        v = f32(p - 1.0)
        prices[ev.channel[a]] = -1.0 if v < -1.0 else 1.0 if v > 1.0 else v
        shut[ev.channel[a]] = float(c)
    return prices + shut


def observe_economy(town: ScalarTown) -> list[list[float]]:
    """employer, job, events, prices and closed (contiguous fields that follow the social
    ones): one list per agent."""
    shared = shared_fields(town)
    return [row + shared for row in job_rows(town)]


def shared_fields(town: ScalarTown) -> list[float]:
    """events, prices and closed: the town's, the same in every agent's row. While no event
    is on, the same list as last time (so the caller may skip writing it again)."""
    eco, ev = town.economy, town.events
    mkt = eco.market(town)
    if ev._prices_of is not mkt.price:  # the market's lists are kept while its events stay on
        ev._prices_of, ev._price_fields = mkt.price, _price_fields(ev, mkt.price, mkt.closed)
        ev._idle_fields = [0.0] * (2 * len(mkt.active)) + ev._price_fields
    if not any(mkt.active):
        return ev._idle_fields
    clock = town.clock
    shared: list[float] = []
    for e, active in enumerate(mkt.active):
        left = eco.end[e] - clock
        shared += (1.0, min(f32(left / ev.longest), 1.0)) if active else (0.0, 0.0)
    return shared + ev._price_fields


def job_rows(town: ScalarTown) -> list[list[float]]:
    """employer and job: one list per agent (zeros for a dead one)."""
    eco, ev = town.economy, town.events
    clock, hour = town.clock, town.clock % HOURS_PER_DAY
    rows = []
    for i, w in enumerate(eco.work):
        if not town.alive[i]:
            rows.append(ev.no_job)
            continue
        employer = w[EMPLOYER]
        at = employer * HOURS_PER_DAY + hour
        rehire = w[REHIRE_AT] - clock
        row = list(ev.employer_rows[employer])
        row += (
            float(clock >= w[REHIRE_AT]),
            float(eco.in_shift[at]),
            float(town.affordance(i) == eco.place[employer]),
            float(w[SHIFT] == ON_TIME),
            float(w[SHIFT] == LATE),
            ev.absence_share[bin(w[ABSENCES] & ev.absence_bytes).count("1")],
            eco.until_start[at],
            min(f32(rehire / ev.cooldown_scale), 1.0) if rehire > 0 else 0.0,
            ev.broke_share[w[BROKE]] if w[BROKE] < ev.broke_scale else 1.0,
        )
        rows.append(row)
    return rows
