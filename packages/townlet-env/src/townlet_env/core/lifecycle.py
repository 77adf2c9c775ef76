"""Who lives in a town of an economy level (docs/economy.md#lifecycle): newcomers' jobs and
homes, the population cap, and arrivals after the respawn delay.

`spawn.py` calls these: `newcomers` for every agent born (after its social traits, so that the
draws before stay what they are on L4), `cap_population` when a town is (re)generated, and
`arrivals` in the autoreset to pick the empty slots that get a newcomer this tick.
"""

from __future__ import annotations

import torch

from townlet_env.core.economy import HOME_X, HOME_Y, REHIRE_AT, VACANT, WORK_COLUMNS, EconomyTables
from townlet_env.core.state import TownState


def population_cap(tables: EconomyTables, agents_per_town: int) -> int:
    return min(tables.spec.lifecycle.population_cap, agents_per_town)


def newcomers(
    tables: EconomyTables, state: TownState, slots: torch.Tensor, xy: torch.Tensor, generator: torch.Generator
) -> TownState:
    """Each newcomer draws its employer, makes its birth cell its home, and starts employed, with
    no absences, no firings, money not yet at 0 and an empty ledger."""
    count = len(tables.spec.jobs.employers)
    employer = torch.randint(count, (slots.numel(),), generator=generator, device=slots.device)
    row = torch.zeros(slots.numel(), WORK_COLUMNS, dtype=torch.long, device=slots.device)
    row[:, 0] = employer
    row[:, HOME_X : HOME_Y + 1] = xy
    row[:, REHIRE_AT] = 0
    work = state.work.clone()
    work[slots] = row
    ledger = state.ledger.index_fill(0, slots, 0.0)
    return state.replace(work=work, ledger=ledger)


def cap_population(tables: EconomyTables, state: TownState, towns: torch.Tensor) -> TownState:
    """In the given (new) towns, only the first `population_cap` slots hold an agent."""
    k = state.agents_per_town
    cap = population_cap(tables, k)
    if cap >= k or towns.numel() == 0:
        return state
    empty = (towns[:, None] * k + torch.arange(cap, k, device=towns.device)).flatten()
    return state.replace(alive=state.alive.index_fill(0, empty, False))


def arrivals(tables: EconomyTables, state: TownState, ended_town: torch.Tensor) -> torch.Tensor:
    """[S] the empty slots (of towns that go on) that a newcomer takes this tick: empty for at
    least `respawn_delay` ticks, in slot order, while the town stays within its cap."""
    k = state.agents_per_town
    due = ~state.alive & (state.work[:, VACANT] >= tables.spec.lifecycle.respawn_delay)
    due = due & ~ended_town.index_select(0, state.town)
    room = population_cap(tables, k) - state.alive.view(-1, k).sum(dim=1, keepdim=True)
    take = due.view(-1, k) & (due.view(-1, k).long().cumsum(dim=1) <= room)
    return take.flatten().nonzero().flatten()
