"""The economy fields of an observation (docs/economy.md#observation): the agent's employer and
job state, the events of its town, and the price and outage of every affordance channel. An
agent that is not alive sees its job fields as zeros (the town's events and prices stay).

Written column by column into the observation, with the hour and shift-status columns read from
tables in one gather each: a `stack` of the nine job columns and a copy of the result cost more
than the columns. The town's part (events, prices, outages) is built per town and copied to the
slots in one gather when the layout keeps those fields side by side (it does on every built-in
level)."""

from __future__ import annotations

import torch

from townlet_env.core.economy import (
    ABSENCES,
    BROKE,
    EMPLOYER,
    END,
    HOURS_PER_DAY,
    LATE,
    ON_TIME,
    REHIRE_AT,
    SHIFT,
    Market,
    popcount,
)
from townlet_env.core.level import CompiledLevel
from townlet_env.core.pairs import Pairs

# the job field's on-time and late columns for each shift status (WAITING, ON_TIME, LATE)
STATUS_COLUMNS = torch.tensor([[float(s == ON_TIME), float(s == LATE)] for s in range(3)])


def economy_view(level: CompiledLevel, pairs: Pairs, market: Market, obs: torch.Tensor) -> None:
    tables = level.economy
    assert tables is not None
    spec = tables.spec
    layout = level.layout
    state = pairs.state
    alive = state.alive[:, None].float()
    work = state.work
    onehot = obs[:, layout["employer"].slice]
    onehot.zero_()
    onehot.scatter_(1, work[:, EMPLOYER : EMPLOYER + 1], 1.0)
    onehot *= alive
    clock = state.per_slot(state.clock)
    employer = work[:, EMPLOYER]
    hours = tables.job_hours.index_select(0, torch.add(clock % HOURS_PER_DAY, employer, alpha=HOURS_PER_DAY))
    cooldown = max(spec.jobs.rehire_cooldown, 1)
    broke_scale = max(spec.lifecycle.evict_broke_ticks, 1)
    job = obs[:, layout["job"].slice]
    job[:, 0] = clock >= work[:, REHIRE_AT]  # employed
    job[:, 1] = hours[:, 0]  # in the shift's hours
    job[:, 2] = pairs.aff == tables.place.index_select(0, employer)  # on site
    job[:, 3:5] = STATUS_COLUMNS.to(obs.device).index_select(0, work[:, SHIFT])
    if tables.absence_share is None:
        share = popcount(work[:, ABSENCES], spec.jobs.absence_window).float() / spec.jobs.absences_to_fire
    else:
        share = tables.absence_share.index_select(0, work[:, ABSENCES])
    job[:, 5] = share
    job[:, 6] = hours[:, 1]  # until the next start
    job[:, 7] = ((work[:, REHIRE_AT] - clock).clamp(min=0).float() / cooldown).clamp(max=1.0)
    job[:, 8] = (work[:, BROKE].float() / broke_scale).clamp(max=1.0)
    job *= alive
    _town_fields(level, pairs, market, obs)


def _town_fields(level: CompiledLevel, pairs: Pairs, market: Market, obs: torch.Tensor) -> None:
    """The events, prices and outages of each slot's town."""
    tables = level.economy
    assert tables is not None
    layout = level.layout
    state = pairs.state
    t, a = state.num_towns, level.n_affordances
    n_events = tables.n_events
    events_at = layout["events"].offset
    prices, closed = layout["prices"], layout["closed"]
    side_by_side = (
        level.channels_in_order
        and prices.size == closed.size == a
        and events_at + 2 * n_events == prices.offset
        and prices.offset + a == closed.offset
    )
    if side_by_side:  # [T, events | prices | closed], then one gather to the slots
        town = torch.empty(t, 2 * n_events + 2 * a, device=obs.device)
        if n_events:
            _events_into(level, pairs, market, town[:, : 2 * n_events].view(t, n_events, 2))
        torch.clamp(market.price - 1.0, -1.0, 1.0, out=town[:, 2 * n_events : 2 * n_events + a])
        town[:, 2 * n_events + a :] = market.closed
        obs[:, events_at : closed.offset + a] = state.per_slot(town)
        return
    if n_events:
        events = torch.empty(t, n_events, 2, device=obs.device)
        _events_into(level, pairs, market, events)
        obs[:, layout["events"].slice] = state.per_slot(events.view(t, -1))
    prices_obs = obs[:, prices.slice]
    closed_obs = obs[:, closed.slice]
    if not level.channels_in_order:
        prices_obs.zero_()
        closed_obs.zero_()
    price = state.per_slot((market.price - 1.0).clamp(-1.0, 1.0))
    shut = state.per_slot(market.closed.float())
    if level.channels_in_order:
        prices_obs[:, :a] = price
        closed_obs[:, :a] = shut
    else:
        prices_obs[:, level.aff_channel] = price
        closed_obs[:, level.aff_channel] = shut


def _events_into(level: CompiledLevel, pairs: Pairs, market: Market, events: torch.Tensor) -> None:
    """[T, E, 2] each event active, and its ticks left / the longest duration (at most 1)."""
    tables = level.economy
    assert tables is not None
    state = pairs.state
    longest = float(max(e.duration[1] for e in tables.spec.events.catalogue))
    left = (state.event_clock[..., END] - state.clock[:, None]).clamp(min=0).float() / longest
    events[..., 0] = market.active
    torch.clamp(left, max=1.0, out=events[..., 1])
