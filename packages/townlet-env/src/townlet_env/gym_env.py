"""Gymnasium front ends: `TownletEnv` (one agent, numpy) and `TorchToNumpy` (vector env -> numpy).

`gym.make("Townlet-v0")` builds a `TownletEnv`: one agent alone in one town, numpy observations,
Python scalars for reward and flags, and the action mask both in `info["action_mask"]` (int8,
the PettingZoo convention) and from `action_masks()` (bool, the sb3-contrib convention). It is a
thin layer over `townlet_env.core`: one town of one agent, stepped on the CPU.

The episode truncates itself at the level's `max_steps` (the core sets `truncated`), so the id is
registered without a `TimeLimit` wrapper and `env.spec.max_episode_steps` is None; read the
horizon from `env.unwrapped.max_steps`. Passing `max_episode_steps=` to `gym.make` still adds a
`TimeLimit` for a shorter horizon.

`gym.make_vec("Townlet-v0", num_envs=N)` builds the torch-native `TownletVectorEnv`;
`TorchToNumpy(envs)` gives the same env with numpy in and out, for numpy-based libraries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper

from townlet_env.core import (
    CompiledLevel,
    TownState,
    action_mask,
    affordance_at,
    compile_level,
    initial_state,
    observe,
    step,
)
from townlet_env.names import LevelNames

RENDER_MODES = ("ansi", "rgb_array")


class TownletEnv(LevelNames, gym.Env[np.ndarray, np.int64]):
    """One agent in one town, with the Gymnasium single-agent API and numpy outputs.

    Args:
        level: a built-in level name (see `townlet_env.builtin_levels()`) or a pack directory.
        render_mode: None, "ansi" (text) or "rgb_array" (an [H*16, W*16, 3] uint8 image).

    Observation: `Box(-1, 1, (obs_dim,), float32)`, fields named by `observation_layout`.
    Action: `Discrete(n_actions)`, named by `action_names`. A masked action runs as WAIT and is
    flagged in `info["invalid_action"]`. Reward, terminated and truncated follow levels.md:
    terminated when a terminal meter reaches 0, truncated when alive at `max_steps`.
    """

    # Gymnasium and PettingZoo treat metadata as an instance attribute: it cannot be a ClassVar.
    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}  # noqa: RUF012

    def __init__(self, level: str | Path = "L1_full_observability", render_mode: str | None = None) -> None:
        if render_mode not in (None, *RENDER_MODES):
            raise ValueError(f"render_mode {render_mode!r} is not one of None, 'ansi', 'rgb_array'")
        self.render_mode = render_mode
        self.level: CompiledLevel = compile_level(level, "cpu")
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.level.layout.size,), np.float32)
        self.action_space = gym.spaces.Discrete(self.level.n_actions)
        self._generator = torch.Generator()
        self._state: TownState | None = None
        self._mask = np.ones(self.level.n_actions, dtype=bool)
        self._mask_tensor = torch.ones(
            1, self.level.n_actions, dtype=torch.bool
        )  # the same mask, as step() takes it
        self._ended = False

    # --- names and layout ------------------------------------------------------------------

    @property
    def max_steps(self) -> int:
        """The horizon: the env truncates itself after this many steps."""
        return self.level.max_steps

    # --- the Gymnasium API -----------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options are not supported (got {sorted(options)})")
        # Every layout is drawn from np_random, so reset(seed=s) fixes the whole episode.
        self._generator.manual_seed(int(self.np_random.integers(2**62)))
        self._state = initial_state(self.level, 1, 1, self._generator)
        self._ended = False
        obs, info = self._observe(self._state)
        info["invalid_action"] = False
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._ended:
            raise gym.error.ResetNeeded("the episode has ended (terminated or truncated); call reset()")
        a = _action_index(action, self.level.n_actions)
        # the mask of this state is already known from the last observation: pass it on
        self._state, result = step(self.level, self._state, torch.tensor([a]), self._mask_tensor)
        terminated = bool(result.terminated[0])
        truncated = bool(result.truncated[0])
        self._ended = terminated or truncated
        obs, info = self._observe(self._state)
        info["invalid_action"] = bool(result.invalid_action[0])
        return obs, float(result.reward[0]), terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """[n_actions] bool: the legal actions now (sb3-contrib's MaskablePPO calls this)."""
        return self._mask.copy()

    def render(self) -> str | np.ndarray | None:
        from townlet_env.render import render_ansi, render_rgb

        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        if self.render_mode == "ansi":
            return render_ansi(self.level, self._state, 0)
        return render_rgb(self.level, self._state, 0)

    def _observe(self, state: TownState) -> tuple[np.ndarray, dict[str, Any]]:
        aff = affordance_at(self.level, state)
        obs = observe(self.level, state, aff)[0].numpy()
        self._mask_tensor = action_mask(self.level, state, aff)
        self._mask = self._mask_tensor[0].numpy()
        info = {
            "action_mask": self._mask.astype(np.int8),
            "meters": state.meters[0].numpy().copy(),
            "position": state.position[0].numpy().copy(),
            "episode_step": int(state.life_steps[0]),
        }
        return obs, info


def _action_index(action: Any, n_actions: int) -> int:
    """An int from an int, a numpy integer or a one-element integer array; range-checked."""
    value = np.asarray(action)
    if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
        raise ValueError(f"action must be one integer in 0..{n_actions - 1}, got {action!r}")
    index = int(value.reshape(()))
    if not 0 <= index < n_actions:
        raise ValueError(f"action {index} is out of range: actions are 0..{n_actions - 1}")
    return index


class TorchToNumpy(VectorWrapper):
    """A `TownletVectorEnv` (or any torch vector env) with numpy in and out.

        envs = TorchToNumpy(gym.make_vec("Townlet-v0", num_envs=8))

    Observations, rewards, flags and every tensor in `info` (nested dicts included) come back
    as numpy arrays on the CPU; actions may be numpy arrays or lists. Autoreset is unchanged
    (SAME_STEP: `info["final_obs"]` holds the last observation where `info["_final_obs"]`).
    """

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return to_numpy(obs), to_numpy(info)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return to_numpy(obs), to_numpy(reward), to_numpy(terminated), to_numpy(truncated), to_numpy(info)


def to_numpy(value: Any) -> Any:
    """Tensors to numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_numpy(v) for v in value)
    return value


__all__ = ["TorchToNumpy", "TownletEnv", "to_numpy"]
