"""Checks that a saved simulation state fits the env it is loaded into, with one clear message."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from townlet_env.core.state import TownState

if TYPE_CHECKING:
    from townlet_env.vector_env import TownletVectorEnv

REQUIRED = ("format", "level", "level_hash", "num_envs", "agents_per_town", "generator", "difficulty", "state")


class StateMismatchError(ValueError):
    """A saved state does not belong to this env (another level, size or format)."""


def check_state_dict(env: TownletVectorEnv, saved: Any, fmt: int) -> None:
    if not isinstance(saved, dict):
        raise StateMismatchError(f"expected a state dict, got {type(saved).__name__}")
    missing = [key for key in REQUIRED if key not in saved]
    if missing:
        raise StateMismatchError(f"state dict lacks {', '.join(missing)} (has {', '.join(map(str, saved))})")
    if saved["format"] != fmt:
        raise StateMismatchError(f"state format {saved['format']} is not the supported format {fmt}")
    if saved["level_hash"] != env.level.content_hash:
        raise StateMismatchError(
            f"state is from level '{saved['level']}' (hash {str(saved['level_hash'])[:12]}), but this env "
            f"runs level '{env.level.name}' (hash {env.level.content_hash[:12]})"
        )
    for key in ("num_envs", "agents_per_town"):
        if saved[key] != getattr(env, key):
            raise StateMismatchError(f"state has {key}={saved[key]}, this env has {getattr(env, key)}")
    names = {f.name for f in dataclasses.fields(TownState)}
    if set(saved["state"]) != names:
        raise StateMismatchError(f"state tensors {sorted(saved['state'])} differ from {sorted(names)}")
    if env._state is not None:
        for name, tensor in env._state.tensors().items():
            got = saved["state"][name]
            if not isinstance(got, torch.Tensor) or got.shape != tensor.shape or got.dtype != tensor.dtype:
                raise StateMismatchError(f"state tensor '{name}' does not match this env's {tuple(tensor.shape)} {tensor.dtype}")
