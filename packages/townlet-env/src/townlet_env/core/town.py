"""`Town`: one running batch of towns, and the one place that sequences the core functions.

The core is pure functions (`step`, `observe`, `action_mask`, `autoreset`); something has to
hold the current state between calls, own the random generator, keep the mask of the current
state for the next step, observe the towns an autoreset changed in the same pass as the rest,
and save and restore all of that. `Town` does, once, for every consumer: the Gymnasium,
PettingZoo and SB3 adapters, the trainer, the scripted policy and tools that watch or record a
town.

    town = Town("L1_full_observability", num_slots=64)
    first = town.reset(seed=0)              # Observation: obs, mask, affordance
    out = town.step(actions)                # StepOutput: obs, reward, ..., final_obs of ended slots

Slot `i` lives in town `i // agents_per_town`. Tensors handed out are the caller's to keep,
except with `reuse_buffers=True`, where observations are written into two buffer pairs used in
turn (see `Town.__init__`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_env.core import events, memory, renew, snapshot, views
from townlet_env.core.checks import check_actions, check_render_mode, check_sizes, town_index
from townlet_env.core.dynamics import step
from townlet_env.core.level import CompiledLevel, compile_level
from townlet_env.core.observe import action_mask, affordance_at, observe
from townlet_env.core.outputs import Observation, StepOutput, TownView
from townlet_env.core.pairs import Pairs
from townlet_env.core.render import render_ansi, render_rgb
from townlet_env.core.scalar import ScalarResult, ScalarTown
from townlet_env.core.scalar_fallback import TensorReadout, as_result, scalar_engine
from townlet_env.core.spawn import check_room, initial_state
from townlet_env.core.state import TownState
from townlet_env.core.views import economy_outputs

RENDER_MODES = ("ansi", "rgb_array")


class Town:
    def __init__(
        self,
        level: str | Path | CompiledLevel,
        num_slots: int,
        agents_per_town: int | None = None,
        device: str | torch.device = "cpu",
        *,
        autoreset: bool = True,
        reuse_buffers: bool = False,
        scalar: bool = False,
    ) -> None:
        """`autoreset` replaces ended slots inside `step` (SAME_STEP): a dead agent by a
        newcomer, a town whose agents have all ended or that reached max_steps by a new town.
        Without it, the town runs on until `reset` and the dead stay dead.

        `reuse_buffers` writes observations into two (obs, final_obs) buffer pairs used in
        turn: the `obs` and `final_obs` of a step stay valid until the step after next, and
        rows of `final_obs` where `done` is false are unspecified. Do not write into them.

        `agents_per_town=None` takes the level's population: 1, or social.yaml's `population`.

        `scalar` adds the scalar engine (`core.scalar`, one town on the CPU without autoreset):
        `step_scalar` then runs a tick in plain Python numbers, equal to `step`'s bit for bit,
        some ten times faster for one town. The Gymnasium and PettingZoo envs use it.
        """
        self.device = torch.device(device)
        self.level = (
            level.to(self.device) if isinstance(level, CompiledLevel) else compile_level(level, self.device)
        )
        if agents_per_town is None:
            agents_per_town = default_agents_per_town(self.level)
        num_slots, agents_per_town = check_sizes(num_slots, agents_per_town)
        check_room(self.level, agents_per_town)
        memory.check(self.level, num_slots, agents_per_town, self.device, buffers=4 if reuse_buffers else 3)
        self.num_slots = num_slots
        self.agents_per_town = agents_per_town
        self.num_towns = num_slots // agents_per_town
        self.autoreset = autoreset
        self.reuse_buffers = reuse_buffers
        self.generator = torch.Generator(device=self.device)
        self.generator.seed()
        self._difficulty = torch.ones(num_slots, dtype=torch.float32, device=self.device)
        self._state: TownState | None = None
        self._mask: torch.Tensor | None = None  # legal actions of the current state, for step
        self._pairs: Pairs | None = None  # social levels: pairwise facts of a state (see _pairs_of)
        self._scratch: dict[str, torch.Tensor] = {}  # see Pairs
        self._buffers: list[torch.Tensor] = []
        self._turn = 0
        self._engine: ScalarTown | None = None
        self._scalar = scalar
        self._readout: TensorReadout | None = None  # `engine` of a level the engine cannot run
        if scalar:
            if self.num_towns != 1 or autoreset or self.device.type != "cpu":
                raise ValueError("the scalar engine runs one town on the CPU, without autoreset")
            self._engine = scalar_engine(self.level)
        self._engine_live = False  # the engine holds the current state
        self._state_stale = False  # ... and _state is behind it: `state` converts it back

    # --- the running batch ------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._state is not None

    @property
    def state(self) -> TownState:
        """The current state (frozen tensors; replace it with `set_state`, never in place)."""
        if self._state is None:
            raise RuntimeError("call reset() before using the town")
        if self._state_stale:
            assert self._engine is not None
            self._state, self._state_stale = self._engine.to_state(), False
            self._mask = self._pairs = None
        return self._state

    @property
    def difficulty(self) -> torch.Tensor:
        """[N] per-slot multiplier of the base drain (a copy)."""
        return self._difficulty.clone()

    def seed(self, seed: int | None) -> None:
        """Seed the generator that draws layouts and birth cells; None draws fresh entropy."""
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def reset(self, seed: int | None = None) -> Observation:
        self.reset_state(seed)
        return self.observe()

    def reset_state(self, seed: int | None = None) -> None:
        """New towns, like `reset`, without observing them (a scalar town's adapter observes
        through `engine`)."""
        if seed is not None:
            self.seed(seed)
        self._install(
            initial_state(self.level, self.num_towns, self.agents_per_town, self.generator, self._difficulty)
        )

    # --- the scalar engine (one town, plain Python numbers) -----------------------------------

    @property
    def engine(self) -> ScalarTown | TensorReadout:
        """The scalar engine, holding the current state (a `Town(..., scalar=True)` only); on a
        level it cannot replay exactly, the same readings taken from the tensor core."""
        if self._engine is None:
            if not self._scalar:
                raise RuntimeError("this town has no scalar engine: build it with scalar=True")
            if self._readout is None or self._readout.state is not self.state:
                self._readout = TensorReadout(self.state, self.observe())
            return self._readout
        return self._live_engine(self._engine)

    def _live_engine(self, engine: ScalarTown) -> ScalarTown:
        if not self._engine_live:
            engine.load(self.state)
            self._engine_live = True
        return engine

    def step_scalar(self, actions: list[int]) -> ScalarResult:
        """One tick by the scalar engine: `actions` are ints in range, one per slot (the caller
        checks them). Equal to `step` without autoreset; `engine.observe` and `engine.mask`
        give what it returns as `obs` and `mask`, and `state` the new state."""
        if self._engine is None:
            return as_result(self.step(torch.tensor(actions)))
        engine = self._live_engine(self._engine)
        result = engine.step(actions)
        if self.level.economy is not None:  # the events that start at the new tick, as in `step`
            engine.schedule(events.draw(self.level.economy, 1, self.generator).tolist()[0])
        self._state_stale = True
        return result

    def observe(self) -> Observation:
        """The observation and mask of the current state, as `reset` returns them."""
        state = self.state
        aff = affordance_at(self.level, state)
        pairs = self._pairs = self._pairs_of(state, aff)
        mask = action_mask(self.level, state, aff, pairs)
        self._mask = mask.clone()  # the town's own copy: the caller may edit the one handed out
        obs = observe(self.level, state, aff, out=self._rows(self._next_buffer()), pairs=pairs)
        return Observation(obs, mask, aff)

    def step(self, actions: Any) -> StepOutput:
        state = self.state
        actions = check_actions(actions, self.num_slots, self.level, self.device)
        state, result = step(self.level, state, actions, self._mask, self._pairs)
        if self.level.economy is not None:  # the events that start at the new tick
            draws = events.draw(self.level.economy, self.num_towns, self.generator)
            state = events.schedule(self.level, state, draws)
        done = result.terminated | result.truncated
        final_steps = state.life_steps
        buffer = self._next_buffer()
        if self.autoreset and (bool(done.any()) or renew.arrivals_due(self.level, state)):
            # one pass observes the renewed state and the ended towns' last tick (core.renew)
            state, now, final_obs, final_mask, self._pairs = renew.renew(
                self.level, state, done, self.generator, self._scratch, buffer
            )
        else:
            aff = affordance_at(self.level, state)
            pairs = self._pairs = self._pairs_of(state, aff, result.ties_town_last)
            obs = observe(self.level, state, aff, out=self._rows(buffer), pairs=pairs)
            now = Observation(obs, action_mask(self.level, state, aff, pairs), aff)
            final_obs, final_mask = now.obs, now.mask
        # `mask` goes to the caller, and when nothing ended it is also `final_mask`: the town
        # keeps a copy of its own for the next step.
        self._state, self._mask = state, now.mask.clone()
        self._engine_live = False
        return StepOutput(
            obs=now.obs,
            mask=now.mask,
            affordance=now.affordance,
            reward=result.reward,
            terminated=result.terminated,
            truncated=result.truncated,
            done=done,
            invalid_action=result.invalid_action,
            executed=result.executed,
            final_obs=final_obs,
            final_mask=final_mask,
            final_episode_step=final_steps,
            chat_partner=result.chat_partner,
            chat_success=result.chat_success,
            reward_terms=result.reward_terms,
            economy=economy_outputs(result),
        )

    def _pairs_of(
        self, state: TownState, aff: torch.Tensor | None = None, ties: torch.Tensor | None = None
    ) -> Pairs | None:
        """On a social level, the `Pairs` of `state`: the kept ones when they are its own. The town
        keeps those of its current state, so that the state's observation, mask and `info` and
        the step from it compute each pairwise fact once."""
        if self.level.social is None or (self._pairs is not None and self._pairs.state is state):
            return self._pairs
        aff = affordance_at(self.level, state) if aff is None else aff
        return Pairs(state, aff, self.level.max_steps, self._scratch, ties)

    def _queue_position(self) -> torch.Tensor | None:
        """On a social level, the queue positions of the current state, from its kept `Pairs`."""
        if self.level.social is None:
            return None
        self._pairs = self._pairs_of(self.state)
        assert self._pairs is not None, "a social level"
        return self._pairs.queue_position

    def _next_buffer(self) -> torch.Tensor | None:
        """A [2N, obs_dim] buffer for this call's observations (None without buffer reuse): the
        next of two in turn, so that the previous step's tensors stay untouched. Its first half
        takes `obs`, its second `final_obs`, and `renew.renew` observes up to all of it at once."""
        if not self.reuse_buffers:
            return None
        if not self._buffers:
            shape = (2 * self.num_slots, self.level.layout.size)
            self._buffers = [torch.zeros(shape, device=self.device) for _ in range(2)]
        self._turn ^= 1
        return self._buffers[self._turn]

    def _rows(self, buffer: torch.Tensor | None) -> torch.Tensor | None:
        return None if buffer is None else buffer[: self.num_slots]

    def _install(self, state: TownState) -> None:
        self._state = state
        self._engine_live = self._state_stale = False
        self._mask = None  # a new state: the next observe() or step() computes its mask
        self._pairs = None

    # --- the admin's events -----------------------------------------------------------------

    def trigger_event(
        self, town: int, name: str, duration: int | None = None, value: float | None = None
    ) -> None:
        """Start catalogue event `name` now in `town` (the admin's command), whatever its chance,
        cooldown and the cap: for `duration` ticks (default: its longest) with `value` (default:
        its highest multiplier). An outage releases the agents on what it closes."""
        e = events.named(self.level, self.num_towns, town, name)
        duration, value = events.trigger_values(self.level, e, duration, value)
        self._install(events.trigger(self.level, self.state, town, e, duration, value))

    def cancel_event(self, town: int, name: str) -> None:
        """End catalogue event `name` now in `town` (nothing happens if it is not active)."""
        e = events.named(self.level, self.num_towns, town, name)
        self._install(events.cancel(self.state, town, e))

    # --- difficulty, state, persistence -------------------------------------------------------

    def set_difficulty(self, multiplier: float | torch.Tensor) -> None:
        """Multiply every slot's base drain (a float) or each slot's (a [num_slots] tensor)."""
        value = torch.as_tensor(multiplier, dtype=torch.float32, device=self.device)
        if value.dim() == 0:
            value = value.expand(self.num_slots)
        if value.shape != (self.num_slots,):
            raise ValueError(
                f"difficulty must be a float or a [{self.num_slots}] tensor, got {tuple(value.shape)}"
            )
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError("difficulty multipliers must be finite and >= 0")
        self._difficulty = value.clone()
        if self._state is not None:
            self._state = self.state.replace(difficulty=self._difficulty)
            self._engine_live = False

    def set_state(self, state: TownState) -> None:
        """Install a state built by a tool or a test (say, an agent moved onto a Bed). It is
        checked like a loaded one: same shapes and dtypes, values the simulation can run from."""
        state = snapshot.installable(self.level, state, self._expected(), self.device)
        self._difficulty = state.difficulty.clone()
        self._install(state)

    def state_dict(self) -> dict[str, Any]:
        """The whole simulation, generator included; loadable with torch.load(weights_only=True)."""
        return {
            "format": snapshot.STATE_FORMAT,
            "level": self.level.name,
            "level_hash": self.level.content_hash,
            "num_envs": self.num_slots,
            "agents_per_town": self.agents_per_town,
            "generator": self.generator.get_state(),
            "difficulty": self._difficulty.clone(),
            "state": {k: v.clone() for k, v in self.state.tensors().items()},
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Replace everything by a saved state, after checking all of it: a refused state
        leaves the town exactly as it was."""
        saved, state = snapshot.restorable(
            saved,
            self.level,
            self.num_slots,
            self.agents_per_town,
            self._expected(),
            self.generator,
            self.device,
        )
        self.generator.set_state(saved["generator"].cpu())
        self._difficulty = saved["difficulty"].to(self.device).clone()
        self._install(state)

    def _expected(self) -> TownState:
        """A state of this town's shapes: the current one, or what a reset would build."""
        if self._state is not None:
            return self._state
        scratch = torch.Generator(device=self.device).manual_seed(0)
        return initial_state(self.level, self.num_towns, self.agents_per_town, scratch)

    def close(self) -> None:
        self._state = self._mask = self._pairs = None
        self._engine_live = self._state_stale = False
        self._buffers, self._scratch = [], {}

    # --- looking at it ------------------------------------------------------------------------

    def slot_info(self) -> dict[str, torch.Tensor]:
        """Per-slot facts of the current state, by their info names (`views.slot_info`). These
        are the state's own tensors: copy them before writing into them."""
        return views.slot_info(self.level, self.state, self._queue_position())

    def social_info(self) -> dict[str, torch.Tensor]:
        """The social part of `slot_info` (`views.social_info`); empty on other levels."""
        return views.social_info(self.level, self.state, self._queue_position())

    def economy_info(self) -> dict[str, torch.Tensor]:
        """The economy's part of `slot_info` (`views.economy_info`); empty on other levels."""
        return views.economy_info(self.level, self.state)

    @property
    def event_names(self) -> tuple[str, ...]:
        return () if self.level.economy is None else self.level.economy.event_names

    @property
    def exit_reasons(self) -> tuple[str, ...]:
        return () if self.level.economy is None else self.level.economy.exit_reasons

    def view(self, towns: Any = None) -> TownView:
        """A copy of the given towns (default: all) for observers and recorders."""
        state = self.state
        every = torch.arange(self.num_towns, device=self.device)
        index = every if towns is None else town_index(towns, self.num_towns, self.device)
        return views.town_view(self.level, state, index, self._queue_position())

    def render(self, mode: str = "ansi", town: int = 0) -> str | np.ndarray:
        """A text picture ("ansi") or a uint8 [H, W, 3] image ("rgb_array": grid, legend, meter
        strip; see `render.rgb_layout`) of one town."""
        check_render_mode(mode, RENDER_MODES)
        if not 0 <= town < self.num_towns:
            raise ValueError(f"town {town} is not in [0, {self.num_towns})")
        if mode == "ansi":
            return render_ansi(self.level, self.state, town)
        return render_rgb(self.level, self.state, town)


def default_agents_per_town(level: CompiledLevel) -> int:
    """1, or on a social level the pack's population."""
    return 1 if level.social is None else level.social.spec.population


__all__ = [
    "RENDER_MODES",
    "Observation",
    "StepOutput",
    "Town",
    "TownView",
    "check_actions",
    "check_render_mode",
    "default_agents_per_town",
]
