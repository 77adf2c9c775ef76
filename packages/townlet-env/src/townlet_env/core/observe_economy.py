"""The economy fields of an observation (docs/economy.md#observation): the agent's employer and
job state, the events of its town, and the price and outage of every affordance channel. An
agent that is not alive sees its job fields as zeros (the town's events and prices stay)."""

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
    employed,
    popcount,
)
from townlet_env.core.level import CompiledLevel
from townlet_env.core.pairs import Pairs


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
    at = work[:, EMPLOYER] * HOURS_PER_DAY + clock % HOURS_PER_DAY
    place = tables.place.take(work[:, EMPLOYER])
    cooldown = max(spec.jobs.rehire_cooldown, 1)
    broke_scale = max(spec.lifecycle.evict_broke_ticks, 1)
    job = torch.stack(
        (
            employed(state).float(),
            tables.in_shift.take(at).float(),
            (pairs.aff == place).float(),
            (work[:, SHIFT] == ON_TIME).float(),
            (work[:, SHIFT] == LATE).float(),
            popcount(work[:, ABSENCES], spec.jobs.absence_window).float() / spec.jobs.absences_to_fire,
            tables.until_start.take(at),
            ((work[:, REHIRE_AT] - clock).clamp(min=0).float() / cooldown).clamp(max=1.0),
            (work[:, BROKE].float() / broke_scale).clamp(max=1.0),
        ),
        dim=1,
    )
    obs[:, layout["job"].slice] = job * alive
    if tables.n_events:
        longest = float(max(e.duration[1] for e in spec.events.catalogue))
        left = (state.event_clock[..., END] - state.clock[:, None]).clamp(min=0).float() / longest
        events = torch.stack((market.active.float(), left.clamp(max=1.0)), dim=2)  # [T, E, 2]
        obs[:, layout["events"].slice] = state.per_slot(events.view(state.num_towns, -1))
    prices = obs[:, layout["prices"].slice]
    closed = obs[:, layout["closed"].slice]
    if not level.channels_in_order:
        prices.zero_()
        closed.zero_()
    a = level.n_affordances
    price = state.per_slot((market.price - 1.0).clamp(-1.0, 1.0))
    shut = state.per_slot(market.closed.float())
    if level.channels_in_order:
        prices[:, :a] = price
        closed[:, :a] = shut
    else:
        prices[:, level.aff_channel] = price
        closed[:, level.aff_channel] = shut
