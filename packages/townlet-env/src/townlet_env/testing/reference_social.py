"""The plain-Python reference of the social layer (docs/social.md), agent by agent.

It reads social.yaml through the validated `LevelConfig` and walks agents with loops. The one
concession to the core is the tie score that picks a chat partner: it is summed in float32, as
the core does, so that two nearly equal scores rank the same way in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from townlet_env.config import LevelConfig
from townlet_env.config.social import SocialFile
from townlet_env.core.layout import ObservationLayout
from townlet_env.testing import reference_economy as economy
from townlet_env.testing.reference_state import HOURS_PER_DAY, RefState, affordance_under, is_open

TIE_RANGE = {"trust": (-1.0, 1.0), "familiarity": (0.0, 1.0), "rivalry": (0.0, 1.0)}


def spec_of(cfg: LevelConfig) -> SocialFile:
    assert cfg.social is not None
    return cfg.social


def in_town(state: RefState, slot: int) -> int:
    return slot % state.agents_per_town


# --- chat ----------------------------------------------------------------------------------------


def neighbours(state: RefState, slot: int) -> list[int]:
    """Other living agents of the town on the slot's cell or next to it, in slot order."""
    me = state.agents[slot]
    if not me.alive:
        return []
    return [
        j
        for j in state.town_slots(state.town_of(slot))
        if j != slot
        and state.agents[j].alive
        and abs(state.agents[j].x - me.x) + abs(state.agents[j].y - me.y) <= 1
    ]


def partner_of(state: RefState, slot: int) -> int | None:
    me = state.agents[slot]
    best, best_score = None, None
    for j in neighbours(state, slot):
        c = in_town(state, j)
        score = np.float32(me.trust[c]) + np.float32(me.familiarity[c]) - np.float32(me.rivalry[c])
        if best_score is None or score > best_score:
            best, best_score = j, score
    return best


def factors(cfg: LevelConfig, traits: list[float]) -> tuple[float, float, float]:
    """(gain, loss, softening) of an agent with these traits."""
    p = spec_of(cfg).personality
    extroversion, forgiveness, ambition = traits
    soft = 1.0 - p.forgiveness_softening * forgiveness
    return 1.0 + p.chat_gain * extroversion, soft * (1.0 + p.ambition_rivalry * ambition), soft


# --- queues --------------------------------------------------------------------------------------


def serve_order(state: RefState, slot: int) -> tuple[int, ...]:
    agent = state.agents[slot]
    if agent.progress > 0:
        return (0,)
    if agent.queue_key >= 0:
        return (1, agent.queue_key, in_town(state, slot))
    return (2, in_town(state, slot))


def same_spot(state: RefState, slot: int) -> list[int]:
    """Other living agents on the same affordance as the (living) slot."""
    aff = affordance_under(state, slot)
    if aff is None or not state.agents[slot].alive:
        return []
    return [
        j
        for j in state.town_slots(state.town_of(slot))
        if j != slot and state.agents[j].alive and affordance_under(state, j) == aff
    ]


def is_holder(state: RefState, slot: int) -> bool:
    if affordance_under(state, slot) is None or not state.agents[slot].alive:
        return False
    mine = serve_order(state, slot)
    return all(mine <= serve_order(state, j) for j in same_spot(state, slot))


def queue_position(state: RefState, slot: int) -> int:
    if state.agents[slot].queue_key < 0:
        return -1
    mine = serve_order(state, slot)
    return sum(
        1 for j in same_spot(state, slot) if state.agents[j].queue_key >= 0 and serve_order(state, j) < mine
    )


# --- one tick ------------------------------------------------------------------------------------


@dataclass
class Phase:
    using: list[bool]
    social_gain: list[float]
    chat_reward: list[float]
    partner: list[int]
    success: list[bool]
    delta: dict[str, list[list[float]]] = field(default_factory=dict)  # per tie: [slot][column]
    queue: list[tuple[int, int]] = field(default_factory=list)  # per slot: (queue_key, stall) after


def phase(cfg: LevelConfig, state: RefState, executed: list[int]) -> Phase:
    """Chats and queues of the tick, from the state at its start (agents' new ties, queue keys
    and stall counts are written by `settle`)."""
    kinds = [a.kind for a in cfg.actions.actions]
    n, k = len(state.agents), state.agents_per_town
    out = Phase([False] * n, [0.0] * n, [0.0] * n, [-1] * n, [False] * n, queue=[(-1, 0)] * n)
    out.delta = {name: [[0.0] * k for _ in range(n)] for name in TIE_RANGE}
    for slot in range(n):
        if kinds[executed[slot]] == "chat":
            _chat(cfg, state, slot, out)
    for slot in range(n):
        _queue(cfg, state, slot, kinds[executed[slot]], out)
    return out


