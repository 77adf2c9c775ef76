"""Pydantic models of a level pack: one model per YAML file.

Every model forbids unknown keys, so a misspelt setting is an error instead of a silent default.
Checks that need more than one file (a cascade naming an unknown meter, say) live in
`townlet_env.config.loader`, where the file and field can be named in the message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=40)]
MeterDeltas = dict[str, Annotated[float, Field(ge=-1.0, le=1.0)]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} name '{name}'")
        seen.add(name)


# --- meters.yaml -------------------------------------------------------------------------------


class MeterSpec(Strict):
    name: Name
    initial: float = Field(ge=0.0, le=1.0)
    drain: float = Field(default=0.0, ge=0.0, le=1.0, description="loss per tick x difficulty")
    terminal: bool = Field(default=False, description="the agent dies when this meter is <= 0")


class MetersFile(Strict):
    meters: list[MeterSpec] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _names(self) -> MetersFile:
        _unique([m.name for m in self.meters], "meter")
        if not any(m.terminal for m in self.meters):
            raise ValueError("at least one meter must be terminal, or no agent could ever die")
        return self


# --- cascades.yaml -----------------------------------------------------------------------------


class CascadeSpec(Strict):
    source: Name
    target: Name
    strength: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(default=0.3, gt=0.0, le=1.0)


class CascadeGroup(Strict):
    name: Name
    cascades: list[CascadeSpec] = Field(min_length=1)


class ModulationSpec(Strict):
    """`target -= base * (offset + scale * (1 - source))` every tick."""

    source: Name
    target: Name
    base: float = Field(ge=0.0, le=1.0)
    offset: float = Field(default=0.0, ge=0.0, le=100.0)
    scale: float = Field(default=1.0, ge=0.0, le=100.0)


class CascadesFile(Strict):
    modulations: list[ModulationSpec] = Field(default_factory=list)
    groups: list[CascadeGroup] = Field(default_factory=list)


# --- affordances.yaml --------------------------------------------------------------------------


class AffordanceSpec(Strict):
    name: Name
    hours: Literal["always"] | tuple[int, int] = Field(
        default="always", description="[open, close) in hours; close > 24 wraps past midnight"
    )
    ticks: int = Field(ge=1, le=100, description="duration of one full use")
    cost: MeterDeltas = Field(default_factory=dict, description="per tick; money unless named")
    effects: MeterDeltas = Field(default_factory=dict, description="per tick")
    completion: MeterDeltas = Field(default_factory=dict, description="bonus on completion")

    @field_validator("hours")
    @classmethod
    def _hours(cls, hours: Literal["always"] | tuple[int, int]) -> Literal["always"] | tuple[int, int]:
        if hours == "always":
            return hours
        open_, close = hours
        if not (0 <= open_ < 24 and open_ < close <= 48 and close - open_ <= 24):
            raise ValueError(
                f"hours {list(hours)} must be [open, close) with 0 <= open < 24, "
                "open < close <= 48 and at most 24 hours open"
            )
        return hours

    @field_validator("cost")
    @classmethod
    def _cost(cls, cost: dict[str, float]) -> dict[str, float]:
        for meter, amount in cost.items():
            if amount < 0:
                raise ValueError(f"cost of '{meter}' is {amount}; costs are amounts paid, >= 0")
        return cost


class AffordancesFile(Strict):
    affordances: list[AffordanceSpec] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _names(self) -> AffordancesFile:
        _unique([a.name for a in self.affordances], "affordance")
        return self


# --- world.yaml --------------------------------------------------------------------------------


class WorldFile(Strict):
    width: int = Field(ge=2, le=64)
    height: int = Field(ge=2, le=64)
    walls: list[tuple[int, int]] = Field(default_factory=list, description="[x, y] cells")
    max_steps: int = Field(ge=1, le=1_000_000)
    day_cycle: bool = Field(default=False, description="24-tick days; opening hours apply")
    interaction: Literal["instant", "multi_tick"] = "instant"

    @model_validator(mode="after")
    def _walls(self) -> WorldFile:
        for i, (x, y) in enumerate(self.walls):
            if not (0 <= x < self.width and 0 <= y < self.height):
                raise ValueError(
                    f"walls[{i}] = [{x}, {y}] is off the {self.width}x{self.height} grid"
                )
        return self


# --- actions.yaml ------------------------------------------------------------------------------


class ActionSpec(Strict):
    name: Name
    kind: Literal["move", "interact", "wait", "self"] = Field(
        description="move by delta, use the affordance underfoot, do nothing, or act on oneself"
    )
    delta: tuple[int, int] | None = Field(default=None, description="[dx, dy], moves only")
    effects: MeterDeltas = Field(default_factory=dict, description="meter changes when executed")

    @model_validator(mode="after")
    def _delta(self) -> ActionSpec:
        if self.kind == "move":
            if self.delta is None or self.delta == (0, 0):
                raise ValueError(f"move action '{self.name}' needs a non-zero delta [dx, dy]")
            if max(abs(self.delta[0]), abs(self.delta[1])) > 1:
                raise ValueError(f"move action '{self.name}' delta must be within one cell")
        elif self.delta is not None:
            raise ValueError(f"only move actions take a delta ('{self.name}' is {self.kind})")
        return self


class ActionsFile(Strict):
    actions: list[ActionSpec] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _kinds(self) -> ActionsFile:
        _unique([a.name for a in self.actions], "action")
        kinds = [a.kind for a in self.actions]
        if kinds.count("wait") != 1:
            raise ValueError("exactly one action must be of kind 'wait' (the only one a dead agent has)")
        if kinds.count("interact") > 1:
            raise ValueError("at most one action may be of kind 'interact'")
        return self


# --- reward.yaml -------------------------------------------------------------------------------


class _RewardBase(Strict):
    clip: tuple[float, float] | None = None

    @field_validator("clip")
    @classmethod
    def _clip(cls, clip: tuple[float, float] | None) -> tuple[float, float] | None:
        if clip is not None and clip[0] >= clip[1]:
            raise ValueError(f"clip {list(clip)} must be [low, high] with low < high")
        return clip


class ProductReward(_RewardBase):
    """Product of the named meters, e.g. energy x health."""

    kind: Literal["product"]
    meters: list[Name] = Field(min_length=1)


class WeightedSumReward(_RewardBase):
    """`base + sum(weight_m * (meter_m - centre))`."""

    kind: Literal["weighted_sum"]
    base: float = 0.0
    centre: float = 0.0
    weights: dict[Name, float] = Field(min_length=1)


class ConstantPlusBonusReward(_RewardBase):
    """`base + bonus * product(bonus_meters)`: a survival reward with a shaped bonus."""

    kind: Literal["constant_plus_bonus"]
    base: float
    bonus: float = 0.0
    bonus_meters: list[Name] = Field(default_factory=list)


RewardSpec = Annotated[
    ProductReward | WeightedSumReward | ConstantPlusBonusReward, Field(discriminator="kind")
]


class RewardFile(Strict):
    reward: RewardSpec


# --- observation.yaml --------------------------------------------------------------------------


class ObservationFile(Strict):
    encoding: Literal["full", "partial"]
    reserve: list[Literal["full", "partial"]] = Field(
        default_factory=list,
        description="views that keep a place in the layout, so levels of a family share it",
    )
    window: int = Field(default=5, ge=1, le=15, description="side of the partial window (odd)")
    other_agents: int = Field(default=0, ge=0, le=16, description="others' offsets in full view")
    affordance_channels: list[Name] | None = Field(
        default=None, description="affordance identities in layout order (default: the level's)"
    )

    @model_validator(mode="after")
    def _check(self) -> ObservationFile:
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd, got {self.window}")
        if self.reserve and self.encoding not in self.reserve:
            raise ValueError(f"reserve {self.reserve} must include the encoding '{self.encoding}'")
        if self.affordance_channels is not None:
            _unique(self.affordance_channels, "affordance channel")
        return self

    @property
    def views(self) -> list[str]:
        return list(self.reserve) if self.reserve else [self.encoding]


PACK_FILES: dict[str, type[Strict]] = {
    "meters.yaml": MetersFile,
    "cascades.yaml": CascadesFile,
    "affordances.yaml": AffordancesFile,
    "world.yaml": WorldFile,
    "actions.yaml": ActionsFile,
    "reward.yaml": RewardFile,
    "observation.yaml": ObservationFile,
}
