"""Gymnasium front ends: `TownletEnv` (one agent, numpy) and `TorchToNumpy` (vector env -> numpy).

`gym.make("Townlet-v0")` builds a `TownletEnv`: one agent alone in one town, numpy observations,
Python scalars for reward and flags, and the action mask both in `info["action_mask"]` (int8,
the PettingZoo convention) and from `action_masks()` (bool, the sb3-contrib convention). It is a
thin view of a `Town` of one agent on the CPU, stepped by the scalar engine (`core.scalar`: the
tensor core's arithmetic in plain Python numbers, equal bit for bit and about ten times faster
for one agent).

The episode truncates itself at the level's `max_steps` (the core sets `truncated`), so the id is
registered without a `TimeLimit` wrapper and `env.spec.max_episode_steps` is None; read the
horizon from `env.unwrapped.max_steps`. Passing `max_episode_steps=` to `gym.make` still adds a
`TimeLimit` for a shorter horizon.

`gym.make_vec("Townlet-v0", num_envs=N)` builds the torch-native `TownletVectorEnv`;
`TorchToNumpy(envs)` gives the same env with numpy in and out, for numpy-based libraries and
for Gymnasium's numpy vector wrappers (`RecordEpisodeStatistics(TorchToNumpy(envs))`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper

from townlet_env.core.town import RENDER_MODES, Town, check_render_mode
from townlet_env.envs.common import LevelNames, action_index, render_town


class TownletEnv(LevelNames, gym.Env[np.ndarray, np.int64]):
    """One agent in one town, with the Gymnasium single-agent API and numpy outputs.

    Args:
        level: a built-in level name (see `townlet_env.builtin_levels()`) or a pack directory.
        render_mode: None, "ansi" (text) or "rgb_array" (a uint8 [H, W, 3] image: grid, legend, meters).

    Observation: `Box(-1, 1, (obs_dim,), float32)`, fields named by `observation_layout`.
    Action: `Discrete(n_actions)`, named by `action_names`. A masked action runs as WAIT and is
    flagged in `info["invalid_action"]`. Reward, terminated and truncated follow docs/index.md:
    terminated when a terminal meter reaches 0, truncated when alive at `max_steps`.
    """

    # Gymnasium and PettingZoo treat metadata as an instance attribute: it cannot be a ClassVar.
    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}  # noqa: RUF012

    def __init__(self, level: str | Path = "L1_full_observability", render_mode: str | None = None) -> None:
        check_render_mode(render_mode, RENDER_MODES, optional=True)
        self.render_mode = render_mode
        self.town = Town(level, 1, 1, "cpu", autoreset=False, scalar=True)
        self.level = self.town.level
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.level.layout.size,), np.float32)
        self.action_space = gym.spaces.Discrete(self.level.n_actions)
        self._mask = np.ones(self.level.n_actions, dtype=bool)
        self._masks: dict[tuple[bool, ...], tuple[np.ndarray, np.ndarray]] = {}  # bool, int8
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
        self.town.reset_state(seed=int(self.np_random.integers(2**62)))
        self._ended = False
        obs, info = self._observe()
        info["invalid_action"] = False
        if self.level.economy is not None:
            info["exit_reason"] = 0
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if not self.town.started:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._ended:
            raise gym.error.ResetNeeded("the episode has ended (terminated or truncated); call reset()")
        if type(action) is not int or not 0 <= action < self.level.n_actions:
            action = action_index(action, self.level.n_actions)
        out = self.town.step_scalar([action])
        terminated, truncated = out.terminated[0], out.truncated[0]
        self._ended = terminated or truncated
        obs, info = self._observe()
        info["invalid_action"] = out.invalid[0]
        if out.economy:
            info["exit_reason"] = out.economy["exit_reason"][0]
        return obs, out.reward[0], terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """[n_actions] bool: the legal actions now (sb3-contrib's MaskablePPO calls this)."""
        return self._mask.copy()

    def render(self) -> str | np.ndarray | None:
        return render_town(self.town, self.render_mode)

    def close(self) -> None:
        self.town.close()

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        engine = self.town.engine
        obs = engine.observe(np.empty((1, self.level.layout.size), dtype=np.float32))[0]
        row = engine.mask()[0]
        masks = self._masks.get(tuple(row))
        if masks is None:  # a level has few distinct masks: each made once, handed out as copies
            masks = self._masks[tuple(row)] = (np.array(row, dtype=bool), np.array(row, dtype=np.int8))
        self._mask = masks[0]
        info = {
            "action_mask": masks[1].copy(),
            "meters": np.array(engine.meters[0], dtype=np.float32),
            "position": np.array((engine.x[0], engine.y[0]), dtype=np.int64),
            "episode_step": engine.life_steps[0],
        }
        if self.level.economy is not None:  # the events on in the town (named by `event_names`)
            info["events"] = np.array(engine.active_events(), dtype=bool)
        return obs, info


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
