"""Checks that a saved or hand-made simulation state fits a town, with one clear message.

A state can come from disk (`Town.load_state_dict`) or from a tool or test (`Town.set_state`).
Either way it is checked twice: its *form* (keys, shapes, dtypes, level identity) and its
*values* (finite meters in [0, 1], agents on the grid and off walls, a clock within the
horizon, a cell grid that matches the affordance layout). A state that passes can be stepped
without tripping over anything later; one that does not is refused before it is installed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from townlet_env.core.level import BLOCKED, CompiledLevel
from townlet_env.core.observe import affordance_at
from townlet_env.core.spawn import draw_grid
from townlet_env.core.state import TownState

STATE_FORMAT = 4  # 2: affordance_position is int16; 3: the social tensors; 4: the economy's
SOCIAL_TENSORS = ("trust", "familiarity", "rivalry", "personality", "queue_key", "stall")
ECONOMY_TENSORS = ("work", "ledger", "event_clock", "event_value")
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
    """A saved state does not belong to this town (another level, size or format), or holds
    values the simulation cannot run from (NaN meters, agents off the grid...)."""


def describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {value.dtype}"
    return type(value).__name__


def check_form(
    saved: Any,
    level: CompiledLevel,
    num_slots: int,
    agents_per_town: int,
    expected: TownState,
    generator: Any,
) -> None:
    """Keys, level identity, sizes, and the shape and dtype of every tensor."""
    if not isinstance(saved, dict):
        raise StateMismatchError(f"expected a state dict, got {type(saved).__name__}")
    missing = [key for key in REQUIRED if key not in saved]
    if missing:
        raise StateMismatchError(f"state dict lacks {', '.join(missing)} (has {', '.join(map(str, saved))})")
    if saved["format"] != STATE_FORMAT:
        raise StateMismatchError(f"state format {saved['format']} is not the supported format {STATE_FORMAT}")
    if saved["level_hash"] != level.content_hash:
        raise StateMismatchError(
            f"state is from level '{saved['level']}' (hash {str(saved['level_hash'])[:12]}), but this env "
            f"runs level '{level.name}' (hash {level.content_hash[:12]})"
        )
    for key, own in (("num_envs", num_slots), ("agents_per_town", agents_per_town)):
        if saved[key] != own:
            raise StateMismatchError(f"state has {key}={saved[key]}, this env has {own}")
    if not isinstance(saved["state"], dict):
        raise StateMismatchError(
            f"state dict entry 'state' must be a dict of tensors, got {type(saved['state']).__name__}"
        )
    check_tensors(saved["state"], expected)
    difficulty = saved["difficulty"]
    if (
        not isinstance(difficulty, torch.Tensor)
        or difficulty.shape != (num_slots,)
        or not difficulty.is_floating_point()
    ):
        raise StateMismatchError(
            f"state 'difficulty' is {describe(difficulty)}, this env needs a float [{num_slots}] tensor"
        )
    check_difficulty(difficulty, "difficulty")
    rng, own_rng = saved["generator"], generator.get_state()
    if not isinstance(rng, torch.Tensor) or rng.dtype != own_rng.dtype or rng.shape != own_rng.shape:
        raise StateMismatchError(
            f"state 'generator' is {describe(rng)}, but this env's {generator.device.type} generator state "
            f"is {tuple(own_rng.shape)} {own_rng.dtype} (was the state saved on another device type?)"
        )


def upgrade(saved: Any, expected: TownState) -> Any:
    """An older save in the current format: a format-2 save of a level without the social layer
    gets the empty ties and traits and clear queues such a level always has; a format-2 or 3 save
    of a level without an economy gets its empty economy tensors. Anything else is left for
    `check_form` to refuse."""
    if (
        not isinstance(saved, dict)
        or saved.get("format") not in (2, 3)
        or not isinstance(saved.get("state"), dict)
    ):
        return saved
    state = dict(saved["state"])
    groups: list[tuple[tuple[str, ...], bool]] = [(ECONOMY_TENSORS, expected.work.shape[1] > 0)]
    if saved["format"] == 2:
        groups.append((SOCIAL_TENSORS, expected.personality.shape[1] > 0))
    for names, layer in groups:
        if layer or any(name in state for name in names):
            return saved  # a level with that layer, or a save that already has it: not an old save
        for name in names:
            want = getattr(expected, name)
            state[name] = want.new_full(want.shape, -1 if name == "queue_key" else 0)
    return {**saved, "format": STATE_FORMAT, "state": state}


def check_tensors(tensors: dict[str, Any], expected: TownState) -> None:
    names = {f.name for f in dataclasses.fields(TownState)}
    if set(tensors) != names:
        raise StateMismatchError(f"state tensors {sorted(tensors)} differ from {sorted(names)}")
    for name, want in expected.tensors().items():
        got = tensors[name]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or got.dtype != want.dtype:
            raise StateMismatchError(
                f"state tensor '{name}' is {describe(got)}, this env needs {tuple(want.shape)} {want.dtype}"
            )


def same_kind(value: Any, want: torch.Tensor) -> Any:
    """`value` as `want`'s dtype when both are integer tensors of the same shape."""
    if (
        isinstance(value, torch.Tensor)
        and value.shape == want.shape
        and value.dtype != want.dtype
        and not value.is_floating_point()
        and not want.is_floating_point()
        and torch.bool not in (value.dtype, want.dtype)
    ):
        return value.to(want.dtype)
    return value


