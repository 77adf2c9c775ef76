"""The economy for the scalar engine (`core.scalar`): prices and events, jobs with shifts,
evictions, the economy's reward terms and the nightly reset.

The same operations as `core.economy` and `core.dynamics`, in the same order, each float32
operation one Python operation rounded by `f32`, over one town. The scheduler, the admin's
events and the observation fields are in `scalar_events.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from townlet_env.core.economy import (
    ABSENCES,
    BROKE,
    EMPLOYER,
    END,
    FIRINGS,
    GATHERING,
    HOME_X,
    HOME_Y,
    HOURS_PER_DAY,
    LATE,
    ON_TIME,
    READY,
    REHIRE_AT,
    SHIFT,
    SPIKE,
    VACANT,
    WAITING,
)
from townlet_env.core.economy import OUTAGE as OUTAGE
from townlet_env.core.level import CompiledLevel
from townlet_env.core.scalar_base import _ROUND, f32, needs_of
from townlet_env.core.state import TownState

if TYPE_CHECKING:
    from townlet_env.core.scalar_base import ScalarResult
    from townlet_env.core.scalar_base import TownNumbers as ScalarTown


# price, closed, boost and what a use needs, per affordance
Prices = tuple[list[float], list[bool], list[float], list[list[tuple[int, float]]]]


@dataclass
class ScalarMarket:
    """`economy.Market` of one town's current state."""

    active: list[bool]  # [E]
    price: list[float]  # [A]
    closed: list[bool]  # [A]
    needs: list[list[tuple[int, float]]]  # [A] what a use needs at this price (`needs_of`)
    price_here: list[float]  # [K] of the affordance underfoot (1 where none)
    closed_here: list[bool]  # [K]
    boost_here: list[float]  # [K]


@dataclass
class ScalarShift:
    """`economy.Shift` of one tick, in lists; `money` is what the tick adds to money first."""

    wage: list[float]
    late_fee: list[float]
    money: list[float]
    on_time: list[bool]
    late: list[bool]
    absent: list[bool]
    fired: list[bool]


def _tolist(tensor: torch.Tensor) -> list:
    return tensor.tolist()


