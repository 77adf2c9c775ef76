"""What a `Town` tells about its current state besides the observation: the per-slot facts its
`info` carries, a `TownView` copy of a few towns for observers and recorders, and the economy
entries of a tick's output.

Pure functions of a level and a state. A social level's queue positions come from the `Pairs`
the Town keeps for its current state, so the caller passes them in: they are computed once per
state, whoever asks first.
"""

from __future__ import annotations

from typing import Any

import torch

from townlet_env.core import economy
from townlet_env.core.level import CompiledLevel
from townlet_env.core.observe import affordance_at, hour_of_day
from townlet_env.core.outputs import TownView
from townlet_env.core.state import TownState


def slot_info(
    level: CompiledLevel, state: TownState, queue_position: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Per-slot facts of `state`, by their info names. These are the state's own tensors: copy
    them before writing into them."""
    hour = hour_of_day(state) if level.day_cycle else torch.zeros_like(state.life_steps)
    return {
        "meters": state.meters,
        "position": state.position,
        "time_of_day": hour,
        "interaction_progress": state.progress,
        "episode_step": state.life_steps,
        **social_info(level, state, queue_position),
        **economy_info(level, state),
    }


def social_info(
    level: CompiledLevel, state: TownState, queue_position: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """On a social level, each slot's ties toward every slot of its town, in slot order, and
    its place in a queue (-1: not queued). Empty on other levels."""
    if level.social is None:
        return {}
    assert queue_position is not None, "a social level's queue positions"
    return {
        "trust": state.trust,
        "familiarity": state.familiarity,
        "rivalry": state.rivalry,
        "personality": state.personality,
        "queue_position": queue_position,
    }


def economy_info(level: CompiledLevel, state: TownState) -> dict[str, torch.Tensor]:
    """On an economy level, the events active in each slot's town ([N, E] bool, named by
    `event_names`), its employer, whether it is employed, its shift status (0 not arrived,
    1 on time, 2 late), absences in the window and firings. Empty on other levels."""
    tables = level.economy
    if tables is None:
        return {}
    work = state.work
    active = state.clock[:, None] < state.event_clock[..., economy.END]
    return {
        "events": state.per_slot(active),
        "employer": work[:, economy.EMPLOYER],
        "employed": economy.employed(state),
        "shift_status": work[:, economy.SHIFT],
        "absences": economy.absences(tables, work[:, economy.ABSENCES]),
        "firings": work[:, economy.FIRINGS],
    }


def town_view(
    level: CompiledLevel, state: TownState, index: torch.Tensor, queue_position: torch.Tensor | None
) -> TownView:
    """A copy of towns `index` ([V] long, checked) of `state`."""
    k = state.agents_per_town
    slots = state.slots_of(index)

    def per_slot(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.index_select(0, slots).view(index.numel(), k, *tensor.shape[1:])

    clock = state.clock.index_select(0, index)
    extra: dict[str, torch.Tensor] = {}
    if level.social is not None:
        assert queue_position is not None, "a social level's queue positions"
        extra.update(
            trust=per_slot(state.trust),
            familiarity=per_slot(state.familiarity),
            rivalry=per_slot(state.rivalry),
            queue_key=per_slot(state.queue_key),
            queue_position=per_slot(queue_position),
        )
    if level.economy is not None:
        window = level.economy.spec.jobs.absence_window
        end = state.event_clock.index_select(0, index)[..., economy.END]
        extra.update(
            employer=per_slot(state.work[:, economy.EMPLOYER]),
            shift_status=per_slot(state.work[:, economy.SHIFT]),
            employed=per_slot(economy.employed(state)),
            absences=per_slot(economy.popcount(state.work[:, economy.ABSENCES], window)),
            firings=per_slot(state.work[:, economy.FIRINGS]),
            absent_last=per_slot((state.work[:, economy.ABSENCES] & 1).bool()),
            events=clock[:, None] < end,
            event_left=(end - clock[:, None]).clamp(min=0),
            event_value=state.event_value.index_select(0, index),
        )
    return TownView(
        towns=index.clone(),
        clock=clock,
        hour=clock % 24 if level.day_cycle else torch.zeros_like(clock),
        affordance_position=state.affordance_position.index_select(0, index),
        position=per_slot(state.position),
        meters=per_slot(state.meters),
        alive=per_slot(state.alive),
        progress=per_slot(state.progress),
        life_steps=per_slot(state.life_steps),
        affordance=per_slot(affordance_at(level, state)),
        **extra,
    )


def economy_outputs(result: Any) -> dict[str, torch.Tensor]:
    """The economy entries of a tick's output (empty on other levels)."""
    if result.exit_reason is None or result.shift is None:
        return {}
    job = result.shift
    return {
        "exit_reason": result.exit_reason,
        "wage": job.wage,
        "arrived_on_time": job.on_time,
        "arrived_late": job.late,
        "absent": job.absent,
        "fired": job.fired,
    }
