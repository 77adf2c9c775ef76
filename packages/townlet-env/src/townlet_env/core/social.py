"""The social layer of a level with a `social.yaml`: ties, conversation and personalities.

Ties are [N, K] tensors (row: a slot, column: each slot of its town in slot order), so every
rule here is arithmetic on [T, K, K] views of them: with a handful of agents per town the
pairwise matrices are small, and no Python loop runs over agents or towns. Queues live in
`townlet_env.core.queue`. The rules, in words, are in docs/social.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from townlet_env.config import LevelConfig
from townlet_env.config.social import TRAITS, SocialFile

EXTROVERSION, FORGIVENESS, AMBITION = range(3)
TIES = ("trust", "familiarity", "rivalry")
TIE_RANGE = {"trust": (-1.0, 1.0), "familiarity": (0.0, 1.0), "rivalry": (0.0, 1.0)}


@dataclass(frozen=True)
class SocialTables:
    """What the social rules need, compiled once from social.yaml."""

    spec: SocialFile
    meter: int  # index of the meter that chat fills
    chat_action: int
    trait_low: torch.Tensor  # [3] float32
    trait_span: torch.Tensor  # [3] float32, high - low
    term_names: tuple[str, ...]
    tie_bounds: torch.Tensor  # [3 (decay, low, high), 3 ties, 1, 1] float32


def compile_social(cfg: LevelConfig) -> SocialTables | None:
    spec = cfg.social
    if spec is None:
        return None
    kinds = [a.kind for a in cfg.actions.actions]
    ranges = [getattr(spec.personality, t) for t in TRAITS]
    decay = spec.relationships.decay
    return SocialTables(
        spec=spec,
        meter=cfg.meter_names.index(spec.meter),
        chat_action=kinds.index("chat"),
        trait_low=torch.tensor([r[0] for r in ranges], dtype=torch.float32),
        trait_span=torch.tensor([r[1] - r[0] for r in ranges], dtype=torch.float32),
        term_names=spec.reward.term_names,
        tie_bounds=torch.tensor(
            [
                [decay.trust, decay.familiarity, decay.rivalry],
                [TIE_RANGE[t][0] for t in TIES],
                [TIE_RANGE[t][1] for t in TIES],
            ],
            dtype=torch.float32,
        ).view(3, 3, 1, 1),
    )


@functools.lru_cache(maxsize=64)
def others(k: int, device: torch.device) -> torch.Tensor:
    """[K, K] bool: j is not i. Cached: a tick must not build small constant tensors."""
    return ~torch.eye(k, dtype=torch.bool, device=device)


@functools.lru_cache(maxsize=64)
def columns(k: int, device: torch.device) -> torch.Tensor:
    return torch.arange(k, device=device)


@functools.lru_cache(maxsize=64)
def slot_in_town(n: int, k: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device) % k


# --- personality ---------------------------------------------------------------------------------


def draw_traits(tables: SocialTables, count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, 3] traits, uniform within the pack's ranges."""
    u = torch.rand(count, len(TRAITS), generator=generator, device=tables.trait_low.device)
    return tables.trait_low + u * tables.trait_span


def factors(tables: SocialTables, traits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N] (gain, loss) multipliers: chat gains grow with extroversion; losses and rivalry growth
    shrink with forgiveness and grow with ambition."""
    p = tables.spec.personality
    gain = 1.0 + p.chat_gain * traits[:, EXTROVERSION]
    loss = (1.0 - p.forgiveness_softening * traits[:, FORGIVENESS]) * (
        1.0 + p.ambition_rivalry * traits[:, AMBITION]
    )
    return gain, loss


def personal_factors(
    tables: SocialTables, traits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[N] (gain, loss, softening) of every agent: see `factors`; softening alone scales the
    familiarity a failed chat costs."""
    gain, loss = factors(tables, traits)
    return gain, loss, 1.0 - tables.spec.personality.forgiveness_softening * traits[:, FORGIVENESS]


# --- who can talk to whom ------------------------------------------------------------------------


def neighbours(position: torch.Tensor, alive: torch.Tensor, k: int) -> torch.Tensor:
    """[T, K, K] bool: j is another living agent of i's town on i's cell or next to it
    (Manhattan distance <= 1), and i is alive."""
    x, y = position.view(-1, k, 2).unbind(dim=2)
    dist = (x[:, :, None] - x[:, None, :]).abs_() + (y[:, :, None] - y[:, None, :]).abs_()
    living = alive.view(-1, k)
    return (dist <= 1) & (living[:, :, None] & living[:, None, :] & others(k, alive.device))


