"""What every adapter shares: the names and layout of its level, and the checks of render modes,
actions and "reset first", written once."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from townlet_env.core.level import CompiledLevel
from townlet_env.core.town import Town


class ResetNeeded(gym.error.ResetNeeded, RuntimeError):
    """Raised when an env is used before `reset()`: Gymnasium code catches ResetNeeded, other
    code RuntimeError, and both are right."""


class LevelNames:
    """Mixin for the envs: `level` is the compiled level they run."""

    level: CompiledLevel

    @property
    def meter_names(self) -> list[str]:
        return list(self.level.meter_names)

    @property
    def action_names(self) -> list[str]:
        return list(self.level.action_names)

    @property
    def affordance_names(self) -> list[str]:
        return list(self.level.affordance_names)

    @property
    def event_names(self) -> list[str]:
        """The catalogue events of an economy level, the columns of `info["events"]`."""
        return [] if self.level.economy is None else list(self.level.economy.event_names)

    @property
    def exit_reasons(self) -> list[str]:
        """The names of `info["exit_reason"]`'s codes on an economy level (0: "none")."""
        return [] if self.level.economy is None else list(self.level.economy.exit_reasons)

    @property
    def observation_layout(self) -> list[tuple[str, int, int]]:
        """(name, offset, size) of every field of an agent's observation vector, in order."""
        return [(f.name, f.offset, f.size) for f in self.level.layout.fields]


def reward_term_names(level: CompiledLevel) -> tuple[str, ...]:
    """The reward terms a social level reports in `info["reward_terms"]`, in order: social.yaml's,
    then economy.yaml's."""
    names = () if level.social is None else level.social.term_names
    return names if level.economy is None else (*names, *level.economy.spec.reward.term_names)


def economy_reset_info(num_envs: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The economy's per-tick info entries before any tick: no exit, no wage, no arrival."""
    zero = torch.zeros(num_envs, device=device)
    no = torch.zeros(num_envs, dtype=torch.bool, device=device)
    return {
        "exit_reason": torch.zeros(num_envs, dtype=torch.long, device=device),
        "wage": zero,
        "arrived_on_time": no,
        "arrived_late": no.clone(),
        "absent": no.clone(),
        "fired": no.clone(),
    }


def require_started(town: Town, what: str) -> None:
    if not town.started:
        raise ResetNeeded(f"call reset() before {what}")


def render_town(town: Town, render_mode: str | None, index: int = 0) -> str | np.ndarray | None:
    """An adapter's render(): None with a warning without a render mode; "human" prints text."""
    if render_mode is None:
        gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
        return None
    require_started(town, "render()")
    picture = town.render("ansi" if render_mode == "human" else render_mode, index)
    if render_mode == "human":
        print(picture, end="")
        return None
    return picture


def action_index(action: Any, n_actions: int) -> int:
    """An int from an int, a numpy integer or a one-element integer array; range-checked."""
    value = np.asarray(action)
    if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
        raise ValueError(f"action must be one integer in 0..{n_actions - 1}, got {action!r}")
    index = int(value.reshape(()))
    if not 0 <= index < n_actions:
        raise ValueError(f"action {index} is out of range: actions are 0..{n_actions - 1}")
    return index
