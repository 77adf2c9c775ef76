"""The compiled tables of an economy level (docs/economy.md): what `compile_economy` reads once
from economy.yaml, in the shapes the tick gathers from (per employer and hour, per event, per
absence bit mask), and the column and code constants of the economy's state."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from townlet_env.config import LevelConfig
from townlet_env.config.economy import EVENT_KINDS, EconomyFile, exit_reason_names

HOURS_PER_DAY = 24
# columns of `TownState.work` (long): the employment and lifecycle facts of each slot
EMPLOYER, SHIFT, ABSENCES, REHIRE_AT, FIRINGS, BROKE, VACANT, HOME_X, HOME_Y = range(9)
WORK_COLUMNS = 9
WAITING, ON_TIME, LATE = 0, 1, 2  # SHIFT: not arrived at this shift yet, arrived on time, late
END, READY = 0, 1  # `TownState.event_clock[..., i]`: tick an event ends at, tick it may start again
SPIKE, OUTAGE, GATHERING = range(3)
POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.long)


@dataclass(frozen=True)
class EconomyTables:
    """What the economy's rules need, compiled once from economy.yaml."""

    spec: EconomyFile
    money: int  # meter index
    place: torch.Tensor  # [J] long, the affordance of each employer
    shift_start: torch.Tensor  # [J] long hour
    shift_end: torch.Tensor  # [J] long hour (exclusive)
    wage: torch.Tensor  # [J] float32 per tick
    # per employer and hour, at employer * 24 + hour: one gather each instead of comparisons
    in_shift: torch.Tensor  # [J * 24] bool
    on_time_hour: torch.Tensor  # [J * 24] bool: in the shift's grace period
    last_hour: torch.Tensor  # [J * 24] bool: the shift's last tick
    until_start: torch.Tensor  # [J * 24] float32: hours until the next start / 24
    base_price: torch.Tensor  # [A] float32
    cost: torch.Tensor  # [A, M] float32, the per-tick cost that prices multiply
    event_names: tuple[str, ...]
    event_kind: torch.Tensor  # [E] long: SPIKE, OUTAGE or GATHERING
    event_target: torch.Tensor  # [E, A] bool
    event_chance: torch.Tensor  # [E] float32, chance to start per tick inside its hours
    event_hours: torch.Tensor  # [E, 24] bool, may start at this hour
    event_cooldown: torch.Tensor  # [E] long
    duration_low: torch.Tensor  # [E] long
    duration_span: torch.Tensor  # [E] long, high - low + 1
    value_low: torch.Tensor  # [E] float32
    value_span: torch.Tensor  # [E] float32
    by_kind: tuple[tuple[tuple[int, torch.Tensor], ...], ...]  # per kind: (event, its [A] targets)
    exit_reasons: tuple[str, ...]
    terminal_index: torch.Tensor  # [terminal meters] long, in pack order (death reasons 1..)
    terminal_penalty: torch.Tensor  # [R] float32 per exit reason (0 for "none")
    reset_low: torch.Tensor  # [M] float32, the nightly clamp (0 where unlisted)
    reset_high: torch.Tensor  # [M] float32 (1 where unlisted)
    # fused forms of the above, so that a tick reads each in one gather
    hour_flags: torch.Tensor  # [J * 24, 3] bool: in_shift, on_time_hour, last_hour
    job_hours: torch.Tensor  # [J * 24, 2] float32: in_shift as a float, until_start
    spikes: tuple[int, ...]  # the events of each kind, in catalogue order
    outages: tuple[int, ...]
    gatherings: tuple[int, ...]
    # per absence bit mask (None for windows over 12 shifts): fired at the end of a shift, and
    # the observation's share of the absences that fire
    chance_by_hour: torch.Tensor  # [24, E] float32: event_chance, -1 outside its hours
    duration_top: torch.Tensor  # [E] long: duration_span - 1
    is_outage: torch.Tensor  # [E] bool
    fires: torch.Tensor | None  # [2^window] bool
    absence_share: torch.Tensor | None  # [2^window] float32
    absence_count: torch.Tensor | None  # [2^window] long
    # the punctuality term for nothing, on time, late and absent (computed as a tick would)
    punctuality: torch.Tensor  # [4] float32

    @property
    def n_events(self) -> int:
        return len(self.event_names)


