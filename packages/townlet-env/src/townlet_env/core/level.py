"""Compile a validated `LevelConfig` into an immutable description made of tensors.

Everything the step needs is a table here, so the step itself is gathers and arithmetic with
no per-agent Python. Tables are indexed by meter, action or affordance in pack order.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from townlet_env.config import LevelConfig, load_level
from townlet_env.core.economy import EconomyTables, compile_economy
from townlet_env.core.layout import ObservationLayout, build_layout
from townlet_env.core.social import SocialTables, compile_social

HOURS_PER_DAY = 24
EMPTY, BLOCKED = -1, -2  # cell codes beside affordance indices >= 0


@dataclass(frozen=True)
class CascadeStage:
    """Cascades that can apply at once: no source is changed by an earlier one of the stage."""

    source: torch.Tensor  # [C] meter index
    target: torch.Tensor  # [C, M] one-hot of the target meter
    strength_over_threshold: torch.Tensor  # [C]
    threshold: torch.Tensor  # [C]


@dataclass(frozen=True)
class CompiledLevel:
    name: str
    content_hash: str
    config: LevelConfig
    meter_names: tuple[str, ...]
    action_names: tuple[str, ...]
    affordance_names: tuple[str, ...]
    width: int
    height: int
    pad: int  # border of blocked cells around the grid (>= window radius, >= 1)
    max_steps: int
    day_cycle: bool
    multi_tick: bool
    wait_action: int
    interact_action: int  # -1 when the level has no INTERACT
    layout: ObservationLayout
    # meters [M]
    initial_meters: torch.Tensor
    drain: torch.Tensor
    terminal: torch.Tensor  # bool
    # actions [n_actions, ...]
    action_delta: torch.Tensor  # [n_actions, M] meter change when executed
    move_delta: torch.Tensor  # [n_actions, 2] (dx, dy), zero for non-moves
    is_move: torch.Tensor  # [n_actions] bool, the action changes the position (move_delta not 0)
    move_actions: torch.Tensor  # [n_moves] indices of the move actions
    move_columns: slice | torch.Tensor  # move_actions, as a slice when they follow each other
    # affordances [A, ...]
    aff_ticks: torch.Tensor  # [A] long
    aff_tick_delta: torch.Tensor  # [A, M] effects - cost, one tick
    aff_completion: torch.Tensor  # [A, M]
    aff_instant_delta: torch.Tensor  # [A, M] ticks x tick delta + completion
    aff_required: torch.Tensor  # [A, M] what the agent must hold to start (cost of a use/tick)
    aff_open: torch.Tensor  # [A, 24] bool, open at hour h (all true without a day cycle)
    aff_channel: torch.Tensor  # [A] observation channel of each affordance
    channels_in_order: bool  # affordance a sits in channel a (a slice can replace aff_channel)
    # reward: the meters the formula reads, and their weights (weighted_sum only)
    reward_meters: torch.Tensor  # [K] long
    reward_weights: torch.Tensor  # [K] float32
    # dynamics
    modulations: tuple[tuple[int, int, float, float, float], ...]  # (src, tgt, base, offset, scale)
    cascade_stages: tuple[CascadeStage, ...]
    # world
    walls: torch.Tensor  # [H, W] bool
    free_cells: torch.Tensor  # [F] flat indices y * W + x of non-wall cells
    # derived once here so that a step builds no small tensors of its own
    terminal_index: torch.Tensor  # [T] long, the terminal meters
    move_cell_offset: torch.Tensor  # [n_moves] long, flat offset in the padded grid of each move
    position_scale: torch.Tensor  # [2] float32, (width - 1, height - 1), at least 1
    hour_features: torch.Tensor  # [24, 2] float32, sin and cos of each hour's angle
    window_offset: torch.Tensor  # [w * w] long, flat offsets of the partial window's cells
    code_channel: torch.Tensor  # [A + 2] long, channel of cell code c at c + 2 (BLOCKED -> n_ch)
    social: SocialTables | None = None  # relationships, chat and queues (levels with social.yaml)
    economy: EconomyTables | None = None  # jobs, prices, events, lifecycle (levels with economy.yaml)

    @property
    def n_meters(self) -> int:
        return len(self.meter_names)

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    @property
    def n_affordances(self) -> int:
        return len(self.affordance_names)

    @property
    def device(self) -> torch.device:
        return self.initial_meters.device

    def to(self, device: torch.device | str) -> CompiledLevel:
        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return value.to(device)
            if isinstance(value, CascadeStage | SocialTables | EconomyTables):
                return dataclasses.replace(
                    value, **{f.name: move(getattr(value, f.name)) for f in dataclasses.fields(value)}
                )
            if isinstance(value, tuple):  # cascade stages, the economy's (event, targets) pairs
                return tuple(move(v) for v in value)
            return value

        return dataclasses.replace(
            self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)}
        )


def compile_level(level: str | Path | LevelConfig, device: torch.device | str = "cpu") -> CompiledLevel:
    cfg = level if isinstance(level, LevelConfig) else load_level(level)
    meters = cfg.meter_names
    idx = {name: i for i, name in enumerate(meters)}
    m = len(meters)
    f32 = torch.float32

    def vec(deltas: dict[str, float]) -> torch.Tensor:
        out = torch.zeros(m, dtype=f32)
        for name, value in deltas.items():
            out[idx[name]] += value
        return out

    actions = cfg.actions.actions
    affs = cfg.affordances.affordances
    kinds = [a.kind for a in actions]
    move_delta = torch.tensor([list(a.delta) if a.delta else [0, 0] for a in actions], dtype=torch.long)

    tick_delta = torch.stack([vec(a.effects) - vec(a.cost) for a in affs])
    completion = torch.stack([vec(a.completion) for a in affs])
    ticks = torch.tensor([a.ticks for a in affs], dtype=torch.long)
    per_tick_cost = torch.stack([vec(a.cost) for a in affs])
    multi_tick = cfg.world.interaction == "multi_tick"
    required = per_tick_cost if multi_tick else per_tick_cost * ticks[:, None].to(f32)

    w, h = cfg.world.width, cfg.world.height
    walls = torch.zeros(h, w, dtype=torch.bool)
    for x, y in cfg.world.walls:
        walls[y, x] = True
    layout = build_layout(cfg)
    pad = max(1, layout.window // 2)
    channel_of = [layout.channels.index(a.name) for a in affs]  # observation channel per affordance
    moves = torch.tensor([i for i, k in enumerate(kinds) if k == "move"], dtype=torch.long)
    terminal = torch.tensor([mm.terminal for mm in cfg.meters.meters], dtype=torch.bool)

    compiled = CompiledLevel(
        name=cfg.name,
        content_hash=cfg.content_hash(),
        config=cfg,
        meter_names=tuple(meters),
        action_names=tuple(a.name for a in actions),
        affordance_names=tuple(a.name for a in affs),
        width=w,
        height=h,
        pad=pad,
        max_steps=cfg.world.max_steps,
        day_cycle=cfg.world.day_cycle,
        multi_tick=multi_tick,
        wait_action=kinds.index("wait"),
        interact_action=kinds.index("interact") if "interact" in kinds else -1,
        layout=layout,
        initial_meters=torch.tensor([mm.initial for mm in cfg.meters.meters], dtype=f32),
        drain=torch.tensor([mm.drain for mm in cfg.meters.meters], dtype=f32),
        terminal=terminal,
        action_delta=torch.stack([vec(a.effects) for a in actions]),
        move_delta=move_delta,
        is_move=move_delta.abs().sum(dim=1) > 0,
        move_actions=moves,
        move_columns=_columns(moves),
        aff_ticks=ticks,
        aff_tick_delta=tick_delta,
        aff_completion=completion,
        aff_instant_delta=tick_delta * ticks[:, None].to(f32) + completion,
        aff_required=required,
        aff_open=_opening_table(cfg),
        aff_channel=torch.tensor(channel_of, dtype=torch.long),
        channels_in_order=channel_of == list(range(len(affs))),
        **_reward_tables(cfg, idx),
        modulations=tuple(
            (idx[q.source], idx[q.target], q.base, q.offset, q.scale) for q in cfg.cascades.modulations
        ),
        cascade_stages=_cascade_stages(cfg, idx),
        walls=walls,
        free_cells=(~walls).flatten().nonzero().flatten(),
        terminal_index=terminal.nonzero().flatten(),
        **_derived_tables(cfg, layout, pad, move_delta[moves], channel_of),
        social=compile_social(cfg),
        economy=compile_economy(cfg),
    )
    return compiled.to(device)


def _columns(indices: torch.Tensor) -> slice | torch.Tensor:
    """A slice for consecutive indices: writing mask columns through one is a copy, through an
    index tensor an index_put, several times slower."""
    first = int(indices[0]) if indices.numel() else 0
    if indices.tolist() == list(range(first, first + indices.numel())):
        return slice(first, first + indices.numel())
    return indices


def _derived_tables(
    cfg: LevelConfig,
    layout: ObservationLayout,
    pad: int,
    move_deltas: torch.Tensor,
    channel_of: list[int],
) -> dict[str, torch.Tensor]:
    w, h = cfg.world.width, cfg.world.height
    wp = w + 2 * pad
    r = layout.window // 2
    dy, dx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    angle = torch.arange(HOURS_PER_DAY, dtype=torch.float32) * (2 * math.pi / HOURS_PER_DAY)
    return {
        "move_cell_offset": move_deltas[:, 1] * wp + move_deltas[:, 0],
        "position_scale": torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=torch.float32),
        "hour_features": torch.stack([angle.sin(), angle.cos()], dim=1),
        "window_offset": (dy * wp + dx).flatten(),
        # EMPTY maps to channel 0 with value 0, which leaves that all-zero cell as it is
        "code_channel": torch.tensor([len(layout.channels), 0, *channel_of], dtype=torch.long),
    }


def _reward_tables(cfg: LevelConfig, idx: dict[str, int]) -> dict[str, torch.Tensor]:
    spec = cfg.reward.reward
    if spec.kind == "weighted_sum":
        names, weights = list(spec.weights), list(spec.weights.values())
    else:
        names = list(spec.meters if spec.kind == "product" else spec.bonus_meters)
        weights = [1.0] * len(names)
    return {
        "reward_meters": torch.tensor([idx[n] for n in names], dtype=torch.long),
        "reward_weights": torch.tensor(weights, dtype=torch.float32),
    }


def _opening_table(cfg: LevelConfig) -> torch.Tensor:
    table = torch.ones(len(cfg.affordances.affordances), HOURS_PER_DAY, dtype=torch.bool)
    if not cfg.world.day_cycle:
        return table
    for a, aff in enumerate(cfg.affordances.affordances):
        if aff.hours == "always":
            continue
        open_, close = aff.hours
        for hour in range(HOURS_PER_DAY):
            table[a, hour] = open_ <= hour < close or open_ <= hour + HOURS_PER_DAY < close
    return table


def _cascade_stages(cfg: LevelConfig, idx: dict[str, int]) -> tuple[CascadeStage, ...]:
    """Split each group into runs that can be applied at once.

    Cascades only ever lower their target (strength >= 0), so applying a run together and
    clamping once equals applying it one by one with a clamp after each, as long as no cascade
    reads a source that an earlier cascade of the same run has lowered.
    """
    m = len(idx)
    stages = []
    for group in cfg.cascades.groups:
        run: list = []
        for cas in group.cascades:
            if any(prev.target == cas.source for prev in run):
                stages.append(_stage(run, idx, m))
                run = []
            run.append(cas)
        if run:
            stages.append(_stage(run, idx, m))
    return tuple(stages)


def _stage(run: list, idx: dict[str, int], m: int) -> CascadeStage:
    target = torch.zeros(len(run), m)
    for c, cas in enumerate(run):
        target[c, idx[cas.target]] = 1.0
    threshold = torch.tensor([c.threshold for c in run], dtype=torch.float32)
    strength = torch.tensor([c.strength for c in run], dtype=torch.float32)
    return CascadeStage(
        source=torch.tensor([idx[c.source] for c in run], dtype=torch.long),
        target=target,
        strength_over_threshold=strength / threshold,
        threshold=threshold,
    )
