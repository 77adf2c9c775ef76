"""A slow, plain-Python reference of one Townlet tick, for differential tests of the tensor core.

It reads the validated level pack (`LevelConfig`), never the compiled tensor tables, and walks
agents and cells with ordinary loops, so it is an independent reading of the rules that
docs/index.md, meters.md, cascades.md, affordances.md and social.md describe. The state lives
in `reference_state`, the observation in `reference_observe` and the social layer (chat, queues,
ties, reward terms) in `reference_social`; this module is the tick and the action mask:

    ref = from_tensor_state(cfg, core_state)
    ref_next, rewards, terminated, truncated, invalid = ref_step(cfg, ref, actions)
    mask, obs = ref_action_mask(cfg, ref_next), ref_observe(cfg, ref_next)

Arithmetic is in Python floats (float64) while the core works in float32, so the two agree to
about 1e-6. A discrete outcome that hangs on a float comparison (can the agent afford a use,
did a terminal meter reach 0) can then legitimately differ when the deciding value sits right
at its boundary; `ref_step_detail` and `ref_action_mask_detail` report such agents as
`near_boundary`, so a test can excuse exactly those and nothing else.
"""

from __future__ import annotations

import math

from townlet_env.config import LevelConfig
from townlet_env.testing import reference_economy as economy
from townlet_env.testing import reference_social as social
from townlet_env.testing.reference_observe import ref_observe
from townlet_env.testing.reference_state import (
    BOUNDARY,
    HOURS_PER_DAY,
    RefAgent,
    RefState,
    RefStepResult,
    RefTown,
    affordance_under,
    from_tensor_state,
    is_open,
    meter_index,
    on_grid,
)


def holder(state: RefState, slot: int) -> int:
    """The one agent of the town who may use the affordance under `slot` (capacity 1): an agent
    part-way through a use first, then the lowest slot."""
    me = state.agents[slot]
    here = [
        j
        for j in state.town_slots(state.town_of(slot))
        if state.agents[j].alive and (state.agents[j].x, state.agents[j].y) == (me.x, me.y)
    ]
    return min(here, key=lambda j: (state.agents[j].progress == 0, j))


def price(cfg: LevelConfig, aff: int) -> dict[str, float]:
    """What the agent must hold to start: a whole use (instant) or one tick (multi-tick)."""
    spec = cfg.affordances.affordances[aff]
    ticks = 1 if cfg.world.interaction == "multi_tick" else spec.ticks
    return {name: amount * ticks for name, amount in spec.cost.items()}


def interact_check(cfg: LevelConfig, state: RefState, slot: int) -> tuple[bool, bool]:
    """(may INTERACT, the affordability decision was within BOUNDARY of flipping)."""
    aff = affordance_under(state, slot)
    if aff is None:
        return False, False
    clock = state.towns[state.town_of(slot)].clock
    if not is_open(cfg, aff, clock % HOURS_PER_DAY):
        return False, False
    if cfg.social is None and holder(state, slot) != slot:  # a social level queues instead
        return False, False
    if cfg.economy is not None and economy.closed_here(cfg, state, slot):
        return False, False
    idx = meter_index(cfg)
    meters = state.agents[slot].meters
    factor = 1.0 if cfg.economy is None else economy.price_here(cfg, state, slot)
    margins = [meters[idx[name]] - need * factor for name, need in price(cfg, aff).items()]
    affordable = all(m >= 0 for m in margins)
    return affordable, any(abs(m) <= BOUNDARY for m in margins)


def ref_action_mask_detail(cfg: LevelConfig, state: RefState) -> tuple[list[list[bool]], list[bool]]:
    """Mask of every slot, and per slot whether its INTERACT entry sits on the boundary."""
    actions = cfg.actions.actions
    mask, near = [], []
    for slot, agent in enumerate(state.agents):
        row, close = [], False
        for spec in actions:
            if not agent.alive:
                row.append(spec.kind == "wait")
            elif spec.kind == "move":
                assert spec.delta is not None
                x, y = agent.x + spec.delta[0], agent.y + spec.delta[1]
                row.append(on_grid(cfg, x, y) and (x, y) not in state.walls)
            elif spec.kind == "interact":
                legal, close = interact_check(cfg, state, slot)
                row.append(legal)
            elif spec.kind == "chat":
                row.append(bool(social.neighbours(state, slot)))
            else:
                row.append(True)
        mask.append(row)
        near.append(close)
    return mask, near


def ref_action_mask(cfg: LevelConfig, state: RefState) -> list[list[bool]]:
    return ref_action_mask_detail(cfg, state)[0]


# --- one tick ----------------------------------------------------------------------------------