def compile_economy(cfg: LevelConfig) -> EconomyTables | None:
    spec = cfg.economy
    if spec is None:
        return None
    names = [a.name for a in cfg.affordances.affordances]
    meters = cfg.meter_names
    f32 = torch.float32
    cost = torch.zeros(len(names), len(meters))
    for a, aff in enumerate(cfg.affordances.affordances):
        for meter, amount in aff.cost.items():
            cost[a, meters.index(meter)] += amount
    events = spec.events.catalogue
    target = torch.zeros(len(events), len(names), dtype=torch.bool)
    hours = torch.zeros(len(events), HOURS_PER_DAY, dtype=torch.bool)
    for e, event in enumerate(events):
        for t in event.targets:
            target[e, names.index(t)] = True
        hours[e, event.hours[0] : event.hours[1]] = True
    terminal = [m.name for m in cfg.meters.meters if m.terminal]
    reasons = exit_reason_names(terminal)
    low, high = torch.zeros(len(meters)), torch.ones(len(meters))
    if spec.lifecycle.nightly_reset is not None:
        for meter, (lo, hi) in spec.lifecycle.nightly_reset.meters.items():
            low[meters.index(meter)], high[meters.index(meter)] = lo, hi
    jobs = spec.jobs.employers
    hour = torch.arange(HOURS_PER_DAY)
    start = torch.tensor([j.shift[0] for j in jobs])[:, None]
    end = torch.tensor([j.shift[1] for j in jobs])[:, None]
    in_shift = ((hour >= start) & (hour < end)).flatten()
    on_time_hour = ((hour >= start) & (hour - start < spec.jobs.grace) & (hour < end)).flatten()
    last_hour = (hour == end - 1).flatten()
    until_start = (((start - hour) % HOURS_PER_DAY).to(f32) / HOURS_PER_DAY).flatten()
    kinds = [EVENT_KINDS.index(e.kind) for e in events]
    chance = torch.tensor([e.chance_per_day / (e.hours[1] - e.hours[0]) for e in events], dtype=f32)
    duration_span = torch.tensor([e.duration[1] - e.duration[0] + 1 for e in events], dtype=torch.long)
    window = spec.jobs.absence_window
    masks = popcount(torch.arange(1 << min(window, 12)), window)
    return EconomyTables(
        spec=spec,
        money=meters.index(spec.money),
        place=torch.tensor([names.index(j.place) for j in jobs], dtype=torch.long),
        shift_start=torch.tensor([j.shift[0] for j in jobs], dtype=torch.long),
        shift_end=torch.tensor([j.shift[1] for j in jobs], dtype=torch.long),
        wage=torch.tensor([j.wage for j in jobs], dtype=f32),
        in_shift=in_shift,
        on_time_hour=on_time_hour,
        last_hour=last_hour,
        until_start=until_start,
        base_price=torch.tensor([spec.prices.get(n, 1.0) for n in names], dtype=f32),
        cost=cost,
        event_names=tuple(e.name for e in events),
        event_kind=torch.tensor([EVENT_KINDS.index(e.kind) for e in events], dtype=torch.long),
        event_target=target,
        event_chance=chance,
        event_hours=hours,
        event_cooldown=torch.tensor([e.cooldown for e in events], dtype=torch.long),
        duration_low=torch.tensor([e.duration[0] for e in events], dtype=torch.long),
        duration_span=duration_span,
        value_low=torch.tensor([e.multiplier[0] for e in events], dtype=f32),
        value_span=torch.tensor([e.multiplier[1] - e.multiplier[0] for e in events], dtype=f32),
        by_kind=tuple(
            tuple((e, target[e]) for e, event in enumerate(events) if event.kind == kind)
            for kind in EVENT_KINDS
        ),
        exit_reasons=reasons,
        terminal_index=torch.tensor([meters.index(m) for m in terminal], dtype=torch.long),
        terminal_penalty=torch.tensor([spec.reward.terminal.get(r, 0.0) for r in reasons], dtype=f32),
        reset_low=low,
        reset_high=high,
        hour_flags=torch.stack((in_shift, on_time_hour, last_hour), dim=1),
        job_hours=torch.stack((in_shift.float(), until_start), dim=1),
        chance_by_hour=torch.where(hours, chance[:, None], -1.0).t().contiguous(),
        duration_top=duration_span - 1,
        is_outage=torch.tensor([k == OUTAGE for k in kinds], dtype=torch.bool),
        spikes=tuple(e for e, k in enumerate(kinds) if k == SPIKE),
        outages=tuple(e for e, k in enumerate(kinds) if k == OUTAGE),
        gatherings=tuple(e for e, k in enumerate(kinds) if k == GATHERING),
        fires=masks >= spec.jobs.absences_to_fire if window <= 12 else None,
        absence_share=masks.float() / spec.jobs.absences_to_fire if window <= 12 else None,
        absence_count=masks if window <= 12 else None,
        punctuality=_punctuality_values(spec),
    )


def _punctuality_values(spec: EconomyFile) -> torch.Tensor:
    """[4] the punctuality term with no arrival or absence, on time, late and absent: the same
    float32 operations as on the flags of one slot, so each value is what a tick computed."""
    p = spec.reward.punctuality
    if p is None:
        return torch.zeros(4)
    on_time, late, absent = torch.eye(4)[1:]
    return p.on_time * on_time - p.late * late - p.absent * absent


def popcount(bits: torch.Tensor, width: int = 32) -> torch.Tensor:
    """[N] set bits of non-negative longs below 2^width (byte by byte through a table)."""
    table = POPCOUNT.to(bits.device)
    total = table.take(bits & 255)
    for byte in range(1, (width + 7) // 8):
        total = total + table.take((bits >> (8 * byte)) & 255)
    return total