def _chat(cfg: LevelConfig, state: RefState, slot: int, out: Phase) -> None:
    spec = spec_of(cfg)
    p = partner_of(state, slot)
    assert p is not None, "a legal CHAT has a neighbour"
    me, other = state.agents[slot], state.agents[p]
    i, j = in_town(state, slot), in_town(state, p)
    out.partner[slot] = j
    refused = np.float32(other.rivalry[i]) > np.float32(spec.chat.avoid_rivalry)
    gain, loss, soft = factors(cfg, me.personality)
    gain *= economy.boost(cfg, state, slot)  # a gathering here (economy levels)
    if refused or other.progress > 0:
        out.delta["rivalry"][slot][j] += spec.chat.rivalry_on_failure * loss
        out.delta["familiarity"][slot][j] -= spec.chat.familiarity_loss * soft
        return
    out.success[slot] = True
    reward = spec.reward.chat
    other_gain = factors(cfg, other.personality)[0] * economy.boost(cfg, state, p)
    for a, b, g in ((slot, p, gain), (p, slot, other_gain)):
        col = in_town(state, b)
        out.delta["trust"][a][col] += spec.chat.trust_gain * g
        out.delta["familiarity"][a][col] += spec.chat.familiarity_gain * g
        out.social_gain[a] += spec.chat.social_gain * g
        if reward is not None:
            agent = state.agents[a]
            out.chat_reward[a] += (
                reward.base + reward.trust * agent.trust[col] + reward.familiarity * agent.familiarity[col]
            )


def _queue(cfg: LevelConfig, state: RefState, slot: int, kind: str, out: Phase) -> None:
    spec = spec_of(cfg).queue
    me = state.agents[slot]
    holder = is_holder(state, slot)
    out.using[slot] = kind == "interact" and holder
    waiting = [j for j in same_spot(state, slot) if state.agents[j].queue_key >= 0]
    head = min(waiting, key=lambda j: serve_order(state, j)) if waiting else None
    aff = affordance_under(state, slot)
    clock = state.towns[state.town_of(slot)].clock
    open_now = aff is not None and is_open(cfg, aff, clock % HOURS_PER_DAY)
    if cfg.economy is not None:
        open_now = open_now and not economy.closed_here(cfg, state, slot)
    stalling = (
        holder and me.progress == 0 and head is not None and open_now and kind not in ("interact", "move")
    )
    me_key = me.queue_key
    if kind == "interact" and not holder and me_key < 0:
        me_key = clock
    stall = me.stall + 1 if stalling else 0
    if stall >= spec.ghost_ticks:
        me_key, stall = clock, 0
        assert head is not None
        out.delta["rivalry"][slot][in_town(state, head)] += (
            spec.rivalry_overtaken * factors(cfg, me.personality)[1]
        )
        for j in waiting:
            loss = factors(cfg, state.agents[j].personality)[1]
            out.delta["rivalry"][j][in_town(state, slot)] += spec.rivalry_stalled * loss
    if out.using[slot] or kind == "move" or not me.alive:
        me_key = -1
    done = aff is not None and out.using[slot] and me.progress + 1 >= cfg.affordances.affordances[aff].ticks
    if done and head is not None:
        out.delta["trust"][slot][in_town(state, head)] += spec.handover_trust
        out.delta["trust"][head][in_town(state, slot)] += spec.handover_trust
    out.queue[slot] = (me_key, stall)


def settle(cfg: LevelConfig, before: RefState, new: RefState, out: Phase) -> None:
    """Ties after the tick's events, the decay toward 0 and the clamp; queue places (an agent that
    died leaves its queue)."""
    decay = spec_of(cfg).relationships.decay
    for slot, agent in enumerate(new.agents):
        for name, (low, high) in TIE_RANGE.items():
            values = []
            for c, value in enumerate(getattr(before.agents[slot], name)):
                value += out.delta[name][slot][c]
                d = getattr(decay, name)
                value -= min(d, max(-d, value))
                values.append(min(high, max(low, value)))
            setattr(agent, name, values)
        key, stall = out.queue[slot]
        agent.queue_key, agent.stall = (key, stall) if agent.alive else (-1, 0)


def reward(cfg: LevelConfig, needs: float, chat: float) -> tuple[float, dict[str, float]]:
    """The declared terms of a living agent, and their clipped sum."""
    spec = spec_of(cfg).reward
    terms = {}
    if spec.needs is not None:
        terms["needs"] = spec.needs * needs
    if spec.survival is not None:
        terms["survival"] = spec.survival
    if spec.chat is not None:
        terms["chat"] = chat
    return min(spec.clip[1], max(spec.clip[0], sum(terms.values()))), terms


# --- observation ---------------------------------------------------------------------------------


def observe_social(
    cfg: LevelConfig, layout: ObservationLayout, state: RefState, slot: int, obs: list[float]
) -> None:
    me = state.agents[slot]
    obs[layout["personality"].offset : layout["personality"].offset + 3] = me.personality
    position = queue_position(state, slot)
    if position >= 0:
        obs[layout["queue"].offset] = 1.0
        obs[layout["queue"].offset + 1] = 1.0 / (1.0 + position)
    sx, sy = max(cfg.world.width - 1, 1), max(cfg.world.height - 1, 1)
    others = [j for j in state.town_slots(state.town_of(slot)) if j != slot]

    def distance(j: int) -> tuple[int, int]:
        other = state.agents[j]
        return (abs(other.x - me.x) + abs(other.y - me.y) if other.alive else 256, j)

    field = layout["nearest"]
    rows, width = field.shape
    for row, j in enumerate(sorted(others, key=distance)[:rows]):
        other = state.agents[j]
        if not (me.alive and other.alive):
            continue
        c = in_town(state, j)
        values = [
            (other.x - me.x) / sx,
            (other.y - me.y) / sy,
            1.0,
            float(other.progress > 0),
            float(other.queue_key >= 0),
            me.trust[c],
            me.familiarity[c],
            me.rivalry[c],
        ]
        obs[field.offset + row * width : field.offset + (row + 1) * width] = values
