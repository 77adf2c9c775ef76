"""What the scalar engine (`core.scalar`) is made of: float32 rounding in plain Python, the
level's tables as Python numbers, and the numbers of one town.

Every torch float32 operation is replayed as one Python (float64) operation rounded to float32
(`f32`): for one +, -, * or / of float32 values that is the float32 result exactly (rounding
first to float64 and then to float32 cannot differ from rounding once).
"""

from __future__ import annotations

import dataclasses
from array import array
from dataclasses import dataclass, field
from typing import Any

import torch

from townlet_env.core.level import BLOCKED, CompiledLevel
from townlet_env.core.state import TownState

_ROUND = array("f", [0.0])


def f32(value: float) -> float:
    """`value` rounded to the nearest float32 (what a torch float32 operation stores)."""
    _ROUND[0] = value
    return _ROUND[0]


def f32s(values: list[float]) -> list[float]:
    return array("f", values).tolist()


def row_sum(values: list[float]) -> float:
    """The float32 sum of a short row in the order torch's CPU kernel adds it (aten's
    `row_sum`: four partial sums over runs of four, the rest into the first, then the partials in
    turn; rows of 8 or more take its vectorised path, so they are summed by torch itself)."""
    n = len(values)
    if n >= 8:
        return float(torch.tensor([values], dtype=torch.float32).sum(dim=1)[0])
    r = _ROUND
    partial = [0.0, 0.0, 0.0, 0.0]
    whole = n // 4 * 4
    for start in range(0, whole, 4):
        for lane in range(4):
            r[0] = partial[lane] + values[start + lane]
            partial[lane] = r[0]
    total = partial[0]
    for value in values[whole:] + partial[1:]:
        r[0] = total + value
        total = r[0]
    return total


# What the engine replays. A pack file, compiled table or state tensor added for a new mechanic
# is not in these sets: until the mechanic joins the engine (docs/performance.md, "How a new
# mechanic joins"), a level that uses it runs on the tensor core instead of giving wrong numbers.
KNOWN_CONFIG = frozenset(
    {
        "name",
        "source",
        "meters",
        "cascades",
        "affordances",
        "world",
        "actions",
        "reward",
        "observation",
        "social",
        "economy",
    }
)
KNOWN_TABLES = frozenset(
    {
        "name", "content_hash", "config", "meter_names", "action_names", "affordance_names", "width",
        "height", "pad", "max_steps", "day_cycle", "multi_tick", "wait_action", "interact_action",
        "layout", "initial_meters", "drain", "terminal", "action_delta", "move_delta", "is_move",
        "move_actions", "move_columns", "aff_ticks", "aff_tick_delta", "aff_completion",
        "aff_instant_delta", "aff_required", "aff_open", "aff_channel", "channels_in_order",
        "reward_meters", "reward_weights", "modulations", "cascade_stages", "walls", "free_cells",
        "terminal_index", "move_cell_offset", "position_scale", "hour_features", "window_offset",
        "code_channel", "social", "economy",
    }
)  # fmt: skip
KNOWN_STATE = frozenset(
    {
        "meters", "position", "alive", "progress", "life_steps", "difficulty", "clock",
        "affordance_position", "cells", "trust", "familiarity", "rivalry", "personality",
        "queue_key", "stall", "work", "ledger", "event_clock", "event_value",
    }
)  # fmt: skip


def unknown_state(state: TownState) -> list[str]:
    """State tensors of a mechanic the engine does not replay (empty ones do not count)."""
    return [
        f.name
        for f in dataclasses.fields(state)
        if f.name not in KNOWN_STATE and getattr(state, f.name).numel() > 0
    ]


def unsupported(level: CompiledLevel) -> str | None:
    """Why the scalar engine cannot replay this level's arithmetic exactly, or None: a mechanic
    it does not know yet, or a cascade stage with three or more cascades onto one meter (the
    stage sums its losses with a matrix product, whose order of addition is the BLAS
    library's; with two or fewer the order cannot matter)."""
    for f in dataclasses.fields(level.config):
        if f.name not in KNOWN_CONFIG and getattr(level.config, f.name) is not None:
            return f"a mechanic the scalar engine does not replay yet ({f.name})"
    for f in dataclasses.fields(level):
        if f.name not in KNOWN_TABLES and getattr(level, f.name) is not None:
            return f"a mechanic the scalar engine does not replay yet ({f.name})"
    for stage in level.cascade_stages:
        if bool((stage.target.sum(dim=0) > 2).any()):
            return "a cascade stage with more than two cascades onto one meter"
    if level.reward_meters.numel() > 8:
        return "a reward formula over more than eight meters"
    return None


