"""The checks every entry point into a running town shares: batch sizes, actions, render modes,
town indices.

They live here once, so that the Town and every adapter refuse the same input with the same
message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from townlet_env.core.level import CompiledLevel


def check_sizes(num_slots: Any, agents_per_town: Any) -> tuple[int, int]:
    """A batch of whole towns: both ints, `num_slots` a positive multiple of `agents_per_town`."""
    for name, value in (("num_slots", num_slots), ("agents_per_town", agents_per_town)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    num_slots, agents_per_town = int(num_slots), int(agents_per_town)
    if agents_per_town < 1 or num_slots < 1 or num_slots % agents_per_town:
        raise ValueError(
            f"num_envs ({num_slots}) must be a positive multiple of agents_per_town "
            f"({agents_per_town}): slot i lives in town i // agents_per_town"
        )
    return num_slots, agents_per_town


def town_index(towns: Any, num_towns: int, device: torch.device) -> torch.Tensor:
    """[V] long town indices from a list, array or tensor; each in [0, num_towns)."""
    index = torch.as_tensor(towns, device=device).flatten()
    if index.dtype in (torch.bool, torch.float16, torch.float32, torch.float64) or index.is_complex():
        raise ValueError(f"towns must be integer town indices, got {index.dtype}")
    index = index.long()
    if index.numel() and bool(((index < 0) | (index >= num_towns)).any()):
        raise ValueError(f"town indices must be in [0, {num_towns}), got {index.tolist()[:8]}")
    return index


def check_render_mode(mode: str | None, allowed: tuple[str, ...], optional: bool = False) -> None:
    """The one check of a render mode, for the town and every adapter."""
    if (optional and mode is None) or mode in allowed:
        return
    choices = ("None", *map(repr, allowed)) if optional else tuple(map(repr, allowed))
    raise ValueError(f"render_mode {mode!r} is not one of {', '.join(choices)}")


def check_actions(actions: Any, n: int, level: CompiledLevel, device: torch.device) -> torch.Tensor:
    """[n] long actions on `device` from a tensor, array or list; the one place they are checked."""
    try:
        actions = torch.as_tensor(actions, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"actions must be integers of shape ({n},) (tensor, array or list): {err}") from err
    # bool is rejected too: True/False would silently run as UP/DOWN.
    if (
        actions.shape != (n,)
        or actions.is_floating_point()
        or actions.is_complex()
        or actions.dtype == torch.bool
    ):
        raise ValueError(
            f"actions must be an integer tensor of shape ({n},), got {tuple(actions.shape)} {actions.dtype}"
        )
    actions = actions.long()
    low, high = torch.aminmax(actions)
    if int(low) < 0 or int(high) >= level.n_actions:
        bad = (actions < 0) | (actions >= level.n_actions)
        slot = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"action {int(actions[slot])} in slot {slot} is out of range: actions are 0.."
            f"{level.n_actions - 1} ({', '.join(level.action_names)})"
        )
    return actions
