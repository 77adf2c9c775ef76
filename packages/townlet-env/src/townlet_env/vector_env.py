"""`TownletVectorEnv`: the torch-native Gymnasium vector env, a thin adapter over the core.

Observations, rewards, flags and info entries are tensors on the env's device. Autoreset is
SAME_STEP: a slot that ended returns the first observation of its next life, and its last
observation is in `info["final_obs"]` where `info["_final_obs"]` is true.

With `copy=False` (as in Gymnasium's `SyncVectorEnv`), observations are written into buffers
the env reuses instead of fresh tensors: at thousands of slots a fresh [N, obs_dim] tensor per
step costs more than the tick itself. See `TownletVectorEnv.__init__` for the lifetime rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from townlet_env.config import ConfigError
from townlet_env.core import (
    CompiledLevel,
    TownState,
    action_mask,
    affordance_at,
    autoreset,
    compile_level,
    hour_of_day,
    initial_state,
    observe,
    step,
)
from townlet_env.names import LevelNames

STATE_FORMAT = 2  # 2: affordance_position is int16


class TownletVectorEnv(LevelNames, VectorEnv):
    # Gymnasium declares metadata an instance attribute, so it cannot be a ClassVar here.
    metadata = {  # noqa: RUF012
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
    }

    def __init__(
        self,
        level: str | Path = "L1_full_observability",
        num_envs: int = 1,
        agents_per_town: int = 1,
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        render_town: int = 0,
        copy: bool = True,
    ) -> None:
        """`copy=False` reuses two observation buffers, alternately: the `obs` and
        `info["final_obs"]` of a step stay valid until the step after next (so a learner can
        still read `obs_t` after `step` returned `obs_t+1`), and the rows of `final_obs` where
        `_final_obs` is false are unspecified. Do not modify them in place; copy what you keep.
        """
        for name, value in (("num_envs", num_envs), ("agents_per_town", agents_per_town)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        num_envs, agents_per_town = int(num_envs), int(agents_per_town)
        if agents_per_town < 1 or num_envs < 1 or num_envs % agents_per_town:
            raise ValueError(
                f"num_envs ({num_envs}) must be a positive multiple of agents_per_town "
                f"({agents_per_town}): slot i lives in town i // agents_per_town"
            )
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not one of None, 'ansi', 'rgb_array'")
        self.device = torch.device(device)
        self.level: CompiledLevel = compile_level(level, self.device)
        if self.level.free_cells.numel() < self.level.n_affordances + agents_per_town:
            # Fail here rather than at the first reset(): the town cannot hold everyone.
            raise ValueError(
                f"level '{self.level.name}' has {self.level.free_cells.numel()} free cells, too few "
                f"for {self.level.n_affordances} affordances and agents_per_town={agents_per_town}"
            )
        self.num_envs = num_envs
        self.agents_per_town = agents_per_town
        self.num_towns = num_envs // agents_per_town
        if not 0 <= render_town < self.num_towns:
            raise ValueError(f"render_town {render_town} is not in [0, {self.num_towns})")
        self.render_mode = render_mode
        self.render_town = render_town
        dim = self.level.layout.size
        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.single_action_space = gym.spaces.Discrete(self.level.n_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._generator = torch.Generator(device=self.device)
        self._generator.seed()
        self._difficulty = torch.ones(num_envs, dtype=torch.float32, device=self.device)
        self._mask: torch.Tensor | None = None  # legal actions of the current state, kept for step
        self._state = None
        self.copy = bool(copy)
        # copy=False: [obs, final_obs] buffer pairs, used alternately (see __init__'s docstring)
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._turn = 0

    # --- names and layout ------------------------------------------------------------------

    @property
    def _state(self) -> TownState | None:
        return self._town_state

    @_state.setter
    def _state(self, value: TownState | None) -> None:
        # Any new state (reset, load, or a test setting one up) invalidates the cached mask.
        self._town_state = value
        self._mask = None

    @property
    def state(self) -> TownState:
        if self._state is None:
            raise RuntimeError("call reset() before using the env")
        return self._state

    # --- the Gymnasium API -----------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        # Reject bad options before seeding, so that a failed call leaves the RNG untouched.
        if options:
            raise ValueError(f"reset options are not supported (got {sorted(options)})")
        if seed is not None:
            self._generator.manual_seed(seed)
        self._state = initial_state(
            self.level, self.num_towns, self.agents_per_town, self._generator, self._difficulty
        )
        aff = affordance_at(self.level, self._state)
        mask = action_mask(self.level, self._state, aff)
        self._mask = mask.clone()  # the env's own copy, for the next step
        obs = observe(self.level, self._state, aff, out=self._out_buffers()[0])
        return obs, self._info(self._state, aff, mask)

    def step(
        self, actions: torch.Tensor | np.ndarray | list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        state = self.state
        actions = self._check_actions(actions)
        state, result = step(self.level, state, actions, self._mask)
        done = result.terminated | result.truncated
        final_aff = affordance_at(self.level, state)
        obs_buffer, final_buffer = self._out_buffers()
        final_obs = observe(self.level, state, final_aff, out=obs_buffer)
        final_mask = action_mask(self.level, state, final_aff)
        final_steps = state.life_steps
        obs, mask, aff = final_obs, final_mask, final_aff
        if bool(done.any()):
            state = autoreset(self.level, state, done, self._generator)
            # Only towns with an ended slot changed: re-observe just those.
            towns = done.view(-1, self.agents_per_town).any(dim=1).nonzero().flatten()
            slots = state.slots_of(towns)
            sub = state.select_towns(towns)
            sub_aff = affordance_at(self.level, sub)
            if final_buffer is None:
                obs = obs.clone()
            else:  # the ended rows move to the final buffer; obs is rewritten in place
                final_buffer[slots] = final_obs[slots]
                final_obs = final_buffer
            mask, aff = mask.clone(), aff.clone()
            obs[slots] = observe(self.level, sub, sub_aff)
            mask[slots] = action_mask(self.level, sub, sub_aff)
            aff[slots] = sub_aff
        # The env keeps its own copy of the mask for the next step: `mask` goes out in info, and
        # when nothing ended it is also the `final_action_mask`; a caller may edit either.
        self._state, self._mask = state, mask.clone()
        info = self._info(state, aff, mask)
        info.update(
            invalid_action=result.invalid_action,
            final_obs=final_obs,
            _final_obs=done,
            final_episode_step=final_steps,
            final_action_mask=final_mask,
        )
        return obs, result.reward, result.terminated, result.truncated, info

    def _out_buffers(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(obs, final_obs) buffers for this step: (None, None) with copy=True, else the next
        pair in turn, so that the previous step's tensors stay untouched."""
        if self.copy:
            return None, None
        if not self._buffers:
            shape = (self.num_envs, self.level.layout.size)
            self._buffers = [
                (torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device))
                for _ in range(2)
            ]
        self._turn ^= 1
        return self._buffers[self._turn]

    def _check_actions(self, actions: Any) -> torch.Tensor:
        try:
            actions = torch.as_tensor(actions, device=self.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"actions must be integers of shape ({self.num_envs},) (tensor, array or list): {err}"
            ) from err
        # bool is rejected too: True/False would silently run as UP/DOWN.
        if (
            actions.shape != (self.num_envs,)
            or actions.is_floating_point()
            or actions.is_complex()
            or actions.dtype == torch.bool
        ):
            raise ValueError(
                f"actions must be an integer tensor of shape ({self.num_envs},), "
                f"got {tuple(actions.shape)} {actions.dtype}"
            )
        actions = actions.long()
        bad = (actions < 0) | (actions >= self.level.n_actions)
        if bool(bad.any()):
            slot = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"action {int(actions[slot])} in slot {slot} is out of range: actions are 0.."
                f"{self.level.n_actions - 1} ({', '.join(self.level.action_names)})"
            )
        return actions

    def _info(self, state: TownState, aff: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
        hour = hour_of_day(state) if self.level.day_cycle else torch.zeros_like(state.life_steps)
        return {
            "action_mask": mask,
            "meters": state.meters,
            "position": state.position,
            "time_of_day": hour,
            "affordance_at": aff,
            "interaction_progress": state.progress,
            "episode_step": state.life_steps,
        }

    # --- curriculum, persistence, rendering --------------------------------------------------

    def set_difficulty(self, multiplier: float | torch.Tensor) -> None:
        """Multiply every slot's base drain (a float) or each slot's (a [num_envs] tensor)."""
        value = torch.as_tensor(multiplier, dtype=torch.float32, device=self.device)
        if value.dim() == 0:
            value = value.expand(self.num_envs)
        if value.shape != (self.num_envs,):
            raise ValueError(
                f"difficulty must be a float or a [{self.num_envs}] tensor, got {tuple(value.shape)}"
            )
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError("difficulty multipliers must be finite and >= 0")
        self._difficulty = value.clone()
        if self._state is not None:
            self._state = self._state.replace(difficulty=self._difficulty)

    def state_dict(self) -> dict[str, Any]:
        """The whole simulation state, RNG included; loadable with torch.load(weights_only=True)."""
        return {
            "format": STATE_FORMAT,
            "level": self.level.name,
            "level_hash": self.level.content_hash,
            "num_envs": self.num_envs,
            "agents_per_town": self.agents_per_town,
            "generator": self._generator.get_state(),
            "difficulty": self._difficulty.clone(),
            "state": {k: v.clone() for k, v in self.state.tensors().items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        from townlet_env.persistence import check_state_dict

        check_state_dict(self, state_dict, STATE_FORMAT)
        self._generator.set_state(state_dict["generator"].cpu())
        self._difficulty = state_dict["difficulty"].to(self.device).clone()
        tensors = {k: v.to(self.device).clone() for k, v in state_dict["state"].items()}
        self._state = TownState(**tensors)

    # One picture of one town (render_town), not a tuple per sub-env as VectorEnv declares:
    # thousands of slots make a per-slot tuple useless for logs and videos.
    def render(self) -> str | np.ndarray | None:  # type: ignore[override]
        from townlet_env.render import render_ansi, render_rgb

        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self.render_mode == "ansi":
            return render_ansi(self.level, self.state, self.render_town)
        return render_rgb(self.level, self.state, self.render_town)

    def close_extras(self, **kwargs: Any) -> None:
        self._state = None


__all__ = ["ConfigError", "TownletVectorEnv"]