@dataclass
class ScalarResult:
    """One tick, as `StepResult` holds it, in Python lists."""

    reward: list[float]
    terminated: list[bool]
    truncated: list[bool]
    invalid: list[bool]
    executed: list[int]
    chat_partner: list[int] | None = None
    chat_success: list[bool] | None = None
    reward_terms: dict[str, list[float]] = field(default_factory=dict)
    # economy levels: `StepOutput.economy` (exit_reason, wage, arrived_on_time, ...) in lists
    economy: dict[str, list] = field(default_factory=dict)


def needs_of(required: list[list[float]]) -> list[list[tuple[int, float]]]:
    """Per affordance, (meter, least value) of the meters a use needs above 0: a meter is never
    below 0, so `meter >= 0` always holds and need not be asked (`action_mask`'s check)."""
    return [[(m, r) for m, r in enumerate(row) if r > 0.0] for row in required]


class ScalarTables:
    """The compiled level's tables as Python numbers, read once per level."""

    def __init__(self, level: CompiledLevel) -> None:
        self.level = level
        self.m = level.n_meters
        self.n_actions = level.n_actions
        self.wait = level.wait_action
        self.interact = level.interact_action
        self.max_steps = level.max_steps
        self.pad = level.pad
        self.action_delta = level.action_delta.tolist()
        self.move_delta = [tuple(d) for d in level.move_delta.tolist()]
        self.is_move = level.is_move.tolist()
        self.move_actions = level.move_actions.tolist()
        self.aff_ticks = level.aff_ticks.tolist()
        self.aff_tick_delta = level.aff_tick_delta.tolist()
        self.aff_completion = level.aff_completion.tolist()
        self.aff_instant_delta = level.aff_instant_delta.tolist()
        self.aff_required = level.aff_required.tolist()
        self.aff_needs = needs_of(self.aff_required)
        self.aff_open = level.aff_open.tolist()
        self.drain = level.drain.tolist()
        self.terminal = level.terminal_index.tolist()
        self.modulations = [
            (s, t, f32(base), f32(offset), f32(scale)) for s, t, base, offset, scale in level.modulations
        ]
        self.stages = [
            [
                (src, tgt, th, sot)
                for src, tgt, th, sot in zip(
                    st.source.tolist(),
                    st.target.argmax(dim=1).tolist(),
                    st.threshold.tolist(),
                    st.strength_over_threshold.tolist(),
                    strict=True,
                )
            ]
            for st in level.cascade_stages
        ]
        # the same cascades grouped by target, in order within each (how a stage sums them)
        self.stages_by_target: list[list[tuple[int, list[tuple[int, float, float]]]]] = []
        for stage in self.stages:
            groups: dict[int, list[tuple[int, float, float]]] = {}
            for src, tgt, th, sot in stage:
                groups.setdefault(tgt, []).append((src, th, sot))
            self.stages_by_target.append(list(groups.items()))
        spec = level.config.reward.reward
        self.reward_kind = spec.kind
        self.reward_meters = level.reward_meters.tolist()
        self.reward_weights = level.reward_weights.tolist()
        self.reward_base = f32(getattr(spec, "base", 0.0) or 0.0)
        self.reward_centre = f32(getattr(spec, "centre", 0.0) or 0.0)
        self.reward_bonus = f32(getattr(spec, "bonus", 0.0) or 0.0)
        self.reward_clip = None if spec.clip is None else (f32(spec.clip[0]), f32(spec.clip[1]))


class TownNumbers:
    """One town's state as Python values (filled by `ScalarTown.load`)."""

    t: ScalarTables
    view: Any  # scalar_observe.ObserveTables
    social: Any  # scalar_social.SocialScalar or None
    economy: Any  # scalar_economy.EconomyScalar or None
    events: Any  # scalar_events.EventTables or None
    source: TownState
    k: int
    meters: list[list[float]]
    x: list[int]
    y: list[int]
    alive: list[bool]
    progress: list[int]
    life_steps: list[int]
    difficulty: list[float]
    drain: list[list[float]]
    clock: int
    cells: list[list[int]]  # [H][W] cell codes, no padding
    aff_xy: list[tuple[int, int]]
    view_cache: dict[tuple[int, int], Any]  # per position: see scalar_observe.view_rows, _window
    place_cache: dict[tuple[int, int], Any]  # per position: see scalar_rows._place
    rows: Any  # scalar_rows.RowBuffer of a social town once observed, or None

    def affordance(self, i: int) -> int:
        """The affordance under slot i, -1 for none."""
        code = self.cells[self.y[i]][self.x[i]]
        return code if code >= 0 else -1

    def cell(self, x: int, y: int) -> int:
        if 0 <= y < len(self.cells) and 0 <= x < len(self.cells[0]):
            return self.cells[y][x]
        return BLOCKED
