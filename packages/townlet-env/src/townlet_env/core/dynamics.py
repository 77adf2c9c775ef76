"""One tick of every town at once: `step(level, state, actions) -> (state, StepResult)`.

The order is the one in docs/index.md: actions; base drain x difficulty, modulations, cascades;
terminal check; reward from the post-step state; clock + 1. Meters are clamped to [0, 1] after
each phase. A tick uses no randomness, so it is a pure function of its inputs; births and
town regeneration live in `townlet_env.core.spawn`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from townlet_env.core import economy
from townlet_env.core.level import CompiledLevel
from townlet_env.core.observe import action_mask, affordance_at, market_of
from townlet_env.core.pairs import NOT_QUEUED, Pairs, ties_slot_major
from townlet_env.core.social_step import SocialPhase, social_phase, social_reward
from townlet_env.core.state import TownState


@dataclass(frozen=True)
class StepResult:
    reward: torch.Tensor  # [N] float32
    terminated: torch.Tensor  # [N] bool: died this tick
    truncated: torch.Tensor  # [N] bool: alive when the town reached max_steps
    invalid_action: torch.Tensor  # [N] bool: the chosen action was masked and ran as WAIT
    executed: torch.Tensor  # [N] long: the action that ran
    # social levels only (docs/social.md): the chat partner's slot in its town (-1: no CHAT),
    # whether the chat worked, and each reward term by name
    chat_partner: torch.Tensor | None = None
    chat_success: torch.Tensor | None = None
    reward_terms: dict[str, torch.Tensor] = field(default_factory=dict)
    # the new ties as `Pairs.ties` holds them ([3, K, K, T]), for the new state's Pairs
    ties_town_last: torch.Tensor | None = None
    # economy levels only (docs/economy.md): why each slot's agent left (0: it did not), and the
    # job side of the tick
    exit_reason: torch.Tensor | None = None
    shift: economy.Shift | None = None


def step(
    level: CompiledLevel,
    state: TownState,
    actions: torch.Tensor,
    mask: torch.Tensor | None = None,
    pairs: Pairs | None = None,
) -> tuple[TownState, StepResult]:
    """One tick. `mask` may pass in `action_mask(level, state)` when the caller already has it,
    and `pairs` the `Pairs` of `state` on a social level (any other is ignored)."""
    if level.social is None or pairs is None or pairs.state is not state:
        aff = affordance_at(level, state)
        pairs = None if level.social is None else Pairs(state, aff, level.max_steps)
    else:
        aff = pairs.aff
    if mask is None:
        mask = action_mask(level, state, aff, pairs)
    legal = mask.gather(1, actions[:, None]).squeeze(1)
    executed = torch.where(legal, actions, level.wait_action)
    alive = state.alive
    market = None if pairs is None or level.economy is None else market_of(level, pairs)
    social = None if pairs is None else social_phase(level, pairs, executed, market)
    job = None if market is None else economy.shift(level.economy, state, aff)  # type: ignore[arg-type]

    meters, progress = _act(level, state, executed, aff, social, market, job)
    meters = _drain(level, meters, state.difficulty, social)
    meters = torch.where(alive[:, None], meters, state.meters)  # the dead do not change

    at_zero = meters.index_select(1, level.terminal_index) <= 0.0  # [N, terminal meters]
    died = alive & at_zero.any(dim=1)
    living = alive & ~died
    if job is not None:  # an eviction ends the agent's life in the town like a death
        assert level.economy is not None
        evicted, exit_reason, work = economy.leave(
            level.economy, state, meters, died, living, job.work, at_zero
        )
        died, living = died | evicted, living & ~evicted
    clock = state.clock + 1
    truncated = living & (state.per_slot(clock) >= level.max_steps)

    new_state = state.replace(
        meters=meters,
        position=state.position + level.move_delta.index_select(0, executed),
        alive=living,
        progress=torch.where(living, progress, 0),
        life_steps=state.life_steps + alive.long(),
        clock=clock,
    )
    if social is None:
        reward = torch.where(living, reward_of(level, meters), 0.0)
        return new_state, StepResult(reward, died, truncated, ~legal, executed)
    reward, terms = social_reward(level, reward_of(level, meters), living, social.chat)
    trust, familiarity, rivalry = ties_slot_major(social.ties)
    new_state = new_state.replace(
        trust=trust,
        familiarity=familiarity,
        rivalry=rivalry,
        queue_key=torch.where(living, social.queue.queue_key, NOT_QUEUED),
        stall=torch.where(living, social.queue.stall, 0),
    )
    chat = social.chat
    if job is not None:
        assert level.economy is not None
        reward, terms, ledger = economy.economy_reward(
            level.economy, spec_clip(level), terms, living, alive, job, exit_reason, state.ledger
        )
        new_state = new_state.replace(work=work, ledger=ledger)
        if level.economy.spec.lifecycle.nightly_reset is not None:
            new_state = economy.nightly(level.economy, new_state)
        return new_state, StepResult(
            reward,
            died,
            truncated,
            ~legal,
            executed,
            chat.partner,
            chat.success,
            terms,
            social.ties,
            exit_reason,
            job,
        )
    result = StepResult(
        reward, died, truncated, ~legal, executed, chat.partner, chat.success, terms, social.ties
    )
    return new_state, result


def spec_clip(level: CompiledLevel) -> tuple[float, float]:
    assert level.social is not None
    return level.social.spec.reward.clip


def _act(
    level: CompiledLevel,
    state: TownState,
    executed: torch.Tensor,
    aff: torch.Tensor,
    social: SocialPhase | None,
    market: economy.Market | None = None,
    job: economy.Shift | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase 1: the executed actions' own meter effects, any affordance use and, on a social
    level, what chats add to the social meter; on an economy level, prices scale the cost of a
    use, wages are paid and lateness is docked."""
    delta = level.action_delta.index_select(0, executed)
    progress = torch.zeros_like(state.progress)
    if social is not None:
        assert level.social is not None
        delta[:, level.social.meter] += social.chat.social_gain  # delta is this call's own
    if job is not None:
        assert level.economy is not None
        delta[:, level.economy.money] += job.wage - job.late_fee
    if level.interact_action >= 0:
        # masked INTERACT already became WAIT; with queues, only the holder's INTERACT is a use
        using = executed == level.interact_action if social is None else social.queue.using
        a = aff.clamp(min=0)
        if level.multi_tick:
            progress = torch.where(using, state.progress + 1, 0)
            done = using & (progress >= level.aff_ticks.index_select(0, a))
            use = (
                level.aff_tick_delta.index_select(0, a) * using[:, None]
                + level.aff_completion.index_select(0, a) * done[:, None]
            )
            if market is not None:
                assert level.economy is not None
                use = use - economy.surcharge(level.economy, market, a, using)
            progress = torch.where(done, 0, progress)
        else:
            use = level.aff_instant_delta.index_select(0, a) * using[:, None]
        delta = delta + use
    return (state.meters + delta).clamp(0.0, 1.0), progress


