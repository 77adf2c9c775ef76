"""Refuse a batch that cannot fit before allocating it, with a message that names the size.

Allocating first and failing later gives a bare `MemoryError` (or, worse, a machine that swaps
for minutes); an estimate from the level's shapes costs nothing and fails in one clear line.
"""

from __future__ import annotations

from pathlib import Path

import torch

from townlet_env.core.level import CompiledLevel


class MemoryBudgetError(ValueError):
    """A requested batch would not fit in the memory the device has available."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    raise AssertionError("unreachable")


def available_bytes(device: torch.device) -> int | None:
    """Free memory of the device now, or None where it cannot be read (then nothing is refused)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def batch_bytes(level: CompiledLevel, num_slots: int, agents_per_town: int, buffers: int) -> int:
    """State plus `buffers` observation-sized tensors: what a batch holds while it steps."""
    m, obs = level.n_meters, level.layout.size
    per_slot = 4 * m + 16 + 1 + 8 + 8 + 4 + 3 * level.n_actions + buffers * 4 * obs + 16
    if level.social is not None:  # three ties toward every agent of the town, three traits
        per_slot += 4 * (3 * agents_per_town + 3)
    grid = (level.height + 2 * level.pad) * (level.width + 2 * level.pad)
    per_town = grid + 4 * level.n_affordances + 8
    return num_slots * per_slot + (num_slots // agents_per_town) * per_town


def check(
    level: CompiledLevel, num_slots: int, agents_per_town: int, device: torch.device, buffers: int
) -> None:
    need = batch_bytes(level, num_slots, agents_per_town, buffers)
    free = available_bytes(device)
    if free is not None and need > free:
        raise MemoryBudgetError(
            f"num_envs={num_slots} on level '{level.name}' needs about {format_bytes(need)} for its state "
            f"and observations ({level.layout.size} floats each), but the {device.type} device has "
            f"{format_bytes(free)} available; use fewer slots"
        )