class EconomyScalar:
    def __init__(self, level: CompiledLevel) -> None:
        tables = level.economy
        assert tables is not None
        spec = tables.spec
        self.tables = tables
        self.money = tables.money
        self.place = _tolist(tables.place)
        self.wage = _tolist(tables.wage)
        self.in_shift = _tolist(tables.in_shift)
        self.on_time_hour = _tolist(tables.on_time_hour)
        self.last_hour = _tolist(tables.last_hour)
        self.until_start = _tolist(tables.until_start)
        self.base_price = _tolist(tables.base_price)
        self.cost = _tolist(tables.cost)
        self.aff_required = _tolist(level.aff_required)
        # an action that changes money by -0.0: adding a wage of 0 must then be done (to +0.0)
        self.signed_zero = any(
            v == 0.0 and math.copysign(1.0, v) < 0 for v in level.action_delta[:, self.money].tolist()
        )
        self.n_events = tables.n_events
        self.kind = _tolist(tables.event_kind)
        self.targets = [_tolist(row.nonzero().flatten()) for row in tables.event_target]
        self.terminal_index = _tolist(tables.terminal_index)
        self.terminal_penalty = _tolist(tables.terminal_penalty)
        self.n_reasons = len(tables.exit_reasons)
        jobs, life, reward = spec.jobs, spec.lifecycle, spec.reward
        self.late_penalty = f32(jobs.late_penalty)
        self.window = (1 << jobs.absence_window) - 1
        self.absences_to_fire = jobs.absences_to_fire
        self.rehire_cooldown = jobs.rehire_cooldown
        self.evict_broke = life.evict_broke_ticks
        self.evict_fired = life.evict_firings
        self.nightly = life.nightly_reset is not None
        self.reset_low, self.reset_high = _tolist(tables.reset_low), _tolist(tables.reset_high)
        self.wage_weight = None if reward.wage is None else f32(reward.wage)
        p = reward.punctuality
        self.punctuality = None if p is None else (f32(p.on_time), f32(p.late), f32(p.absent))
        self.terminal = bool(reward.terminal)
        self.episode_clip = (f32(reward.episode_clip[0]), f32(reward.episode_clip[1]))
        assert level.social is not None
        clip = level.social.spec.reward.clip
        self.clip = (f32(clip[0]), f32(clip[1]))
        self._market: ScalarMarket | None = None
        self._prices: dict[tuple, Prices] = {}

    # --- state -------------------------------------------------------------------------------

    def load(self, state: TownState) -> None:
        self.work = _tolist(state.work)
        self.ledger = [row[0] for row in _tolist(state.ledger)]
        clock = _tolist(state.event_clock[0])
        self.end = [c[END] for c in clock]
        self.ready = [c[READY] for c in clock]
        self.value = _tolist(state.event_value[0])
        self._market = None

    def into_state(self, state: TownState) -> TownState:
        event_clock = [[[end, ready] for end, ready in zip(self.end, self.ready, strict=True)]]
        return state.replace(
            work=torch.tensor(self.work, dtype=torch.long).view(-1, state.work.shape[1]),
            ledger=torch.tensor(self.ledger, dtype=torch.float32).view(-1, 1),
            event_clock=torch.tensor(event_clock, dtype=torch.long).view(1, self.n_events, 2),
            event_value=torch.tensor([self.value], dtype=torch.float32).view(1, self.n_events),
        )

    def changed(self) -> None:
        """The town's state moved: the market is computed again when next asked for."""
        self._market = None

    # --- the market --------------------------------------------------------------------------

    def market(self, town: ScalarTown) -> ScalarMarket:
        """`economy.market`: spikes multiply prices in catalogue order (a factor 1 changes
        nothing, so only active spikes multiply), outages close, gatherings boost."""
        if self._market is not None:
            return self._market
        active = [town.clock < end for end in self.end]
        # what the active events' values make of prices, closures and boosts, kept by key: the
        # same events stay on for many ticks
        key = tuple(v if on else None for v, on in zip(self.value, active, strict=True))
        prices = self._prices.get(key)
        if prices is None:
            if len(self._prices) > 256:
                self._prices.clear()
            prices = self._prices[key] = self._price_list(active)
        price, closed, boost, needs = prices
        here = [town.affordance(i) for i in range(town.k)]
        self._market = ScalarMarket(
            active,
            price,
            closed,
            needs,
            [price[a] if a >= 0 else 1.0 for a in here],
            [a >= 0 and closed[a] for a in here],
            [boost[a] if a >= 0 else 1.0 for a in here],
        )
        return self._market

    def _price_list(self, active: list[bool]) -> Prices:
        n_aff = len(self.base_price)
        price, closed, boost = list(self.base_price), [False] * n_aff, [1.0] * n_aff
        r = _ROUND
        for e, on in enumerate(active):
            if not on:
                continue
            kind, value = self.kind[e], self.value[e]
            for a in self.targets[e]:
                if kind == SPIKE:
                    r[0] = price[a] * value
                    price[a] = r[0]
                elif kind == GATHERING:
                    r[0] = boost[a] * value
                    boost[a] = r[0]
                else:
                    closed[a] = True
        required = [
            row if p == 1.0 else [f32(v * p) for v in row]
            for row, p in zip(self.aff_required, price, strict=True)
        ]
        return price, closed, boost, needs_of(required)

    def surcharge(self, use: list[float], aff: int, price_here: float) -> list[float]:
        """A use's meter change less cost x (price - 1), as `economy.surcharge`."""
        extra = f32(price_here - 1.0)
        return [f32(u - f32(c * extra)) for u, c in zip(use, self.cost[aff], strict=True)]

    # --- jobs and leaving ----------------------------------------------------------------------

    def shift(self, town: ScalarTown) -> ScalarShift:
        """`economy.shift` from the state at the tick's start; the work rows are updated."""
        clock, hour = town.clock, town.clock % HOURS_PER_DAY
        k = town.k
        out = ScalarShift([0.0] * k, [0.0] * k, [0.0] * k, [False] * k, [False] * k, [False] * k, [False] * k)
        for i, w in enumerate(self.work):
            if not (town.alive[i] and clock >= w[REHIRE_AT]):
                continue
            employer = w[EMPLOYER]
            at = employer * HOURS_PER_DAY + hour
            present = self.in_shift[at] and town.affordance(i) == self.place[employer]
            status = w[SHIFT]
            if present:
                out.wage[i] = self.wage[employer]
                if status == WAITING:
                    on_time = self.on_time_hour[at]
                    out.on_time[i], out.late[i] = on_time, not on_time
                    status = ON_TIME if on_time else LATE
                    out.late_fee[i] = 0.0 if on_time else self.late_penalty
            out.money[i] = f32(out.wage[i] - out.late_fee[i])
            if self.last_hour[at]:
                absent = out.absent[i] = status == WAITING
                bits = ((w[ABSENCES] << 1) | absent) & self.window
                fired = out.fired[i] = bin(bits).count("1") >= self.absences_to_fire
                w[SHIFT] = WAITING
                w[ABSENCES] = 0 if fired else bits
                if fired:
                    w[REHIRE_AT] = clock + 1 + self.rehire_cooldown
                    w[FIRINGS] += 1
            else:
                w[SHIFT] = status
        return out

    def leave(self, town: ScalarTown, alive_before: list[bool]) -> tuple[list[bool], list[int]]:
        """(evicted, exit reason) of each slot, as `economy.leave`, from the post-tick meters;
        `town.alive` is still alive and not dead by a meter."""
        evicted, reason = [False] * town.k, [0] * town.k
        for i, w in enumerate(self.work):
            living = town.alive[i]
            meters = town.meters[i]
            broke = w[BROKE] = w[BROKE] + 1 if living and meters[self.money] <= 0.0 else 0
            out_of_money = living and bool(self.evict_broke) and broke >= self.evict_broke
            out_of_work = living and bool(self.evict_fired) and w[FIRINGS] >= self.evict_fired
            evicted[i] = out_of_money or out_of_work
            if alive_before[i] and not living:  # died by a meter: the first at 0 names it
                reason[i] = 1 + next((n for n, m in enumerate(self.terminal_index) if meters[m] <= 0.0), 0)
            elif out_of_money:
                reason[i] = self.n_reasons - 2
            elif out_of_work:
                reason[i] = self.n_reasons - 1
            if living and not evicted[i]:
                w[VACANT] = 0
            else:
                w[VACANT] = 0 if alive_before[i] else w[VACANT] + 1
        return evicted, reason

    # --- reward and the night ----------------------------------------------------------------

    def settle(
        self,
        town: ScalarTown,
        result: ScalarResult,
        job: ScalarShift,
        reason: list[int],
        alive_before: list[bool],
    ) -> None:
        """`economy.economy_reward`: the economy's terms after the social ones, summed term by
        term, clipped per tick, then within the episode's clip; then the nightly reset."""
        living = town.alive
        terms = result.reward_terms
        k = town.k
        if self.wage_weight is not None:
            w = self.wage_weight
            terms["wage"] = (
                [f32(w * v) if alive else 0.0 for v, alive in zip(job.wage, living, strict=True)]
                if any(job.wage)
                else [0.0] * k
            )
        if self.punctuality is not None and not any(job.on_time + job.late + job.absent):
            terms["punctuality"] = [0.0] * k
        elif self.punctuality is not None:
            on, late, absent = self.punctuality
            terms["punctuality"] = [
                f32(f32((on if o else 0.0) - (late if la else 0.0)) - (absent if ab else 0.0))
                if alive
                else 0.0
                for o, la, ab, alive in zip(job.on_time, job.late, job.absent, living, strict=True)
            ]
        if self.terminal:
            terms["terminal"] = [self.terminal_penalty[r] for r in reason]
        low, high = self.clip
        lo, hi = self.episode_clip
        r = _ROUND
        for i, column in enumerate(zip(*terms.values(), strict=True)):
            if not (living[i] or reason[i] > 0):
                result.reward[i] = 0.0
                continue
            total = column[0]
            for value in column[1:]:
                if value:  # adding 0.0 changes nothing but a -0.0 total
                    r[0] = total + value
                    total = r[0]
                elif not total:
                    total = total + value
            total = low if total < low else high if total > high else total
            running = self.ledger[i]
            r[0] = running + total
            v = r[0]
            r[0] = (lo if v < lo else hi if v > hi else v) - running
            result.reward[i] = r[0]
            if alive_before[i]:
                r[0] = running + result.reward[i]
                self.ledger[i] = r[0]
        result.economy = {
            "exit_reason": reason,
            "wage": job.wage,
            "arrived_on_time": job.on_time,
            "arrived_late": job.late,
            "absent": job.absent,
            "fired": job.fired,
        }
        if self.nightly and town.clock % HOURS_PER_DAY == 0:
            self._night(town)

    def _night(self, town: ScalarTown) -> None:
        """`economy.nightly`: living agents go home, stop, leave queues; meters clamped."""
        low, high = self.reset_low, self.reset_high
        for i, w in enumerate(self.work):
            if not town.alive[i]:
                continue
            capped = [hi if v > hi else v for v, hi in zip(town.meters[i], high, strict=True)]
            town.meters[i] = [lo if v < lo else v for v, lo in zip(capped, low, strict=True)]
            town.x[i], town.y[i] = w[HOME_X], w[HOME_Y]
            town.progress[i] = 0
            if town.social is not None:
                town.social.queue_key[i] = -1
                town.social.stall[i] = 0


__all__ = ["OUTAGE", "EconomyScalar", "ScalarMarket", "ScalarShift"]