def check_difficulty(value: torch.Tensor, where: str) -> None:
    # the same rule as set_difficulty(): a corrupt multiplier would silently skew the drain
    if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
        raise StateMismatchError(f"state '{where}' holds multipliers that are not finite and >= 0")


def installable(level: CompiledLevel, state: Any, expected: TownState, device: torch.device) -> TownState:
    """A hand-made state (`Town.set_state`) on `device`, checked like a loaded one."""
    if not isinstance(state, TownState):
        raise TypeError(f"set_state takes a TownState, got {type(state).__name__}")
    # integers of another width (positions taken from the int16 affordance layout) are
    # converted; anything else must already have the town's shape and dtype
    tensors = {k: same_kind(v, getattr(expected, k)).to(device) for k, v in state.tensors().items()}
    check_tensors(tensors, expected)
    state = TownState(**tensors)
    check_values(level, state)
    return state


def restorable(
    saved: Any,
    level: CompiledLevel,
    num_slots: int,
    agents_per_town: int,
    expected: TownState,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[dict[str, Any], TownState]:
    """A saved state (`Town.load_state_dict`), upgraded and checked, and its `TownState` on
    `device`: all of it checked before the town changes."""
    saved = upgrade(saved, expected)
    check_form(saved, level, num_slots, agents_per_town, expected, generator)
    state = TownState(**{k: v.to(device).clone() for k, v in saved["state"].items()})
    check_values(level, state)
    return saved, state


def _first(bad: torch.Tensor) -> int:
    return int(bad.nonzero()[0, 0])


def check_values(level: CompiledLevel, state: TownState) -> None:
    """Every value a tick relies on, so that a loaded state never fails or misbehaves later."""
    meters = state.meters
    bad = ~(torch.isfinite(meters) & (meters >= 0) & (meters <= 1)).all(dim=1)
    if bool(bad.any()):
        slot = _first(bad)
        raise StateMismatchError(
            f"state tensor 'meters' must hold finite values in [0, 1]; slot {slot} has "
            f"{[round(v, 4) for v in meters[slot].tolist()]}"
        )
    check_difficulty(state.difficulty, "state.difficulty")
    x, y = state.position.unbind(dim=1)
    off_grid = (x < 0) | (x >= level.width) | (y < 0) | (y >= level.height)
    if bool(off_grid.any()):
        slot = _first(off_grid)
        raise StateMismatchError(
            f"state tensor 'position': slot {slot} is at {state.position[slot].tolist()}, off the "
            f"{level.width} x {level.height} grid"
        )
    on_wall = level.walls[y, x]
    if bool(on_wall.any()):
        slot = _first(on_wall)
        raise StateMismatchError(
            f"state tensor 'position': slot {slot} stands on a wall at {[x[slot], y[slot]]}"
        )
    for name, low, high in (
        ("clock", 0, level.max_steps),
        ("life_steps", 0, None),
        ("progress", 0, int(level.aff_ticks.max()) - 1 if level.multi_tick and level.n_affordances else 0),
    ):
        value = getattr(state, name)
        outside = value < low if high is None else (value < low) | (value > high)
        if bool(outside.any()):
            where = _first(outside)
            allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise StateMismatchError(
                f"state tensor '{name}' must be {allowed}; entry {where} is {int(value[where])}"
            )
    _check_layout(level, state)
    if level.social is not None:
        _check_social(level, state)
    if level.economy is not None:
        _check_economy(level, state)


def _check_economy(level: CompiledLevel, state: TownState) -> None:
    from townlet_env.core.economy import ABSENCES, BROKE, EMPLOYER, FIRINGS, HOME_X, HOME_Y, VACANT

    tables = level.economy
    assert tables is not None
    work = state.work
    checks = (
        ("employer", work[:, EMPLOYER], 0, len(tables.spec.jobs.employers) - 1),
        ("shift", work[:, 1], 0, 2),
        ("absences", work[:, ABSENCES], 0, (1 << tables.spec.jobs.absence_window) - 1),
        ("firings", work[:, FIRINGS], 0, 1_000_000),
        ("broke", work[:, BROKE], 0, 1_000_000),
        ("vacant", work[:, VACANT], 0, 1_000_000),
        ("home x", work[:, HOME_X], 0, level.width - 1),
        ("home y", work[:, HOME_Y], 0, level.height - 1),
        ("rehire_at", work[:, 3], 0, 1_000_000),
    )
    for what, value, low, high in checks:
        if bool(((value < low) | (value > high)).any()):
            raise StateMismatchError(f"state tensor 'work' ({what}) must be in [{low}, {high}]")
    if bool(level.walls[work[:, HOME_Y], work[:, HOME_X]].any()):
        raise StateMismatchError("state tensor 'work' places a home on a wall")
    if not bool(torch.isfinite(state.ledger).all()):
        raise StateMismatchError("state tensor 'ledger' must be finite")
    if bool((state.event_clock < 0).any()) or bool((state.event_clock > 1_000_000).any()):
        raise StateMismatchError("state tensor 'event_clock' must hold ticks in [0, 1000000]")
    value = state.event_value
    if not bool((torch.isfinite(value) & (value >= 0) & (value <= 2)).all()):
        raise StateMismatchError("state tensor 'event_value' must hold finite values in [0, 2]")


def _check_social(level: CompiledLevel, state: TownState) -> None:
    for name, (low, high) in (
        ("trust", (-1, 1)),
        ("familiarity", (0, 1)),
        ("rivalry", (0, 1)),
        ("personality", (0, 1)),
    ):
        value = getattr(state, name)
        if not bool((torch.isfinite(value) & (value >= low) & (value <= high)).all()):
            raise StateMismatchError(f"state tensor '{name}' must hold finite values in [{low}, {high}]")
    if bool(((state.queue_key < -1) | (state.queue_key > level.max_steps)).any()):
        raise StateMismatchError(f"state tensor 'queue_key' must be -1 or a tick in [0, {level.max_steps}]")
    off = affordance_at(level, state) < 0
    if bool(((state.queue_key >= 0) & ((state.progress > 0) | ~state.alive | off)).any()):
        raise StateMismatchError(
            "state tensor 'queue_key' queues an agent that is dead, mid-use or not on an affordance"
        )
    assert level.social is not None
    if bool(((state.stall < 0) | (state.stall >= level.social.spec.queue.ghost_ticks)).any()):
        raise StateMismatchError("state tensor 'stall' must be in [0, ghost_ticks)")


def _check_layout(level: CompiledLevel, state: TownState) -> None:
    """Affordances on free cells, and a cell grid that is exactly what that layout draws."""
    pos = state.affordance_position.long()
    ax, ay = pos[..., 0], pos[..., 1]
    if bool(((ax < 0) | (ax >= level.width) | (ay < 0) | (ay >= level.height)).any()):
        raise StateMismatchError("state tensor 'affordance_position' places an affordance off the grid")
    if bool(level.walls[ay, ax].any()):
        raise StateMismatchError("state tensor 'affordance_position' places an affordance on a wall")
    p = level.pad
    expected = torch.full_like(state.cells, BLOCKED)
    expected[:, p : p + level.height, p : p + level.width] = draw_grid(level, pos)
    if not torch.equal(expected, state.cells):
        town = _first((expected != state.cells).flatten(1).any(dim=1))
        raise StateMismatchError(
            f"state tensor 'cells' of town {town} does not match its walls and affordance positions "
            "(two affordances on one cell, or an edited grid)"
        )
