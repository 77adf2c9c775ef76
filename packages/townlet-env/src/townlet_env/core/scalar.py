"""The scalar engine: one town stepped with plain Python numbers, for the one-town doors.

`gym.make("Townlet-v0")` and the PettingZoo envs step a single town. Through the tensor core a
tick of one town runs some 400 torch operations of a few microseconds each, whatever the number
of agents; here the same tick is a few hundred Python float operations. It is the tensor core's
arithmetic, replayed: every torch float32 operation is one Python (float64) operation rounded
to float32 (`f32`), which is the float32 result exactly (the double rounding of one +, -, * or
/ from float64 to float32 is innocuous), with constants read from the compiled level's tables
or rounded to float32 as torch rounds a Python scalar. So the engine agrees with `core.step`,
`core.observe` and `core.action_mask` bit for bit, and tests/env/test_scalar_engine.py proves
it on random and crowded play on every level, the social layer included.

`Town(..., scalar=True)` (one town on the CPU, no autoreset) runs it; `Town.state` turns the
engine's numbers back into a `TownState` on demand. Births and regeneration stay in the tensor
core (`core.spawn`), so a seed draws the same towns either way.

How a new mechanic joins: its rule goes into the tensor core first (the one definition the
reference is checked against), then here as the same operations in the same order; the
differential test of this engine compares every output of the two, so a missing or reordered
operation fails it.
"""

from __future__ import annotations

import numpy as np
import torch

from townlet_env.core.level import BLOCKED, HOURS_PER_DAY, CompiledLevel
from townlet_env.core.scalar_base import (
    _ROUND,
    ScalarResult,
    ScalarTables,
    TownNumbers,
    f32,
    f32s,
    row_sum,
    unknown_state,
    unsupported,
)
from townlet_env.core.scalar_economy import EconomyScalar, ScalarMarket, ScalarShift
from townlet_env.core.scalar_events import EventTables, schedule
from townlet_env.core.scalar_observe import ObserveTables, observe_into
from townlet_env.core.scalar_social import Phase, SocialScalar
from townlet_env.core.state import TownState