def tie_score(trust: torch.Tensor, familiarity: torch.Tensor, rivalry: torch.Tensor) -> torch.Tensor:
    """The best tie is the highest trust + familiarity - rivalry (float32, in this order)."""
    return trust + familiarity - rivalry


def chat_partner(
    position: torch.Tensor, alive: torch.Tensor, ties: tuple[torch.Tensor, ...], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """([N] partner's slot in town, [N] has one): the neighbour with the best tie, the lowest
    slot among equals (argmax returns the first maximum)."""
    near = neighbours(position, alive, k)
    score = tie_score(*(t.view(-1, k, k) for t in ties))
    score = torch.where(near, score, -torch.inf)
    return score.argmax(dim=2).flatten(), near.any(dim=2).flatten()


@dataclass(frozen=True)
class ChatOutcome:
    partner: torch.Tensor  # [N] partner's slot in its town, -1 when the agent did not chat
    success: torch.Tensor  # [N] bool
    social_gain: torch.Tensor  # [N] float32, added to the social meter
    delta: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # [T, K, K] change of each tie
    reward: torch.Tensor  # [N] float32, the chat reward term (before its alive mask)


def converse(
    tables: SocialTables,
    ties: tuple[torch.Tensor, ...],
    personal: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    chatting: torch.Tensor,
    partner: torch.Tensor,
    busy: torch.Tensor,
    town: torch.Tensor,
) -> ChatOutcome:
    """Every CHAT of the tick at once. S[t, i, j] marks "i talked to j and it worked"; i's ties
    toward j change by i's own factors (`personal`: gain, loss, softening), and a success counts
    for both ends (S and its transpose)."""
    spec = tables.spec.chat
    n = chatting.shape[0]
    k = ties[0].shape[1]
    dev = chatting.device
    trust, fam, riv = (t.view(-1, k, k) for t in ties)
    p = partner.clamp(min=0)
    p_slot = town * k + p
    # the partner refuses a rival above the threshold, and is not interrupted mid-use
    refused = riv.view(n, k)[p_slot, slot_in_town(n, k, dev)] > spec.avoid_rivalry
    success = chatting & ~refused & ~busy[p_slot]
    failure = chatting & ~success
    pick = (p[:, None] == columns(k, dev)).view(-1, k, k)
    s = (pick & success.view(-1, k, 1)).float()
    f = (pick & failure.view(-1, k, 1)).float()
    both = s + s.transpose(1, 2)
    gain, loss, soft = (v.view(-1, k, 1) for v in personal)
    d_trust = both * (spec.trust_gain * gain)
    d_fam = both * (spec.familiarity_gain * gain) - f * (spec.familiarity_loss * soft)
    d_riv = f * (spec.rivalry_on_failure * loss)
    r = tables.spec.reward.chat
    reward = torch.zeros(n, device=dev)
    if r is not None:
        reward = (both * (r.base + r.trust * trust + r.familiarity * fam)).sum(dim=2).flatten()
    return ChatOutcome(
        partner=torch.where(chatting, partner, -1),
        success=success,
        social_gain=both.sum(dim=2).flatten() * (spec.social_gain * personal[0]),
        delta=(d_trust, d_fam, d_riv),
        reward=reward,
    )


def settle_ties(
    tables: SocialTables, ties: tuple[torch.Tensor, ...], deltas: list[tuple[torch.Tensor, ...]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """New ties: the tick's events, then a decay toward 0 by at most the pack's amount, then the
    clamp to each tie's range. The three ties go through together, stacked."""
    value = torch.stack(ties)
    for delta in deltas:
        value += torch.stack(delta).view(value.shape)
    decay, low, high = tables.tie_bounds.unbind(dim=0)
    value -= value.clamp(-decay, decay)
    value = value.clamp_(low, high)
    trust, familiarity, rivalry = value.unbind(dim=0)
    return trust, familiarity, rivalry


def forget(ties: torch.Tensor, fresh: torch.Tensor, k: int) -> torch.Tensor:
    """Neutral ties in both directions for the slots marked `fresh` ([N] bool): a newcomer knows
    no one and no one knows it."""
    f = fresh.view(-1, k)
    wipe = (f[:, :, None] | f[:, None, :]).view(-1, k)
    return ties.masked_fill(wipe, 0.0)
