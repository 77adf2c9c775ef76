"""Queues at capacity-1 affordances, for social levels (docs/social.md#queues).

An agent queues by standing on an affordance's cell and taking INTERACT while another agent
holds it; `queue_key[slot]` is the tick it joined (-1: not queued). Who is served is decided by
one key per agent present (`Pairs.serve_key`), smallest first:

    part-way through a use  <  queued, earliest join tick first (age priority), then lowest slot
                            <  present but not queued, lowest slot first

so the holder of an affordance is the agent on it that no other agent there goes before. That,
and who is queued behind whom, are [K, K, T] comparisons within each town
(`townlet_env.core.pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet_env.core.pairs import NOT_QUEUED, Pairs, any_other, slot_major

__all__ = ["NOT_QUEUED", "QueueOutcome", "advance", "first_in_line"]


@dataclass(frozen=True)
class QueueOutcome:
    using: torch.Tensor  # [N] bool: INTERACT by the holder, a real use
    queue_key: torch.Tensor  # [N] long, after the tick
    stall: torch.Tensor  # [N] long, after the tick
    ghost: torch.Tensor  # [N] bool: released and sent to the back this tick
    crowded: torch.Tensor  # [K, T] bool: someone else was queued on my affordance at the tick's start


def first_in_line(pairs: Pairs) -> torch.Tensor:
    """[K, T] the first in serving order of the others queued on my affordance (valid where
    `crowded`)."""
    order = torch.where(pairs.queued_with, pairs.serve_key[None, :, :], torch.iinfo(torch.long).max)
    return order.min(dim=1).indices


def advance(
    pairs: Pairs,
    executed: torch.Tensor,
    interact: int,
    moved: torch.Tensor,
    open_now: torch.Tensor,
    ghost_ticks: int,
) -> QueueOutcome:
    """The queue side of one tick, from the state at its start (`pairs.state`).

    INTERACT by the holder is a use (and leaves the queue); by anyone else it joins the queue at
    this tick, or keeps the place already held. Any move leaves the queue. A holder that is not
    part-way through a use, with others queued behind it, stalls on every tick it does not
    INTERACT while the affordance is open; at `ghost_ticks` stalls it is sent to the back (its
    key becomes this tick).
    """
    state = pairs.state
    holder = slot_major((pairs.standing >= 0) & ~any_other(pairs.served_before))
    crowded = any_other(pairs.queued_with)
    acts = executed == interact
    using = acts & holder
    clock = state.per_slot(state.clock)
    queue_key = torch.where(acts & ~holder & (state.queue_key < 0), clock, state.queue_key)
    stalling = holder & (state.progress == 0) & slot_major(crowded) & open_now & ~acts & ~moved
    stall = torch.where(stalling, state.stall + 1, 0)
    ghost = stall >= ghost_ticks
    queue_key = torch.where(ghost, clock, queue_key)
    stall = torch.where(ghost, 0, stall)
    queue_key = torch.where(using | moved | ~state.alive, NOT_QUEUED, queue_key)
    return QueueOutcome(using, queue_key, stall, ghost, crowded)
