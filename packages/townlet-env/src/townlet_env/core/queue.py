"""Queues at capacity-1 affordances, for social levels (docs/social.md#queues).

An agent queues by standing on an affordance's cell and taking INTERACT while another agent
holds it; `queue_key[slot]` is the tick it joined (-1: not queued). Who is served is decided by
one key per agent present, smallest first:

    part-way through a use  <  queued, earliest join tick first (age priority), then lowest slot
                            <  present but not queued, lowest slot first

so the holder of every (town, affordance) is one `scatter_reduce(amin)` over those keys, as for
the capacity rule of the levels without queues. Pairwise questions (who is queued behind whom)
are [T, K, K] comparisons within each town.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet_env.core.social import others, slot_in_town
from townlet_env.core.state import TownState

NOT_QUEUED = -1


def serve_key(state: TownState, max_steps: int) -> torch.Tensor:
    """[N] long: the serving order of each agent on its affordance (smaller goes first)."""
    k = state.agents_per_town
    slot = slot_in_town(state.num_slots, k, state.meters.device)
    queued = state.queue_key >= 0
    unqueued = (max_steps + 2) * k + slot
    key = torch.where(queued, state.queue_key * k + slot, unqueued)
    return torch.where(state.progress > 0, -1, key)


def holds(state: TownState, aff: torch.Tensor, n_aff: int, key: torch.Tensor) -> torch.Tensor:
    """[N] bool: the agent is the one served on the affordance under it (and alive)."""
    present = (aff >= 0) & state.alive
    bucket = torch.where(present, state.town * n_aff + aff, state.num_towns * n_aff)
    best = torch.full((state.num_towns * n_aff + 1,), torch.iinfo(torch.long).max, device=aff.device)
    best = best.scatter_reduce(0, bucket, key, reduce="amin")
    return present & (best[bucket] == key)


def same_spot(state: TownState, aff: torch.Tensor) -> torch.Tensor:
    """[T, K, K] bool: i and j are different living agents on the same affordance."""
    k = state.agents_per_town
    a = torch.where((aff >= 0) & state.alive, aff, -1).view(-1, k)
    return (a[:, :, None] == a[:, None, :]) & ((a >= 0)[:, :, None] & others(k, aff.device))


def queued_others(
    state: TownState, spot: torch.Tensor, key: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """([N] someone else is queued on my affordance, [N] the first of them in serving order);
    `spot` is `same_spot` of the state."""
    k = state.agents_per_town
    queued = (state.queue_key >= 0).view(-1, k)
    behind = spot & queued[:, None, :]
    order = torch.where(behind, key.view(-1, k)[:, None, :], torch.iinfo(torch.long).max)
    return behind.any(dim=2).flatten(), order.argmin(dim=2).flatten()


def queue_position(state: TownState, aff: torch.Tensor, max_steps: int) -> torch.Tensor:
    """[N] long: how many queued agents are served before this one; -1 when not queued."""
    k = state.agents_per_town
    key = serve_key(state, max_steps).view(-1, k)
    queued = (state.queue_key >= 0).view(-1, k)
    ahead = same_spot(state, aff) & queued[:, None, :] & (key[:, None, :] < key[:, :, None])
    return torch.where(queued.flatten(), ahead.sum(dim=2).flatten(), NOT_QUEUED)


@dataclass(frozen=True)
class QueueOutcome:
    using: torch.Tensor  # [N] bool: INTERACT by the holder, a real use
    queue_key: torch.Tensor  # [N] long, after the tick
    stall: torch.Tensor  # [N] long, after the tick
    ghost: torch.Tensor  # [N] bool: released and sent to the back this tick
    head: torch.Tensor  # [N] long: first queued other on my affordance (valid where `crowded`)
    crowded: torch.Tensor  # [N] bool: someone else was queued on my affordance at the tick's start
    spot: torch.Tensor  # [T, K, K] bool: i and j on the same affordance at the tick's start


def advance(
    state: TownState,
    aff: torch.Tensor,
    executed: torch.Tensor,
    interact: int,
    moved: torch.Tensor,
    open_now: torch.Tensor,
    n_aff: int,
    max_steps: int,
    ghost_ticks: int,
) -> QueueOutcome:
    """The queue side of one tick, from the state at its start.

    INTERACT by the holder is a use (and leaves the queue); by anyone else it joins the queue at
    this tick, or keeps the place already held. Any move leaves the queue. A holder that is not
    part-way through a use, with others queued behind it, stalls on every tick it does not
    INTERACT while the affordance is open; at `ghost_ticks` stalls it is sent to the back (its
    key becomes this tick).
    """
    key = serve_key(state, max_steps)
    holder = holds(state, aff, n_aff, key)
    acts = executed == interact
    using = acts & holder
    spot = same_spot(state, aff)
    crowded, head = queued_others(state, spot, key)
    clock = state.per_slot(state.clock)
    queue_key = torch.where(acts & ~holder & (state.queue_key < 0), clock, state.queue_key)
    stalling = holder & (state.progress == 0) & crowded & open_now & ~acts & ~moved
    stall = torch.where(stalling, state.stall + 1, 0)
    ghost = stall >= ghost_ticks
    queue_key = torch.where(ghost, clock, queue_key)
    stall = torch.where(ghost, 0, stall)
    queue_key = torch.where(using | moved | ~state.alive, NOT_QUEUED, queue_key)
    return QueueOutcome(using, queue_key, stall, ghost, head, crowded, spot)
