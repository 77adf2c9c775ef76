"""The observation layout: which field sits where in the flat observation vector.

Networks and tools slice observations by field name (`layout["meters"]`), never by magic
offsets. Levels that reserve the same views with the same channels get the same layout, so a
network trained on L1 reads L2 and L3 observations unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from townlet_env.config import LevelConfig


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    shape: tuple[int, ...]
    doc: str

    @property
    def slice(self) -> slice:
        return slice(self.offset, self.offset + self.size)


@dataclass(frozen=True)
class ObservationLayout:
    fields: tuple[Field, ...]
    size: int
    encoding: str  # the view this level fills: "full" or "partial"
    window: int
    channels: tuple[str, ...]  # affordance identities, in channel order
    other_agents: int

    def __getitem__(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"no observation field '{name}' (fields: {', '.join(self.names)})")

    def __contains__(self, name: object) -> bool:
        return any(field.name == name for field in self.fields)

    @property
    def names(self) -> list[str]:
        return [field.name for field in self.fields]


JOB_COLUMNS = (
    "employed",
    "shift_now",
    "on_site",
    "on_time",
    "late",
    "absences",
    "until_shift",
    "rehire_wait",
    "broke",
)


def economy_fields(cfg: LevelConfig, n_ch: int) -> list[tuple[str, tuple[int, ...], str]]:
    assert cfg.economy is not None
    spec = cfg.economy
    return [
        ("employer", (len(spec.jobs.employers),), "one-hot of the agent's employer (economy.yaml order)"),
        (
            "job",
            (len(JOB_COLUMNS),),
            "employed, in shift hours, on site, arrived on time, late, "
            "absences / absences_to_fire, hours until the shift starts / 24, rehire wait / cooldown, "
            "ticks broke / evict_broke_ticks",
        ),
        (
            "events",
            (len(spec.events.catalogue), 2),
            "per catalogue event: active, ticks left / longest duration",
        ),
        ("prices", (n_ch,), "price multiplier - 1 per channel's affordance, clipped to [-1, 1]"),
        ("closed", (n_ch,), "1 where an outage closes the channel's affordance"),
    ]


def build_layout(cfg: LevelConfig) -> ObservationLayout:
    obs = cfg.observation
    channels = tuple(obs.affordance_channels or [a.name for a in cfg.affordances.affordances])
    n_ch = len(channels)
    specs: list[tuple[str, tuple[int, ...], str]] = [
        ("meters", (len(cfg.meter_names),), "meter values in [0, 1], pack order"),
        ("time", (2,), "sin, cos of the hour on a 24-tick day; 0, 0 without a day cycle"),
        ("interaction_progress", (1,), "ticks done / ticks of the current multi-tick use"),
        ("episode_progress", (1,), "town steps since regeneration / max_steps"),
        ("position", (2,), "own x / (width - 1), y / (height - 1)"),
        # Seen in the offsets too (dx = dy = 0), but a network learns "INTERACT here" far more
        # easily from a one-hot than from an exact zero among 14 offsets.
        ("underfoot", (n_ch,), "one-hot channel of the affordance under the agent; 0 on an empty cell"),
    ]
    if "full" in obs.views:
        # Rows dx, dy, present, one column per channel: each row is written as one contiguous
        # run, which costs a third of interleaved (dx, dy, present) triples at thousands of slots.
        specs.append(("affordances", (3, n_ch), "rows dx, dy (normalised), present; a column per channel"))
        if obs.other_agents:
            specs.append(("agents", (3, obs.other_agents), "rows dx, dy, present; a column per other agent"))
    if "partial" in obs.views:
        w = obs.window
        specs.append(
            (
                "window",
                (w, w, n_ch + 2),
                "egocentric cells (row-major, y then x): affordance one-hot, blocked, other agent",
            )
        )
    if cfg.social is not None:
        specs += [
            ("personality", (3,), "own traits: extroversion, forgiveness, ambition"),
            ("queue", (2,), "1 when queued, then 1 / (1 + queued agents served before it)"),
            (
                "nearest",
                (cfg.social.observation.nearest, 8),
                "per nearest other agent: dx, dy, alive, busy, queued, own trust, familiarity, rivalry",
            ),
        ]
    if cfg.economy is not None:
        specs += economy_fields(cfg, n_ch)
    fields = []
    offset = 0
    for name, shape, doc in specs:
        size = 1
        for dim in shape:
            size *= dim
        fields.append(Field(name, offset, size, shape, doc))
        offset += size
    return ObservationLayout(
        fields=tuple(fields),
        size=offset,
        encoding=obs.encoding,
        window=obs.window if "partial" in obs.views else 1,
        channels=channels,
        other_agents=obs.other_agents if "full" in obs.views else 0,
    )
