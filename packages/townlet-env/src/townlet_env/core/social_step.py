"""The social part of one tick on a social level: conversation, queues and their effects on ties.

`dynamics.step` calls `social_phase` before the meters move (it decides who really uses an
affordance, and what chat adds to the social meter) and `social_reward` after them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from townlet_env.core.level import CompiledLevel
from townlet_env.core.observe import hour_of_day
from townlet_env.core.pairs import Pairs, columns, town_last
from townlet_env.core.queue import QueueOutcome, advance, first_in_line
from townlet_env.core.social import ChatOutcome, converse, personal_factors, settle_ties

if TYPE_CHECKING:
    from townlet_env.core.economy import Market


@dataclass(frozen=True)
class SocialPhase:
    chat: ChatOutcome
    queue: QueueOutcome
    ties: torch.Tensor  # [3, K, K, T] trust, familiarity, rivalry after the tick (town-last)
    drain: torch.Tensor  # [N] extra drain of the social meter from extroversion (x difficulty)


def social_phase(
    level: CompiledLevel, pairs: Pairs, executed: torch.Tensor, market: Market | None = None
) -> SocialPhase:
    """The chats and queues of the tick from `pairs.state`, the state at its start. On an
    economy level (`market`), an outage closes its affordances like closing hours do, and a
    gathering multiplies the chat gains of the agents at its place."""
    tables = level.social
    assert tables is not None
    spec = tables.spec
    state, aff, k = pairs.state, pairs.aff, pairs.k
    personal = personal_factors(tables, state.personality.view(-1, k, 3).permute(2, 1, 0).contiguous())
    if market is not None:
        personal = (personal[0] * town_last(market.boost_here, k), personal[1], personal[2])
    chatting = town_last(executed == tables.chat_action, k)
    chat = converse(tables, pairs, personal, chatting, pairs.busy)
    moved = level.is_move.index_select(0, executed)
    a = aff.clamp(min=0)
    open_now = (aff >= 0) & (level.aff_open[a, hour_of_day(state)] if level.day_cycle else True)
    if market is not None:
        open_now = open_now & ~market.closed_here
    queue = advance(pairs, executed, level.interact_action, moved, open_now, spec.queue.ghost_ticks)
    completed = queue.using & (state.progress + 1 >= level.aff_ticks.index_select(0, a))
    deltas = [chat.delta]
    handing_over = completed.view(-1, k).t() & queue.crowded  # [K, T]: a use ends, a queue waits
    if bool(queue.ghost.any()) or bool(handing_over.any()):  # most ticks have neither
        deltas.append(_queue_events(level, pairs, queue, handing_over, personal[1]))
    drain = spec.personality.social_drain * state.personality[:, 0]
    return SocialPhase(chat, queue, settle_ties(tables, pairs.ties, deltas), drain)


def _queue_events(
    level: CompiledLevel, pairs: Pairs, queue: QueueOutcome, handing_over: torch.Tensor, loss: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[K, K, T] tie changes from ghost steps and handovers (`handing_over`, `loss`: [K, T]).

    A ghost step raises the rivalry of every agent queued behind the released holder toward it,
    and the released holder's rivalry toward the one now first. An occupant that completes a use
    with a queue behind it hands over politely: trust rises both ways with the first in line.
    """
    tables = level.social
    assert tables is not None
    spec = tables.spec.queue
    k = pairs.k
    ghost = town_last(queue.ghost, k)
    head = (first_in_line(pairs)[:, None, :] == columns(k, ghost.device)) & queue.crowded[:, None, :]
    waited = (pairs.spot & pairs.queued[:, None, :] & ghost[None, :, :]).float()
    overtaken = (head & ghost[:, None, :]).float()
    d_riv = loss[:, None, :] * (spec.rivalry_stalled * waited + spec.rivalry_overtaken * overtaken)
    handover = (head & handing_over[:, None, :]).float()
    d_trust = spec.handover_trust * (handover + handover.transpose(0, 1))
    return d_trust, torch.zeros_like(d_trust), d_riv


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
