"""`TownletVectorEnv`: the torch-native Gymnasium vector env, a thin view of a `Town`.

Observations, rewards, flags and info entries are tensors on the env's device. Autoreset is
SAME_STEP: a slot that ended returns the first observation of its next life, and its last
observation is in `info["final_obs"]` where `info["_final_obs"]` is true.

Everything handed out is the caller's to keep and modify (`copy=True`, the default). With
`copy=False` (as in Gymnasium's `SyncVectorEnv`), observations are written into buffers the env
reuses and the per-slot info entries are the simulation's own tensors: at thousands of slots a
fresh [N, obs_dim] tensor per step costs more than the tick itself. See `__init__` for the rule.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from townlet_env.core.state import TownState
from townlet_env.core.town import RENDER_MODES, Observation, Town, check_render_mode
from townlet_env.envs.common import (
    LevelNames,
    economy_reset_info,
    render_town,
    require_started,
    reward_term_names,
)

# Gymnasium's vector wrappers that do numpy arithmetic on what the env returns; on torch tensors
# they fail deep inside with a TypeError, so they are caught at their first reset instead.
NUMPY_WRAPPERS = frozenset({"RecordEpisodeStatistics", "NormalizeReward", "DictInfoToList"})


class TownletVectorEnv(LevelNames, VectorEnv):
    # Gymnasium declares metadata an instance attribute, so it cannot be a ClassVar here.
    metadata = {  # noqa: RUF012
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": list(RENDER_MODES),
        "render_fps": 4,
    }
    # Gymnasium's own vector envs carry it as an attribute too, and some clients (TorchRL) read it.
    autoreset_mode = AutoresetMode.SAME_STEP

    def __init__(
        self,
        level: str | Path = "L1_full_observability",
        num_envs: int = 1,
        agents_per_town: int | None = None,
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        render_town: int = 0,
        copy: bool = True,
    ) -> None:
        """`copy=False` reuses two observation buffers, alternately: the `obs` and
        `info["final_obs"]` of a step stay valid until the step after next (so a learner can
        still read `obs_t` after `step` returned `obs_t+1`), and the rows of `final_obs` where
        `_final_obs` is false are unspecified. The info entries `meters`, `position`,
        `interaction_progress`, `episode_step` and `final_episode_step` are then the
        simulation's own tensors. Do not modify any of them in place; copy what you keep.

        `agents_per_town=None` takes the level's population (1, or social.yaml's `population`:
        six on L4_social), so every slot of a social level is an agent of a full town.
        """
        check_render_mode(render_mode, RENDER_MODES, optional=True)
        self.town = Town(level, num_envs, agents_per_town, device, reuse_buffers=not copy)
        self.level = self.town.level
        self.device = self.town.device
        self.num_envs = self.town.num_slots
        self.agents_per_town = self.town.agents_per_town
        self.num_towns = self.town.num_towns
        if not 0 <= render_town < self.num_towns:
            raise ValueError(f"render_town {render_town} is not in [0, {self.num_towns})")
        self.render_mode = render_mode
        self.render_town = render_town
        self.copy = bool(copy)
        dim = self.level.layout.size
        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.single_action_space = gym.spaces.Discrete(self.level.n_actions)
        self._batched_spaces: dict[str, gym.Space] = {}

    # The batched spaces hold per-slot bound arrays (2 x num_envs x obs_dim floats for the
    # observations): built on first use, so that a large batch that never asks costs nothing.
    @property
    def observation_space(self) -> gym.Space:
        if "obs" not in self._batched_spaces:
            self._batched_spaces["obs"] = batch_space(self.single_observation_space, self.num_envs)
        return self._batched_spaces["obs"]

    @observation_space.setter
    def observation_space(self, space: gym.Space) -> None:
        self._batched_spaces["obs"] = space

    @property
    def action_space(self) -> gym.Space:
        if "action" not in self._batched_spaces:
            self._batched_spaces["action"] = batch_space(self.single_action_space, self.num_envs)
        return self._batched_spaces["action"]

    @action_space.setter
    def action_space(self, space: gym.Space) -> None:
        self._batched_spaces["action"] = space

    @property
    def state(self) -> TownState:
        """The current simulation state (read it; change it with `town.set_state`)."""
        require_started(self.town, "using the env")
        return self.town.state

    # --- the Gymnasium API -----------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        _refuse_numpy_wrapper(self, sys._getframe(1))
        # Reject bad options before seeding, so that a failed call leaves the RNG untouched.
        if options:
            raise ValueError(f"reset options are not supported (got {sorted(options)})")
        first = self.town.reset(seed)
        info = self._info(first)
        if self.level.social is not None:  # nothing happened yet: no partner, every term 0
            none = torch.full((self.num_envs,), -1, dtype=torch.long, device=self.device)
            zero = torch.zeros(self.num_envs, device=self.device)
            terms = {name: zero.clone() for name in reward_term_names(self.level)}
            info.update(chat_partner=none, chat_success=none >= 0, reward_terms=terms)
        if self.level.economy is not None:  # no one left, no wage yet
            info.update(economy_reset_info(self.num_envs, self.device))
        return first.obs, info

    def observe(self) -> tuple[torch.Tensor, dict[str, Any]]:
        """The observation and info of the current state, as `reset` returns them: for example
        after `load_state_dict`, without stepping."""
        require_started(self.town, "observe()")
        now = self.town.observe()
        return now.obs, self._info(now)

    def step(
        self, actions: torch.Tensor | np.ndarray | list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        require_started(self.town, "step()")
        _refuse_numpy_wrapper(self, sys._getframe(1))
        out = self.town.step(actions)
        info = self._info(out)
        final_steps = out.final_episode_step.clone() if self.copy else out.final_episode_step
        info.update(
            invalid_action=out.invalid_action,
            final_obs=out.final_obs,
            _final_obs=out.done,
            final_episode_step=final_steps,
            final_action_mask=out.final_mask,
        )
        if self.level.social is not None:
            info.update(
                chat_partner=out.chat_partner, chat_success=out.chat_success, reward_terms=out.reward_terms
            )
        info.update(out.economy)
        return out.obs, out.reward, out.terminated, out.truncated, info

    def _info(self, now: Observation) -> dict[str, Any]:
        facts = {"affordance_at": now.affordance, **self.town.slot_info()}  # the town keeps both
        if self.copy:  # a client writing into its info must never corrupt the simulation
            facts = {name: value.clone() for name, value in facts.items()}
        return {"action_mask": now.mask, **facts}

    # --- curriculum, persistence, rendering --------------------------------------------------

    def set_difficulty(self, multiplier: float | torch.Tensor) -> None:
        """Multiply every slot's base drain (a float) or each slot's (a [num_envs] tensor)."""
        self.town.set_difficulty(multiplier)

    def state_dict(self) -> dict[str, Any]:
        """The whole simulation state, RNG included; loadable with torch.load(weights_only=True)."""
        require_started(self.town, "state_dict()")
        return self.town.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.town.load_state_dict(state_dict)

    # One picture of one town (render_town), not a tuple per sub-env as VectorEnv declares:
    # thousands of slots make a per-slot tuple useless for logs and videos.
    def render(self) -> str | np.ndarray | None:  # type: ignore[override]
        return render_town(self.town, self.render_mode, self.render_town)

    def close_extras(self, **kwargs: Any) -> None:
        self.town.close()


def _refuse_numpy_wrapper(env: TownletVectorEnv, caller: Any) -> None:
    """One clear message instead of Gymnasium's numpy wrappers failing deep inside on tensors."""
    wrapper = caller.f_locals.get("self")
    if (
        isinstance(wrapper, gym.vector.VectorWrapper)
        and getattr(wrapper, "env", None) is env
        and type(wrapper).__module__.startswith("gymnasium.wrappers.vector")
        and any(cls.__name__ in NUMPY_WRAPPERS for cls in type(wrapper).__mro__)
    ):
        name = type(wrapper).__name__
        raise TypeError(
            f"{name} works on numpy arrays, and TownletVectorEnv returns torch tensors: wrap the env "
            f"in townlet_env.TorchToNumpy first, as {name}(TorchToNumpy(gym.make_vec('Townlet-v0', ...)))"
        )


__all__ = ["TownletVectorEnv"]
