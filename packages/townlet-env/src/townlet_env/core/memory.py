"""Refuse a batch that cannot fit before allocating it, with a message that names the size.

Allocating first and failing later gives a bare `MemoryError` (or, worse, a machine that swaps
for minutes); an estimate from the level's shapes costs nothing and fails in one clear line.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from townlet_env.core.level import CompiledLevel


class MemoryBudgetError(ValueError):
    """A requested batch would not fit in the memory the device has available."""


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB', in powers of 1000 as disks and `free --si` count."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    raise AssertionError("unreachable")


def available_memory(device: torch.device) -> tuple[int, int] | None:
    """(available now, total) bytes of the device's memory, or None where it cannot be read (then
    nothing is refused)."""
    if device.type == "cuda":
        try:
            free, total = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError):  # a CPU build of torch asserts
            return None
        return int(free), int(total)
    if device.type != "cpu":
        return None
    return _meminfo(Path("/proc/meminfo")) or _sysconf()


def _meminfo(path: Path) -> tuple[int, int] | None:
    """Linux: MemAvailable counts the page cache that can be reclaimed, unlike free pages."""
    try:
        fields = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
        return _kib(fields["MemAvailable"]), _kib(fields["MemTotal"])
    except (OSError, KeyError, ValueError):
        return None


def _kib(text: str) -> int:
    number, unit = text.split()
    if unit != "kB":
        raise ValueError(unit)
    return int(number) * 1024


def _sysconf() -> tuple[int, int] | None:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page
    except (AttributeError, ValueError, OSError):  # not on every platform (macOS lacks AVPHYS)
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
    memory = available_memory(device)
    free = None if memory is None else memory[0]
    if free is not None and need > free:
        raise MemoryBudgetError(
            f"num_envs={num_slots} on level '{level.name}' needs about {format_bytes(need)} for its state "
            f"and observations ({level.layout.size} floats each), but the {device.type} device has "
            f"{format_bytes(free)} available; use fewer slots"
        )
