"""Stable-Baselines3 glue (needs the `interop` extra: `pip install "townlet-env[interop]"`); import
it as `townlet_env.interop`.

- `SB3VecEnv`: `TownletVectorEnv` as an SB3 `VecEnv`: every slot of a batched, torch-stepped
  env becomes one SB3 env, with `terminal_observation`, `TimeLimit.truncated` and
  `action_masks` (for sb3-contrib's `MaskablePPO`) filled in. The fast path for SB3.
- `SuperSuitSB3Fix`: wraps the SB3 vec env that SuperSuit 3.11's
  `concat_vec_envs_v1(..., base_class="stable_baselines3")` returns and supplies what SuperSuit
  leaves out under SB3 2.x and Gymnasium 1.x: `seed()` (SuperSuit's raises AttributeError, so
  `PPO(..., seed=0)` fails), `get_attr("render_mode")` (without it `VecMonitor` warns), and
  `action_masks` read from `infos[i]["action_mask"]` (build the town with `mask_in_obs=False`).

See docs/api.md for the pitfalls these address.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from townlet_env.envs.vector_env import TownletVectorEnv

MASK_METHOD = "action_masks"  # sb3-contrib's name


class SB3VecEnv(VecEnv):
    """A `TownletVectorEnv` seen by Stable-Baselines3 as `num_envs` numpy environments.

        venv = SB3VecEnv(TownletVectorEnv("L0_minimal", num_envs=16))
        model = MaskablePPO("MlpPolicy", VecMonitor(venv))

    A slot that ends is reset in the same step (the vector env's SAME_STEP autoreset); its last
    observation is `infos[i]["terminal_observation"]` and `infos[i]["TimeLimit.truncated"]` tells
    SB3 to bootstrap from it when the episode was truncated rather than terminated.
    """

    def __init__(self, env: TownletVectorEnv) -> None:
        if not isinstance(env, TownletVectorEnv):
            raise TypeError(f"SB3VecEnv wraps a torch TownletVectorEnv (unwrapped), got {type(env).__name__}")
        self.env = env
        self._masks = np.ones((env.num_envs, env.level.n_actions), dtype=np.bool_)
        self._actions: torch.Tensor | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> VecEnvObs:
        seed = self._seeds[0]
        obs, info = self.env.reset(seed=seed)
        self._reset_seeds()
        self._masks = info["action_mask"].cpu().numpy()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs.cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = torch.as_tensor(np.asarray(actions).reshape(self.num_envs))

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async() first"
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        done = (terminated | truncated).cpu().numpy()
        terminated_np, truncated_np = terminated.cpu().numpy(), truncated.cpu().numpy()
        self._masks = info["action_mask"].cpu().numpy()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        ended = np.flatnonzero(done)
        if ended.size:
            final_obs = info["final_obs"].cpu().numpy()
            lengths = info["final_episode_step"].cpu().numpy()
            for i in ended:
                infos[i]["terminal_observation"] = final_obs[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated_np[i] and not terminated_np[i])
                infos[i]["episode_step"] = int(lengths[i])
        return obs.cpu().numpy(), reward.cpu().numpy(), done, infos

    def action_masks(self) -> np.ndarray:
        return self._masks.copy()

    def close(self) -> None:
        self.env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"SB3VecEnv cannot set per-env attribute {attr_name!r}; set it on .env")

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        idx = list(self._get_indices(indices))
        if method_name == MASK_METHOD:
            return list(self._masks[idx])
        raise AttributeError(f"SB3VecEnv has no per-env method {method_name!r}; call it on .env")

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == MASK_METHOD or hasattr(self.env, attr_name)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))


class SuperSuitSB3Fix(VecEnvWrapper):
    """Completes SuperSuit's SB3 vec env (`concat_vec_envs_v1(..., base_class="stable_baselines3")`).

        venv = ss.concat_vec_envs_v1(vec, 4, base_class="stable_baselines3")
        venv = VecMonitor(SuperSuitSB3Fix(venv))

    Adds `seed()` (passed on as `reset(seed=s)`, which gives copy i of the town the seed s + i),
    `get_attr("render_mode")`, and `action_masks` from each agent's `info["action_mask"]`.
    A black-death slot (its agent has died) has no mask in its info; it gets all actions
    allowed, which is harmless: SuperSuit drops the actions of agents that have left.
    """

    def __init__(self, venv: VecEnv) -> None:
        space = venv.action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise TypeError(f"SuperSuitSB3Fix expects a Discrete action space, got {space}")
        self._masks = np.ones((venv.num_envs, int(space.n)), dtype=np.bool_)
        self._seed: int | None = None
        super().__init__(venv)

    def _gym_vec_env(self) -> Any:
        # SuperSuit's SB3VecEnvWrapper keeps the Gymnasium-style ConcatVecEnv in .venv
        inner: Any = self.venv
        return inner.venv

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def reset(self) -> VecEnvObs:
        if self._seed is not None:
            obs, infos = self._gym_vec_env().reset(seed=self._seed)
            self._seed = None
            self.venv.reset_infos = infos
        else:
            obs = self.venv.reset()
            infos = self.venv.reset_infos
        self.reset_infos = list(infos)
        self._update_masks(infos)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._update_masks(infos)
        return obs, rewards, dones, infos

    def _update_masks(self, infos: Sequence[dict[str, Any]]) -> None:
        for i, info in enumerate(infos):
            mask = info.get("action_mask")
            self._masks[i] = True if mask is None else np.asarray(mask, dtype=bool)

    def action_masks(self) -> np.ndarray:
        return self._masks.copy()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        n = len(list(self._get_indices(indices)))
        if attr_name == "render_mode":
            return [getattr(self.venv, "render_mode", None)] * n
        return self.venv.get_attr(attr_name, indices)

    def has_attr(self, attr_name: str) -> bool:
        return attr_name in (MASK_METHOD, "render_mode") or self.venv.has_attr(attr_name)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        if method_name == MASK_METHOD:
            return list(self._masks[list(self._get_indices(indices))])
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)


__all__ = ["SB3VecEnv", "SuperSuitSB3Fix"]
