"""Checks that a saved simulation state fits the env it is loaded into, with one clear message."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from townlet_env.core.state import TownState

if TYPE_CHECKING:
    from townlet_env.vector_env import TownletVectorEnv

REQUIRED = (
    "format",
    "level",
    "level_hash",
    "num_envs",
    "agents_per_town",
    "generator",
    "difficulty",
    "state",
)


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
    if not isinstance(saved["state"], dict):
        raise StateMismatchError(
            f"state dict entry 'state' must be a dict of tensors, got {type(saved['state']).__name__}"
        )
    if set(saved["state"]) != names:
        raise StateMismatchError(f"state tensors {sorted(saved['state'])} differ from {sorted(names)}")
    # Compare against what this env would build itself, whether or not it has been reset: a new
    # env that loads a checkpoint must not accept tensors it would only trip over later.
    expected = _expected_tensors(env)
    for name, want in expected.items():
        got = saved["state"][name]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or got.dtype != want.dtype:
            what = f"{tuple(got.shape)} {got.dtype}" if isinstance(got, torch.Tensor) else type(got).__name__
            raise StateMismatchError(
                f"state tensor '{name}' is {what}, this env needs {tuple(want.shape)} {want.dtype}"
            )
    difficulty = saved["difficulty"]
    if (
        not isinstance(difficulty, torch.Tensor)
        or difficulty.shape != (env.num_envs,)
        or not difficulty.is_floating_point()
    ):
        what = (
            f"{tuple(difficulty.shape)} {difficulty.dtype}"
            if isinstance(difficulty, torch.Tensor)
            else type(difficulty).__name__
        )
        raise StateMismatchError(
            f"state 'difficulty' is {what}, this env needs a float [{env.num_envs}] tensor"
        )
    for where, value in (("difficulty", difficulty), ("state.difficulty", saved["state"]["difficulty"])):
        # the same rule as set_difficulty(): a corrupt multiplier would silently skew the drain
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise StateMismatchError(f"state '{where}' holds multipliers that are not finite and >= 0")
    rng = saved["generator"]
    own = env._generator.get_state()
    if not isinstance(rng, torch.Tensor) or rng.dtype != own.dtype or rng.shape != own.shape:
        what = f"{tuple(rng.shape)} {rng.dtype}" if isinstance(rng, torch.Tensor) else type(rng).__name__
        raise StateMismatchError(
            f"state 'generator' is {what}, but this env's {env.device.type} generator state is "
            f"{tuple(own.shape)} {own.dtype} (was the state saved on another device type?)"
        )


def _expected_tensors(env: TownletVectorEnv) -> dict[str, torch.Tensor]:
    """The state tensors of this env's shape, as a fresh reset would make them (any seed)."""
    from townlet_env.core.spawn import initial_state

    if env._state is not None:
        return env._state.tensors()
    scratch = torch.Generator(device=env.device)
    scratch.manual_seed(0)
    return initial_state(env.level, env.num_towns, env.agents_per_town, scratch).tensors()