class ScalarTown(TownNumbers):
    """One town's state as Python values, and the tick, mask and observation over it."""

    def __init__(self, level: CompiledLevel) -> None:
        self.t = ScalarTables(level)
        self.view = ObserveTables(level)
        self.social = None if level.social is None else SocialScalar(level)
        self.economy = None if level.economy is None else EconomyScalar(level)
        self.events = None if level.economy is None else EventTables(level)
        self._mask: list[list[bool]] | None = None

    # --- state in and out ------------------------------------------------------------------

    def load(self, state: TownState) -> None:
        if state.num_towns != 1:
            raise ValueError("the scalar engine runs one town")
        unknown = unknown_state(state)
        if unknown:  # never step a mechanic it would leave frozen
            raise RuntimeError(f"the scalar engine does not replay the state {unknown} yet")
        self.source = state  # its per-town layout and per-slot constants are reused by to_state
        self.k = state.num_slots
        self.meters = state.meters.tolist()
        pos = state.position.tolist()
        self.x = [p[0] for p in pos]
        self.y = [p[1] for p in pos]
        self.alive = state.alive.tolist()
        self.progress = state.progress.tolist()
        self.life_steps = state.life_steps.tolist()
        self.difficulty = state.difficulty.tolist()
        self.clock = int(state.clock[0])
        p = self.t.pad
        self.cells = [row[p:-p] if p else row for row in state.cells[0].tolist()[p:-p]]
        self.aff_xy = [tuple(xy) for xy in state.affordance_position[0].tolist()]
        # a drain row per slot: drain x difficulty, as the core multiplies them every tick
        self.drain = [[f32(d * diff) for d in self.t.drain] for diff in self.difficulty]
        self.view_cache = {}
        self.place_cache = {}
        self.rows = None  # the observation rows kept between ticks (scalar_rows), written anew
        self._moves: dict[tuple[int, int], list[bool]] = {}
        if self.social is not None:
            self.social.load(self, state)
        if self.economy is not None:
            self.economy.load(state)
        self._mask = None

    def to_state(self) -> TownState:
        s = self.source
        position = torch.tensor([[x, y] for x, y in zip(self.x, self.y, strict=True)], dtype=torch.long)
        out = s.replace(
            meters=torch.tensor(self.meters, dtype=torch.float32).view(self.k, -1),
            position=position,
            alive=torch.tensor(self.alive, dtype=torch.bool),
            progress=torch.tensor(self.progress, dtype=torch.long),
            life_steps=torch.tensor(self.life_steps, dtype=torch.long),
            clock=torch.tensor([self.clock], dtype=torch.long),
        )
        if self.social is not None:
            out = self.social.into_state(out)
        if self.economy is not None:
            out = self.economy.into_state(out)
        return out

    # --- what an agent may do --------------------------------------------------------------

    def mask(self) -> list[list[bool]]:
        """[K][n_actions] legal actions, as `core.action_mask`."""
        if self._mask is not None:
            return self._mask
        t = self.t
        hour = self.clock % HOURS_PER_DAY
        taken = self._taken() if self.k > 1 and self.social is None else None
        chat = self.social.has_neighbour(self) if self.social is not None else None
        market = None if self.economy is None else self.economy.market(self)
        rows = []
        for i in range(self.k):
            if not self.alive[i]:
                row = [False] * t.n_actions
                row[t.wait] = True
                rows.append(row)
                continue
            row = self._moves.get((self.x[i], self.y[i])) or self._moves_from(self.x[i], self.y[i])
            row = list(row)
            if t.interact >= 0:
                aff = self.affordance(i)
                ok = aff >= 0
                if ok:
                    meters = self.meters[i]
                    needs = t.aff_needs[aff] if market is None else market.needs[aff]
                    ok = all(meters[m] >= r for m, r in needs)
                    ok = ok and t.aff_open[aff][hour]
                    ok = ok and not (market is not None and market.closed[aff])
                    ok = ok and not (taken is not None and taken[i])
                row[t.interact] = ok
            if chat is not None and self.social is not None:
                row[self.social.chat_action] = chat[i]
            rows.append(row)
        self._mask = rows
        return rows

    def _moves_from(self, x: int, y: int) -> list[bool]:
        """A mask row with the moves from (x, y) that do not run into a wall or off the grid
        (kept per cell for the town's life: its walls never move)."""
        t = self.t
        row = [True] * t.n_actions
        for a in t.move_actions:
            dx, dy = t.move_delta[a]
            row[a] = self.cell(x + dx, y + dy) != BLOCKED
        self._moves[(x, y)] = row
        return row

    def _taken(self) -> list[bool]:
        """Another agent of the town has priority on the affordance underfoot (`taken_by_other`)."""
        best: dict[int, int] = {}
        keys = []
        for i in range(self.k):
            aff = self.affordance(i) if self.alive[i] else -1
            key = i - self.k * (self.progress[i] > 0)
            keys.append((aff, key))
            if aff >= 0:
                best[aff] = min(best.get(aff, self.k), key)
        return [aff >= 0 and best[aff] != key for aff, key in keys]

    # --- one tick --------------------------------------------------------------------------

    def step(self, actions: list[int]) -> ScalarResult:
        t = self.t
        k = self.k
        mask = self.mask()
        invalid = [not mask[i][a] for i, a in enumerate(actions)]
        executed = [t.wait if bad else a for a, bad in zip(actions, invalid, strict=True)]
        eco = self.economy
        market = None if eco is None else eco.market(self)
        social = None if self.social is None else self.social.phase(self, executed, market)
        job = None if eco is None else eco.shift(self)
        alive_before = list(self.alive)
        died, reward = [False] * k, [0.0] * k
        for i in range(k):
            if not self.alive[i]:
                self.progress[i] = 0
                continue
            meters = self._act(i, executed[i], social, market, job)
            meters = self._drain(i, meters)
            self.meters[i] = meters
            for m in t.terminal:
                if meters[m] <= 0.0:
                    died[i] = True
            if died[i]:
                self.alive[i] = False
                self.progress[i] = 0
            else:
                reward[i] = self._reward(meters)
            self.life_steps[i] += 1
            dx, dy = t.move_delta[executed[i]]
            self.x[i] += dx
            self.y[i] += dy
        if eco is not None:  # an eviction ends the agent's life in the town like a death
            evicted, reason = eco.leave(self, alive_before)
            for i in range(k):
                if evicted[i]:
                    died[i], self.alive[i], self.progress[i] = True, False, 0
        self.clock += 1
        truncated = [self.alive[i] and self.clock >= t.max_steps for i in range(k)]
        result = ScalarResult(reward, died, truncated, invalid, executed)
        if social is not None and self.social is not None:
            self.social.settle(self, social, result)
        if eco is not None and job is not None:
            eco.settle(self, result, job, reason, alive_before)
            eco.changed()
        self._mask = None
        return result

    def schedule(self, draws: list[list[float]]) -> None:
        """The events that start at the new tick, from `events.draw`'s uniforms of this town."""
        if schedule(self, draws):
            self._mask = None

    def _act(
        self,
        i: int,
        a: int,
        social: Phase | None,
        market: ScalarMarket | None = None,
        job: ScalarShift | None = None,
    ) -> list[float]:
        """Phase 1, as `dynamics._act`: the action's delta, chat's social gain, wage less any
        late fee, any use (less its surcharge at a spiked price). A use that does not happen
        adds zeros, which change nothing, so it is skipped."""
        t = self.t
        delta = t.action_delta[a]
        if social is not None and self.social is not None:
            delta = self.social.add_gain(delta, social, i)
        if job is not None and self.economy is not None:
            money, paid = self.economy.money, job.money[i]
            if paid or self.economy.signed_zero:  # + 0.0 changes only a -0.0
                delta = list(delta)
                delta[money] = f32(delta[money] + paid)
        using = a == t.interact if social is None else social.using[i]
        self.progress[i], use = self._use(i, using) if using else (0, None)
        if use is not None and market is not None and self.economy is not None and t.level.multi_tick:
            use = self.economy.surcharge(use, self.affordance(i), market.price_here[i])
        if use is not None:
            delta = f32s([d + u for d, u in zip(delta, use, strict=True)])
        return f32s(
            [0.0 if v < 0.0 else 1.0 if v > 1.0 else v for v in map(float.__add__, self.meters[i], delta)]
        )

    def _use(self, i: int, using: bool) -> tuple[int, list[float]]:
        """(progress after the tick, the use's meter change) of slot i's INTERACT."""
        t = self.t
        aff = self.affordance(i)
        if not t.level.multi_tick:
            return 0, t.aff_instant_delta[aff]
        progress = self.progress[i] + 1
        if progress < t.aff_ticks[aff]:
            return progress, t.aff_tick_delta[aff]
        tick, completion = t.aff_tick_delta[aff], t.aff_completion[aff]
        return 0, f32s([u + v for u, v in zip(tick, completion, strict=True)])

    def _drain(self, i: int, meters: list[float]) -> list[float]:
        """Phase 2, as `dynamics._drain`: drain x difficulty, modulations, cascade stages. The
        float32 rounding is written out (`r[0] = value; value = r[0]`): a call per operation
        would cost a third of the tick."""
        r = _ROUND
        meters = f32s(
            [0.0 if v < 0.0 else 1.0 if v > 1.0 else v for v in map(float.__sub__, meters, self.drain[i])]
        )
        for source, target, base, offset, scale in self.t.modulations:
            r[0] = 1.0 - meters[source]
            r[0] = scale * r[0]
            r[0] = offset + r[0]
            r[0] = base * r[0]
            r[0] = meters[target] - r[0]
            v = r[0]
            meters[target] = 0.0 if v < 0.0 else 1.0 if v > 1.0 else v
        for stage in self.t.stages_by_target:
            losses = []  # a stage's pressures are read before any of its losses is taken
            for target, cascades in stage:
                loss = None
                for source, threshold, strength in cascades:
                    if threshold > meters[source]:  # else the pressure is 0 and so is the loss
                        r[0] = threshold - meters[source]
                        r[0] = r[0] * strength
                        if loss is not None:
                            r[0] = loss + r[0]
                        loss = r[0]
                if loss is not None:
                    losses.append((target, loss))
            for target, loss in losses:
                r[0] = meters[target] - loss
                v = r[0]
                meters[target] = 0.0 if v < 0.0 else v
        return meters

    def _reward(self, meters: list[float]) -> float:
        """`dynamics.reward_of`: the level's formula on the post-tick meters."""
        t = self.t
        read = [meters[m] for m in t.reward_meters]
        if t.reward_kind == "weighted_sum":
            terms = [f32(f32(v - t.reward_centre) * w) for v, w in zip(read, t.reward_weights, strict=True)]
            reward = f32(t.reward_base + row_sum(terms))
        else:
            product = 1.0
            for v in read:
                product = f32(product * v)
            reward = (
                product if t.reward_kind == "product" else f32(t.reward_base + f32(t.reward_bonus * product))
            )
        if t.reward_clip is not None:
            reward = min(t.reward_clip[1], max(t.reward_clip[0], reward))
        return reward

    def active_events(self) -> list[bool]:
        """On an economy level, which events of the catalogue are on in the town now."""
        return [] if self.economy is None else [self.clock < end for end in self.economy.end]

    # --- what an agent sees ----------------------------------------------------------------

    def observe(self, out: np.ndarray) -> np.ndarray:
        """Write every slot's observation into `out` ([K, obs_dim] float32, zeroed here)."""
        return observe_into(self, out)


__all__ = ["ScalarResult", "ScalarTown", "f32", "row_sum", "unsupported"]