def _drain(
    level: CompiledLevel, meters: torch.Tensor, difficulty: torch.Tensor, social: SocialPhase | None
) -> torch.Tensor:
    """Phase 2: base drain (plus extroversion's on the social meter) x difficulty, then
    modulations, then cascade stages in order."""
    drain = level.drain
    if social is not None:
        assert level.social is not None
        drain = drain.expand_as(meters).clone()
        drain[:, level.social.meter] += social.drain
    meters = (meters - drain * difficulty[:, None]).clamp(0.0, 1.0)
    for source, target, base, offset, scale in level.modulations:
        loss = base * (offset + scale * (1.0 - meters[:, source]))
        meters = meters.clone()
        meters[:, target] = (meters[:, target] - loss).clamp(0.0, 1.0)
    for stage in level.cascade_stages:
        pressure = (stage.threshold - meters.index_select(1, stage.source)).clamp(min=0.0)
        loss = (pressure * stage.strength_over_threshold) @ stage.target
        meters = (meters - loss).clamp(0.0, 1.0)
    return meters


def reward_of(level: CompiledLevel, meters: torch.Tensor) -> torch.Tensor:
    """[N] reward formula of the level applied to post-step meters (before the alive mask)."""
    spec = level.config.reward.reward
    read = meters.index_select(1, level.reward_meters)
    if spec.kind == "product":
        reward = read.prod(dim=1)
    elif spec.kind == "weighted_sum":
        reward = spec.base + ((read - spec.centre) * level.reward_weights).sum(dim=1)
    else:
        reward = spec.base + spec.bonus * read.prod(dim=1)
    if spec.clip is not None:
        reward = reward.clamp(*spec.clip)
    return reward
