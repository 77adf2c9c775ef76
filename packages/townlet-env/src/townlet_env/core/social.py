"""The social layer of a level with a `social.yaml`: ties, conversation and personalities.

Ties are [N, K] tensors in the state (row: a slot, column: each slot of its town in slot
order). The rules here are arithmetic on the pairwise matrices of every town at once, laid out
[K (i), K (j), T] with the town last (`townlet_env.core.pairs` says why), so no Python loop
runs over agents or towns. Queues live in `townlet_env.core.queue`. The rules, in words, are in
docs/social.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet_env.config import LevelConfig
from townlet_env.config.social import TRAITS, SocialFile
from townlet_env.core.pairs import Pairs, any_other, columns, slot_major

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
    tie_bounds: tuple[tuple[float, float, float], ...]  # per tie: (decay, low, high)


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
        tie_bounds=tuple((getattr(decay, t), *TIE_RANGE[t]) for t in TIES),
    )


# --- personality ---------------------------------------------------------------------------------


def draw_traits(tables: SocialTables, count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, 3] traits, uniform within the pack's ranges."""
    u = torch.rand(count, len(TRAITS), generator=generator, device=tables.trait_low.device)
    return tables.trait_low + u * tables.trait_span


def personal_factors(
    tables: SocialTables, traits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gain, loss, softening) of every agent, from its traits ([3, ...] -> [...] each): chat
    gains grow with extroversion; losses and rivalry growth shrink with forgiveness and grow
    with ambition; softening alone scales the familiarity a failed chat costs."""
    p = tables.spec.personality
    gain = 1.0 + p.chat_gain * traits[EXTROVERSION]
    loss = (1.0 - p.forgiveness_softening * traits[FORGIVENESS]) * (
        1.0 + p.ambition_rivalry * traits[AMBITION]
    )
    return gain, loss, 1.0 - p.forgiveness_softening * traits[FORGIVENESS]


# --- conversation --------------------------------------------------------------------------------
# On [K (i), K (j), T] matrices and [K, T] per-agent tensors: see townlet_env.core.pairs.


def tie_score(trust: torch.Tensor, familiarity: torch.Tensor, rivalry: torch.Tensor) -> torch.Tensor:
    """The best tie is the highest trust + familiarity - rivalry (float32, in this order)."""
    return trust + familiarity - rivalry


def chat_partner(pairs: Pairs) -> torch.Tensor:
    """[K, T] the slot in town of each agent's partner: the neighbour with the best tie, the
    lowest slot among equals (`max` returns the first maximum); 0 without a neighbour."""
    score = tie_score(*pairs.ties.unbind(dim=0)).masked_fill_(~pairs.near, -torch.inf)
    return score.max(dim=1).indices


@dataclass(frozen=True)
class ChatOutcome:
    partner: torch.Tensor  # [N] partner's slot in its town, -1 when the agent did not chat
    success: torch.Tensor  # [N] bool
    social_gain: torch.Tensor  # [N] float32, added to the social meter
    delta: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # [K, K, T] change of each tie
    reward: torch.Tensor  # [N] float32, the chat reward term (before its alive mask)


def converse(
    tables: SocialTables,
    pairs: Pairs,
    personal: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    chatting: torch.Tensor,
    busy: torch.Tensor,
) -> ChatOutcome:
    """Every CHAT of the tick at once. S[i, j] marks "i talked to j and it worked"; i's ties
    toward j change by i's own factors (`personal`: gain, loss, softening), and a success counts
    for both ends (S and its transpose). `personal`, `chatting` and `busy` are [K, T]."""
    spec = tables.spec.chat
    trust, fam, riv = pairs.ties.unbind(dim=0)
    partner = chat_partner(pairs)
    pick = partner[:, None, :] == columns(pairs.k, partner.device)  # [K, K, T]: j is i's partner
    # the partner refuses a rival above the threshold, and is not interrupted mid-use
    refuses = (riv.transpose(0, 1) > spec.avoid_rivalry) | busy[None, :, :]
    success = chatting & ~any_other(pick & refuses)
    failure = chatting & ~success
    s = (pick & success[:, None, :]).float()
    f = (pick & failure[:, None, :]).float()
    both = s + s.transpose(0, 1)
    gain, loss, soft = (v[:, None, :] for v in personal)
    d_trust = both * (spec.trust_gain * gain)
    d_fam = both * (spec.familiarity_gain * gain) - f * (spec.familiarity_loss * soft)
    d_riv = f * (spec.rivalry_on_failure * loss)
    r = tables.spec.reward.chat
    if r is None:
        reward = torch.zeros(pairs.state.num_slots, device=both.device)
    else:
        each = both * (r.base + r.trust * trust + r.familiarity * fam)
        # summed town-first, over the last dimension: the order in which torch adds a row's
        # floats depends on the layout, and the reward stays what it was before the layout
        reward = each.permute(2, 0, 1).contiguous().sum(dim=2).flatten()
    return ChatOutcome(
        partner=slot_major(torch.where(chatting, partner, -1)),
        success=slot_major(success),
        social_gain=slot_major(both.sum(dim=1) * (spec.social_gain * personal[0])),
        delta=(d_trust, d_fam, d_riv),
        reward=reward,
    )


def settle_ties(
    tables: SocialTables, ties: torch.Tensor, deltas: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """New ties ([3, K, K, T], like `ties`, `Pairs.ties`): the tick's events, then a decay toward
    0 by at most the pack's amount, then the clamp to each tie's range."""
    value = ties.clone()
    for delta in deltas:
        for tie, change in zip(value, delta, strict=True):
            tie += change
    # tie by tie, with the bounds as numbers: a clamp to broadcast bound tensors is several
    # times slower
    for tie, (decay, low, high) in zip(value, tables.tie_bounds, strict=True):
        tie -= tie.clamp(-decay, decay)
        tie.clamp_(low, high)
    return value


def forget(ties: tuple[torch.Tensor, ...], slots: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """Neutral ties ([N, K] each) in both directions for the newcomers in `slots`: a newcomer
    knows no one (its row) and no one knows it (its column, in the rows of its town)."""
    town_rows = (slots // k * k)[:, None] + torch.arange(k, device=slots.device)  # [S, K]
    columns = (town_rows * k + (slots % k)[:, None]).flatten()  # flat (row, newcomer's column)
    out = []
    for tie in ties:
        tie = tie.index_fill(0, slots, 0.0)
        tie.view(-1).index_fill_(0, columns, 0.0)
        out.append(tie)
    return tuple(out)
