"""The social layer for the scalar engine (`core.scalar`): chat, queues, ties, reward terms.

The same operations as `core.social`, `core.queue` and `core.social_step`, in the same order,
each float32 operation one Python operation rounded by `f32`, over one town's K x K ties. Ties
never hold -0.0 (the decay leaves +0.0), so adding a zero change is skipped: it cannot alter a
tie.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from townlet_env.core.level import HOURS_PER_DAY, CompiledLevel
from townlet_env.core.scalar_base import f32, f32s, row_sum
from townlet_env.core.scalar_terms import reward_terms
from townlet_env.core.social import TIES
from townlet_env.core.state import TownState

if TYPE_CHECKING:
    from townlet_env.core.scalar_base import ScalarResult
    from townlet_env.core.scalar_base import TownNumbers as ScalarTown
    from townlet_env.core.scalar_economy import ScalarMarket

LONG_MAX = 2**63 - 1


@dataclass
class Phase:
    """The social side of one tick, decided from the state at its start."""

    using: list[bool]
    partner: list[int]  # slot in town, -1 without CHAT
    success: list[bool]
    social_gain: list[float]
    chat_reward: list[float]
    queue_key: list[int]
    stall: list[int]
    deltas: list[dict[tuple[int, int], float]]  # per tie: (i, j) -> chat's change, nonzero only
    queue_deltas: list[dict[tuple[int, int], float]]  # per tie: the queue events' changes
    ghosts: int = 0  # holders sent to the back this tick
    handovers: int = 0  # uses completed with a queue waiting


class SocialScalar:
    def __init__(self, level: CompiledLevel) -> None:
        tables = level.social
        assert tables is not None
        spec = tables.spec
        self.spec = spec
        self.meter = tables.meter
        self.chat_action = tables.chat_action
        self.term_names = tables.term_names
        self.bounds = [(f32(decay), low, high) for decay, low, high in tables.tie_bounds]
        chat, queue, p = spec.chat, spec.queue, spec.personality
        self.avoid = f32(chat.avoid_rivalry)
        self.social_drain = f32(p.social_drain)
        self.traits = (f32(p.chat_gain), f32(p.forgiveness_softening), f32(p.ambition_rivalry))
        self.chat_gains = tuple(
            f32(v)
            for v in (
                chat.trust_gain,
                chat.familiarity_gain,
                chat.familiarity_loss,
                chat.rivalry_on_failure,
                chat.social_gain,
            )
        )
        self.queue_gains = tuple(
            f32(v) for v in (queue.rivalry_stalled, queue.rivalry_overtaken, queue.handover_trust)
        )
        self.ghost_ticks = queue.ghost_ticks
        r = spec.reward
        self.chat_reward = (
            None if r.chat is None else tuple(f32(v) for v in (r.chat.base, r.chat.trust, r.chat.familiarity))
        )
        self.needs = None if r.needs is None else f32(r.needs)
        self.survival = None if r.survival is None else f32(r.survival)
        self.clip = (f32(r.clip[0]), f32(r.clip[1]))
        self.last: Phase | None = None  # the last tick's phase (tests count its events)
        self.tick_gain: list[float] = []  # this tick's chat gains (a gathering boosts them)

    # --- state -------------------------------------------------------------------------------

    def load(self, town: ScalarTown, state: TownState) -> None:
        self.ties = [state.trust.tolist(), state.familiarity.tolist(), state.rivalry.tolist()]
        # all ties zero: the decay has nothing to do until an event changes one
        self.quiet = not any(any(row) for tie in self.ties for row in tie)
        self.queue_key = state.queue_key.tolist()
        self.stall = state.stall.tolist()
        self.personality = state.personality.tolist()
        cg, fs, ar = self.traits
        self.gain, self.loss, self.soft = [], [], []
        for i, (e, fo, am) in enumerate(self.personality):
            soft = f32(1.0 - f32(fs * fo))
            self.gain.append(f32(1.0 + f32(cg * e)))
            self.soft.append(soft)
            self.loss.append(f32(soft * f32(1.0 + f32(ar * am))))
            # the social meter's drain grows with extroversion (before x difficulty)
            extra = f32(self.social_drain * e)
            drain = f32(town.t.drain[self.meter] + extra)
            town.drain[i][self.meter] = f32(drain * town.difficulty[i])

    def into_state(self, state: TownState) -> TownState:
        trust, familiarity, rivalry = (torch.tensor(t, dtype=torch.float32) for t in self.ties)
        return state.replace(
            trust=trust,
            familiarity=familiarity,
            rivalry=rivalry,
            queue_key=torch.tensor(self.queue_key, dtype=torch.long),
            stall=torch.tensor(self.stall, dtype=torch.long),
        )

    # --- pairwise facts --------------------------------------------------------------------

    def near(self, town: ScalarTown, i: int, j: int) -> bool:
        return (
            i != j
            and town.alive[i]
            and town.alive[j]
            and abs(town.x[i] - town.x[j]) + abs(town.y[i] - town.y[j]) <= 1
        )

    def has_neighbour(self, town: ScalarTown) -> list[bool]:
        if town.k == 1:  # an agent alone has none
            return [False]
        # living agents by cell: a neighbour is another living agent on this cell or the next
        cells: dict[tuple[int, int], int] = {}
        for x, y, alive in zip(town.x, town.y, town.alive, strict=True):
            if alive:
                cells[(x, y)] = cells.get((x, y), 0) + 1
        return [
            alive
            and (
                cells[(x, y)] > 1
                or (x + 1, y) in cells
                or (x - 1, y) in cells
                or (x, y + 1) in cells
                or (x, y - 1) in cells
            )
            for x, y, alive in zip(town.x, town.y, town.alive, strict=True)
        ]

    def standing(self, town: ScalarTown) -> list[int]:
        return [town.affordance(i) if town.alive[i] else -1 for i in range(town.k)]

    def serve_keys(self, town: ScalarTown) -> list[int]:
        late = town.t.max_steps + 2
        return [
            -1 if town.progress[i] > 0 else (q if q >= 0 else late) * town.k + i
            for i, q in enumerate(self.queue_key)
        ]

    def queue_position(self, town: ScalarTown) -> list[int]:
        """How many queued agents are served before each queued one; -1 when not queued."""
        if max(self.queue_key) < 0:
            return [-1] * town.k
        standing, key = self.standing(town), self.serve_keys(town)
        out = []
        for i in range(town.k):
            if self.queue_key[i] < 0:
                out.append(-1)
                continue
            s = standing[i]
            out.append(
                sum(
                    1
                    for j in range(town.k)
                    if j != i and s >= 0 and standing[j] == s and self.queue_key[j] >= 0 and key[j] < key[i]
                )
            )
        return out

    # --- one tick ------------------------------------------------------------------------------

    def phase(self, town: ScalarTown, executed: list[int], market: ScalarMarket | None = None) -> Phase:
        """On an economy level (`market`) a gathering multiplies the chat gains of the agents at
        its place, and an outage closes its affordances like closing hours do."""
        k = town.k
        boost = None if market is None else market.boost_here
        # x 1.0 changes no gain: only a gathering underfoot makes this tick's gains differ
        self.tick_gain = (
            self.gain
            if boost is None or boost.count(1.0) == k
            else f32s(list(map(float.__mul__, self.gain, boost)))
        )
        out = self.last = Phase(
            [False] * k, [-1] * k, [False] * k, [0.0] * k, [0.0] * k, [], [], [{}, {}, {}], [{}, {}, {}]
        )
        chatting = [i for i in range(k) if executed[i] == self.chat_action]
        if chatting:  # else no tie, social meter or chat reward changes by chat
            both = [[0] * k for _ in range(k)]
            for i in chatting:
                self._chat(town, i, out, both)
            self._chat_effects(town, out, both)
        self._queues(town, executed, out, None if market is None else market.closed_here)
        return out

    def _chat(self, town: ScalarTown, i: int, out: Phase, both: list[list[int]]) -> None:
        trust, fam, riv = self.ties
        best, best_score = 0, -math.inf
        for j in range(town.k):
            if self.near(town, i, j):
                score = f32(f32(trust[i][j] + fam[i][j]) - riv[i][j])
                if score > best_score:
                    best, best_score = j, score
        out.partner[i] = best
        refused = riv[best][i] > self.avoid or town.progress[best] > 0
        if refused:
            _, _, fam_loss, riv_fail, _ = self.chat_gains
            d_fam = f32(f32(0.0 * f32(self.chat_gains[1] * self.tick_gain[i])) - f32(fam_loss * self.soft[i]))
            self._add(out, 1, i, best, d_fam)
            self._add(out, 2, i, best, f32(riv_fail * self.loss[i]))
            return
        out.success[i] = True
        both[i][best] += 1
        both[best][i] += 1

    def _chat_effects(self, town: ScalarTown, out: Phase, both: list[list[int]]) -> None:
        """Trust and familiarity of successful chats (both ends), social gain, chat reward."""
        trust_gain, fam_gain, _, _, social_gain = self.chat_gains
        for i in range(town.k):
            row = both[i]
            total = sum(row)
            out.social_gain[i] = f32(total * f32(social_gain * self.tick_gain[i]))
            if not total:
                continue
            each = [0.0] * town.k  # the chat reward of each pair, summed as torch sums a row
            for j, b in enumerate(row):
                if not b:
                    continue
                self._add(out, 0, i, j, f32(b * f32(trust_gain * self.tick_gain[i])))
                failed = out.deltas[1].get((i, j), 0.0)  # a failed chat of i toward j this tick
                d_fam = f32(b * f32(fam_gain * self.tick_gain[i]))
                out.deltas[1][(i, j)] = f32(d_fam + failed) if failed else d_fam
                if self.chat_reward is not None:
                    base, rt, rf = self.chat_reward
                    value = f32(f32(base + f32(rt * self.ties[0][i][j])) + f32(rf * self.ties[1][i][j]))
                    each[j] = f32(b * value)
            reward = row_sum(each)
            out.chat_reward[i] = reward

    @staticmethod
    def _add(out: Phase, tie: int, i: int, j: int, change: float) -> None:
        if change:
            out.deltas[tie][(i, j)] = change

    def _queues(self, town: ScalarTown, executed: list[int], out: Phase, closed: list[bool] | None) -> None:
        """`queue.advance`, and the ghost steps' and handovers' tie changes."""
        t, k = town.t, town.k
        standing = self.standing(town)
        spots = [a for a in standing if a >= 0]
        if max(self.queue_key) < 0 and len(spots) == len(set(spots)):
            return self._no_queue(town, executed, standing, out)
        key = self.serve_keys(town)
        hour = town.clock % HOURS_PER_DAY

        def spot(i: int, j: int) -> bool:
            return i != j and standing[i] >= 0 and standing[i] == standing[j]

        queued = [q >= 0 for q in self.queue_key]
        holder, crowded = [False] * k, [False] * k
        for i, s in enumerate(standing):
            if s >= 0:
                others = [j for j in range(k) if j != i and standing[j] == s]
                holder[i] = all(key[j] >= key[i] for j in others)
                crowded[i] = any(queued[j] for j in others)
        ghost, completing = [False] * k, [False] * k
        for i in range(k):
            acts = executed[i] == t.interact
            moved = t.is_move[executed[i]]
            aff = town.affordance(i)
            open_now = aff >= 0 and t.aff_open[aff][hour] and not (closed is not None and closed[i])
            using = out.using[i] = acts and holder[i]
            q = town.clock if acts and not holder[i] and self.queue_key[i] < 0 else self.queue_key[i]
            stalling = (
                holder[i] and town.progress[i] == 0 and crowded[i] and open_now and not acts and not moved
            )
            stall = self.stall[i] + 1 if stalling else 0
            if stall >= self.ghost_ticks:
                ghost[i], q, stall = True, town.clock, 0
            if using or moved or not town.alive[i]:
                q = -1
            out.queue_key.append(q)
            out.stall.append(stall)
            a = aff if aff >= 0 else 0
            completing[i] = using and town.progress[i] + 1 >= t.aff_ticks[a] and crowded[i]
        out.ghosts, out.handovers = sum(ghost), sum(completing)
        if not (out.ghosts or out.handovers):
            return
        stalled, overtaken, handover_trust = self.queue_gains
        for i in range(k):
            if not crowded[i]:
                continue
            head = min((j for j in range(k) if spot(i, j) and queued[j]), key=lambda j: (key[j], j))
            if ghost[i]:  # i, released, toward the new first in line
                riv = f32(self.loss[i] * f32(f32(stalled * 0.0) + overtaken))
                self._add_to(out, 2, i, head, riv)
            if completing[i]:  # a polite handover: trust both ways
                for a, b in ((i, head), (head, i)):
                    self._add_to(out, 0, a, b, handover_trust)
        for i in range(k):  # everyone queued behind a ghosted holder, toward it
            for j in range(k):
                if ghost[j] and queued[i] and spot(i, j):
                    waited = f32(self.loss[i] * f32(stalled + f32(overtaken * 0.0)))
                    self._add_to(out, 2, i, j, waited)

    def _no_queue(self, town: ScalarTown, executed: list[int], standing: list[int], out: Phase) -> None:
        """`_queues` where no one is queued and no two living agents share an affordance (most
        ticks): each agent on an affordance holds it, INTERACT there is a use, nothing stalls,
        and no event changes a tie."""
        interact = town.t.interact
        for i in range(town.k):
            out.using[i] = executed[i] == interact and standing[i] >= 0
        out.queue_key += [-1] * town.k
        out.stall += [0] * town.k

    @staticmethod
    def _add_to(out: Phase, tie: int, i: int, j: int, change: float) -> None:
        """A queue event's change (the events of one pair never coincide: one holder a spot)."""
        out.queue_deltas[tie][(i, j)] = f32(out.queue_deltas[tie].get((i, j), 0.0) + change)

    def add_gain(self, delta: list[float], phase: Phase, i: int) -> list[float]:
        """The action's meter change plus what chats gave the social meter."""
        gain = phase.social_gain[i]
        if not gain:  # adding +0.0 changes nothing
            return delta
        delta = list(delta)
        delta[self.meter] = f32(delta[self.meter] + gain)
        return delta

    def settle(self, town: ScalarTown, phase: Phase, result: ScalarResult) -> None:
        """New ties (events, decay, clamp), queue places, reward terms and the clipped reward."""
        for deltas in (phase.deltas, phase.queue_deltas):
            if not any(deltas):
                continue
            for tie, changes in zip(self.ties, deltas, strict=True):
                for (i, j), change in changes.items():
                    tie[i][j] = f32(tie[i][j] + change)
                    self.quiet = False
        bounds = () if self.quiet else self.bounds
        for tie, (decay, low, high) in zip(self.ties, bounds, strict=False):
            for n, row in enumerate(tie):  # within the decay a tie goes to zero (a zero stays)
                if any(row):
                    moved = array(
                        "f", [v - decay if v > decay else v + decay if v < -decay else 0.0 for v in row]
                    )
                    tie[n] = [low if v < low else high if v > high else v for v in moved]
        living = town.alive
        if all(living):
            self.queue_key, self.stall = phase.queue_key, phase.stall
        else:
            self.queue_key = [q if alive else -1 for q, alive in zip(phase.queue_key, living, strict=True)]
            self.stall = [s if alive else 0 for s, alive in zip(phase.stall, living, strict=True)]
        weights = (self.needs, self.survival, self.chat_reward is not None)
        result.reward_terms = reward_terms(weights, self.clip, living, phase.chat_reward, result.reward)
        result.chat_partner = phase.partner  # -1 but for the agents that chatted
        result.chat_success = phase.success


__all__ = ["TIES", "Phase", "SocialScalar"]