class _Meters:
    """One agent's meters with the clamp to [0, 1], remembering the lowest unclamped value of
    the tick so the terminal check can tell a clear death from one decided by rounding."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)
        self.lowest = [math.inf] * len(values)

    def add(self, m: int, delta: float) -> None:
        raw = self.values[m] + delta
        self.lowest[m] = min(self.lowest[m], raw)
        self.values[m] = min(1.0, max(0.0, raw))


def ref_step(
    cfg: LevelConfig, state: RefState, actions: list[int]
) -> tuple[RefState, list[float], list[bool], list[bool], list[bool]]:
    r = ref_step_detail(cfg, state, actions)
    return r.state, r.rewards, r.terminated, r.truncated, r.invalid


def ref_step_detail(cfg: LevelConfig, state: RefState, actions: list[int]) -> RefStepResult:
    specs = cfg.actions.actions
    wait = next(i for i, a in enumerate(specs) if a.kind == "wait")
    mask, near = ref_action_mask_detail(cfg, state)
    new = state.copy()
    n = len(state.agents)
    out = RefStepResult(
        new, [0.0] * n, [False] * n, [False] * n, [False] * n, [wait] * n, [False] * n, [False] * n, near
    )
    if cfg.social is not None:
        out.reward_terms = {name: [0.0] * n for name in cfg.social.reward.term_names}
    if cfg.economy is not None:
        out.reward_terms.update({name: [0.0] * n for name in cfg.economy.reward.term_names})
        out.exit_reason = [0] * n
        jobs = [economy.shift(cfg, state, slot) for slot in range(n)]
        out.wage, out.on_time = [j.wage for j, _ in jobs], [j.on_time for j, _ in jobs]
        out.late, out.absent = [j.late for j, _ in jobs], [j.absent for j, _ in jobs]
        out.fired = [j.fired for j, _ in jobs]
        for slot, (_, work) in enumerate(jobs):
            new.agents[slot].work = work
    for slot in range(n):
        out.invalid[slot] = not mask[slot][actions[slot]]
        out.executed[slot] = actions[slot] if mask[slot][actions[slot]] else wait
    chat = social.phase(cfg, state, out.executed) if cfg.social is not None else None
    for slot, before in enumerate(state.agents):
        executed = out.executed[slot]
        if not before.alive:
            new.agents[slot].progress = 0
            if cfg.economy is not None:  # an empty slot counts the ticks since its agent left
                new.agents[slot].work[economy.VACANT] += 1
                new.agents[slot].work[economy.BROKE] = 0
            continue
        meters = _Meters(before.meters)
        job = jobs[slot][0] if cfg.economy is not None else None
        out.used[slot], out.completed[slot] = _act(cfg, state, new, slot, executed, meters, chat, job)
        _drain(cfg, meters, before, chat is not None)
        agent = new.agents[slot]
        agent.meters = meters.values
        died, close = _terminal_check(cfg, meters)
        out.near_boundary[slot] |= close
        if job is not None:
            assert chat is not None, "an economy level is social"
            money = idx_money(cfg)
            evicted, reason, close = economy.leave(
                cfg, True, agent.work, meters.values, meters.lowest[money], died
            )
            out.near_boundary[slot] |= close
            out.exit_reason[slot] = reason
            if not (died or evicted):
                terms = social.reward(cfg, ref_reward(cfg, agent.meters), chat.chat_reward[slot])[1]
            else:
                terms = dict.fromkeys(social.spec_of(cfg).reward.term_names, 0.0)
            out.rewards[slot], terms = economy.reward(
                cfg, terms, not (died or evicted), reason, job, agent, True
            )
            for name, value in terms.items():
                out.reward_terms[name][slot] = value
            died = died or evicted
        agent.alive = not died
        out.terminated[slot] = died
        if died:
            agent.progress = 0
        elif job is not None:
            pass
        elif chat is None:
            out.rewards[slot] = ref_reward(cfg, agent.meters)
        else:
            out.rewards[slot], terms = social.reward(
                cfg, ref_reward(cfg, agent.meters), chat.chat_reward[slot]
            )
            for name, value in terms.items():
                out.reward_terms[name][slot] = value
        agent.life_steps += 1
    if chat is not None:
        social.settle(cfg, state, new, chat)
        out.chat_partner, out.chat_success = chat.partner, chat.success
    for town in new.towns:
        town.clock += 1
    for slot, agent in enumerate(new.agents):
        town = new.towns[new.town_of(slot)]
        out.truncated[slot] = agent.alive and town.clock >= cfg.world.max_steps
    if cfg.economy is not None:
        economy.nightly(cfg, new)
    return out


def idx_money(cfg: LevelConfig) -> int:
    return cfg.meter_names.index(economy.spec_of(cfg).money)


def _act(
    cfg: LevelConfig,
    before: RefState,
    new: RefState,
    slot: int,
    executed: int,
    meters: _Meters,
    chat: social.Phase | None,
    job: economy.Job | None = None,
) -> tuple[bool, bool]:
    """Phase 1: the action's own effects, any affordance use and what chats add to the social
    meter, with one clamp at the end. On a social level only the holder's INTERACT is a use;
    anyone else's queues."""
    idx = meter_index(cfg)
    spec = cfg.actions.actions[executed]
    delta = [0.0] * len(meters.values)
    for name, amount in spec.effects.items():
        delta[idx[name]] += amount
    agent = new.agents[slot]
    used = completed = False
    if chat is not None:
        delta[idx[social.spec_of(cfg).meter]] += chat.social_gain[slot]
    if job is not None:  # wages and lateness, with the actions' own effects
        delta[idx_money(cfg)] += job.wage - job.late_fee
    if spec.kind == "interact" and (chat is None or chat.using[slot]):
        aff_index = affordance_under(before, slot)
        assert aff_index is not None, "a legal INTERACT stands on an affordance"
        aff = cfg.affordances.affordances[aff_index]
        used = True
        if cfg.world.interaction == "multi_tick":
            agent.progress = before.agents[slot].progress + 1
            completed = agent.progress >= aff.ticks
            if completed:
                agent.progress = 0
            uses = 1
        else:
            completed, uses = True, aff.ticks
        for name, amount in aff.effects.items():
            delta[idx[name]] += uses * amount
        factor = 1.0 if cfg.economy is None else economy.price_here(cfg, before, slot)
        for name, amount in aff.cost.items():
            delta[idx[name]] -= uses * amount * factor
        if completed:
            for name, amount in aff.completion.items():
                delta[idx[name]] += amount
    else:
        agent.progress = 0
        if spec.kind == "move":
            assert spec.delta is not None
            agent.x += spec.delta[0]
            agent.y += spec.delta[1]
    for m, d in enumerate(delta):
        meters.add(m, d)
    return used, completed


