"""The perturbation scheduler of an economy level (docs/economy.md#events), and the admin's
trigger and cancel.

Each town keeps, per event of the pack's catalogue, the tick it ends at, the tick it may start
again and its drawn value (`TownState.event_clock`, `event_value`); an event is active while the
town's clock is below its end, so its effect ends exactly when it does. After every tick, `Town`
draws three uniforms per town and event from its generator (`draw`) and `schedule` starts the
events they pick: a fixed number of draws per tick, so a seed fixes the whole schedule.
"""

from __future__ import annotations

import torch

from townlet_env.core.economy import END, HOURS_PER_DAY, READY, EconomyTables, any_of
from townlet_env.core.level import CompiledLevel
from townlet_env.core.observe import affordance_at
from townlet_env.core.state import TownState


def draw(tables: EconomyTables, num_towns: int, generator: torch.Generator) -> torch.Tensor:
    """[T, E, 3] uniforms: start, duration, value."""
    return torch.rand(num_towns, tables.n_events, 3, generator=generator, device=tables.wage.device)


def schedule(level: CompiledLevel, state: TownState, u: torch.Tensor) -> TownState:
    """Start the events the uniforms `u` pick, at the state's clock (the tick just begun).

    An event may start when it is not active, its cooldown is over, the hour is inside its
    window and `u[..., 0]` is below its chance per tick; then, in catalogue order, as many as
    the cap on concurrent events allows. Its duration is drawn in [low, high] from `u[..., 1]`,
    its multiplier in [low, high] from `u[..., 2]`.
    """
    tables = level.economy
    assert tables is not None
    if tables.n_events == 0:
        return state
    clock = state.clock[:, None]  # [T, 1]
    end, ready = state.event_clock[..., END], state.event_clock[..., READY]
    active = clock < end
    # the chance per hour is -1 outside an event's hours, where no uniform in [0, 1) is below it
    chance = tables.chance_by_hour.index_select(0, state.clock % HOURS_PER_DAY)  # [T, E]
    wants = ~active & (clock >= ready) & (u[..., 0] < chance)
    room = tables.spec.events.max_concurrent - active.sum(dim=1, keepdim=True)
    starts = wants & (wants.cumsum(dim=1) <= room)
    duration = tables.duration_low + (u[..., 1] * tables.duration_span).long().clamp(max=tables.duration_top)
    value = tables.value_low + u[..., 2] * tables.value_span
    return start(level, state, starts, duration, value)


def start(
    level: CompiledLevel, state: TownState, starts: torch.Tensor, duration: torch.Tensor, value: torch.Tensor
) -> TownState:
    """Start the events marked in `starts` [T, E] for `duration` ticks with `value`; an outage
    releases every agent on a closed affordance: its use stops and its queue is dropped."""
    tables = level.economy
    assert tables is not None
    end = state.clock[:, None] + duration
    started = torch.stack((end, end + tables.event_cooldown), dim=2)  # END, READY
    event_clock = torch.where(starts[..., None], started, state.event_clock)
    state = state.replace(event_clock=event_clock, event_value=torch.where(starts, value, state.event_value))
    closing = starts & tables.is_outage
    if bool(closing.any()):
        state = release(level, state, closing)
    return state


def release(level: CompiledLevel, state: TownState, closing: torch.Tensor) -> TownState:
    tables = level.economy
    assert tables is not None
    shut = any_of(closing[:, :, None] & tables.event_target, tables.outages)  # [T, A]
    aff = affordance_at(level, state)
    flat = state.town * shut.shape[1] + aff.clamp(min=0)
    hit = (aff >= 0) & shut.reshape(-1).index_select(0, flat)
    return state.replace(
        progress=torch.where(hit, 0, state.progress),
        queue_key=torch.where(hit, -1, state.queue_key),
        stall=torch.where(hit, 0, state.stall),
    )


def trigger(
    level: CompiledLevel, state: TownState, town: int, event: int, duration: int, value: float
) -> TownState:
    """Start one event now in one town (the admin's command), whatever its chance and cooldown."""
    starts = torch.zeros_like(state.event_value, dtype=torch.bool)
    starts[town, event] = True
    shape = state.event_value.shape
    dur = torch.full(shape, int(duration), dtype=torch.long, device=starts.device)
    val = torch.full(shape, float(value), dtype=torch.float32, device=starts.device)
    return start(level, state, starts, dur, val)


def cancel(state: TownState, town: int, event: int) -> TownState:
    """End one event now in one town; its cooldown still runs from now."""
    event_clock = state.event_clock.clone()
    now = state.clock[town]
    if bool(event_clock[town, event, END] > now):
        left = event_clock[town, event, READY] - event_clock[town, event, END]
        event_clock[town, event, END] = now
        event_clock[town, event, READY] = now + left
    return state.replace(event_clock=event_clock)


def named(level: CompiledLevel, num_towns: int, town: int, name: str) -> int:
    """The catalogue index of event `name` for an admin's command on `town`; a refusal says
    what is allowed."""
    if level.economy is None:
        raise ValueError(f"level '{level.name}' has no events (no economy.yaml)")
    names = level.economy.event_names
    if name not in names:
        raise ValueError(f"unknown event {name!r} (events: {', '.join(names)})")
    if not 0 <= int(town) < num_towns:
        raise ValueError(f"town {town} is not in [0, {num_towns})")
    return names.index(name)


def trigger_values(
    level: CompiledLevel, event: int, duration: int | None, value: float | None
) -> tuple[int, float]:
    """The duration and value of a triggered event, checked: by default its longest duration
    and its highest multiplier."""
    assert level.economy is not None
    spec = level.economy.spec.events.catalogue[event]
    duration = spec.duration[1] if duration is None else int(duration)
    value = spec.multiplier[1] if value is None else float(value)
    if not 1 <= duration <= 10_000 or not 0.0 <= value <= 2.0:
        raise ValueError(f"duration must be in [1, 10000] and value in [0, 2], got {duration}, {value}")
    return duration, value
