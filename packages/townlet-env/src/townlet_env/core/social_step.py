"""The social part of one tick on a social level: conversation, queues and their effects on ties.

`dynamics.step` calls `social_phase` before the meters move (it decides who really uses an
affordance, and what chat adds to the social meter) and `social_reward` after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet_env.core.level import CompiledLevel
from townlet_env.core.observe import hour_of_day
from townlet_env.core.queue import QueueOutcome, advance
from townlet_env.core.social import (
    ChatOutcome,
    chat_partner,
    columns,
    converse,
    personal_factors,
    settle_ties,
)
from townlet_env.core.state import TownState


@dataclass(frozen=True)
class SocialPhase:
    chat: ChatOutcome
    queue: QueueOutcome
    ties: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # after the tick: trust, familiarity, rivalry
    drain: torch.Tensor  # [N] extra drain of the social meter from extroversion (x difficulty)


def social_phase(
    level: CompiledLevel, state: TownState, executed: torch.Tensor, aff: torch.Tensor
) -> SocialPhase:
    tables = level.social
    assert tables is not None
    spec = tables.spec
    k = state.agents_per_town
    ties = (state.trust, state.familiarity, state.rivalry)
    partner, _ = chat_partner(state.position, state.alive, ties, k)
    personal = personal_factors(tables, state.personality)
    busy = state.progress > 0
    chat = converse(tables, ties, personal, executed == tables.chat_action, partner, busy, state.town)
    moved = level.move_delta.index_select(0, executed).abs().sum(dim=1) > 0
    a = aff.clamp(min=0)
    open_now = (aff >= 0) & (level.aff_open[a, hour_of_day(state)] if level.day_cycle else True)
    queue = advance(
        state,
        aff,
        executed,
        level.interact_action,
        moved,
        open_now,
        level.n_affordances,
        level.max_steps,
        spec.queue.ghost_ticks,
    )
    completed = queue.using & (state.progress + 1 >= level.aff_ticks.index_select(0, a))
    events = _queue_events(level, state, queue, completed, personal[1])
    drain = spec.personality.social_drain * state.personality[:, 0]
    return SocialPhase(chat, queue, settle_ties(tables, ties, [chat.delta, events]), drain)


def _queue_events(
    level: CompiledLevel, state: TownState, queue: QueueOutcome, completed: torch.Tensor, loss: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[T, K, K] tie changes from ghost steps and handovers.

    A ghost step raises the rivalry of every agent queued behind the released holder toward it,
    and the released holder's rivalry toward the one now first. An occupant that completes a use
    with a queue behind it hands over politely: trust rises both ways with the first in line.
    """
    tables = level.social
    assert tables is not None
    spec = tables.spec.queue
    k = state.agents_per_town
    zero = torch.zeros(state.num_towns, k, k, device=loss.device)
    if not bool(queue.crowded.any()):  # no queue anywhere: nothing to resolve
        return zero, zero, zero
    queued = (state.queue_key >= 0).view(-1, k, 1)
    ghost = queue.ghost.view(-1, k)
    head = (queue.head[:, None] == columns(k, loss.device)) & queue.crowded[:, None]
    head = head.view(-1, k, k)
    waited = (queue.spot & queued & ghost[:, None, :]).float()
    overtaken = (head & ghost[:, :, None]).float()
    d_riv = loss.view(-1, k, 1) * (spec.rivalry_stalled * waited + spec.rivalry_overtaken * overtaken)
    handover = (head & completed.view(-1, k, 1)).float()
    d_trust = spec.handover_trust * (handover + handover.transpose(1, 2))
    return d_trust, zero, d_riv


def social_reward(
    level: CompiledLevel, needs: torch.Tensor, living: torch.Tensor, chat: ChatOutcome
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """([N] reward, each term by name): the declared terms, 0 for an agent not alive after the
    tick, and their sum clipped per tick."""
    tables = level.social
    assert tables is not None
    spec = tables.spec.reward
    terms: dict[str, torch.Tensor] = {}
    if spec.needs is not None:
        terms["needs"] = spec.needs * needs
    if spec.survival is not None:
        terms["survival"] = torch.full_like(needs, spec.survival)
    if spec.chat is not None:
        terms["chat"] = chat.reward
    terms = {name: torch.where(living, value, 0.0) for name, value in terms.items()}
    total = torch.stack(list(terms.values())).sum(dim=0)
    return torch.where(living, total.clamp(*spec.clip), 0.0), terms