def _drain(cfg: LevelConfig, meters: _Meters, agent: RefAgent, social_level: bool) -> None:
    """Phase 2: base drain (plus extroversion's on the social meter) x difficulty, the
    modulations, then each cascade one at a time."""
    idx = meter_index(cfg)
    extra = [0.0] * len(meters.values)
    if social_level:
        spec_social = social.spec_of(cfg)
        extra[idx[spec_social.meter]] = spec_social.personality.social_drain * agent.personality[0]
    for m, spec in enumerate(cfg.meters.meters):
        meters.add(m, -(spec.drain + extra[m]) * agent.difficulty)
    for mod in cfg.cascades.modulations:
        source = meters.values[idx[mod.source]]
        meters.add(idx[mod.target], -mod.base * (mod.offset + mod.scale * (1.0 - source)))
    for group in cfg.cascades.groups:
        for cas in group.cascades:
            source = meters.values[idx[cas.source]]
            if source < cas.threshold:
                loss = cas.strength * (cas.threshold - source) / cas.threshold
                meters.add(idx[cas.target], -loss)


def _terminal_check(cfg: LevelConfig, meters: _Meters) -> tuple[bool, bool]:
    """(died, the decision hung on rounding).

    Within a tick a meter can only fall after phase 1, so a terminal meter ends at 0 exactly
    when some clamp saw it at or below 0. If that value, or a final value above 0, is within
    BOUNDARY of 0, float32 rounding in the core may decide the other way.
    """
    died = close = False
    for m, spec in enumerate(cfg.meters.meters):
        if not spec.terminal:
            continue
        value = meters.values[m]
        died |= value <= 0.0
        if value <= BOUNDARY and meters.lowest[m] >= -BOUNDARY:
            close = True
    return died, close


def ref_reward(cfg: LevelConfig, meters: list[float]) -> float:
    spec = cfg.reward.reward
    idx = meter_index(cfg)
    if spec.kind == "product":
        reward = math.prod(meters[idx[name]] for name in spec.meters)
    elif spec.kind == "weighted_sum":
        reward = spec.base + sum(w * (meters[idx[name]] - spec.centre) for name, w in spec.weights.items())
    else:
        reward = spec.base + spec.bonus * math.prod(meters[idx[name]] for name in spec.bonus_meters)
    if spec.clip is not None:
        reward = min(spec.clip[1], max(spec.clip[0], reward))
    return reward


__all__ = [
    "BOUNDARY",
    "RefAgent",
    "RefState",
    "RefStepResult",
    "RefTown",
    "affordance_under",
    "from_tensor_state",
    "holder",
    "is_open",
    "on_grid",
    "ref_action_mask",
    "ref_action_mask_detail",
    "ref_observe",
    "ref_reward",
    "ref_step",
    "ref_step_detail",
]
