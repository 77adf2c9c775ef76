"""Pydantic models of a level pack: one model per YAML file.

Every model forbids unknown keys, so a misspelt setting is an error instead of a silent default.
Checks that need more than one file (a cascade naming an unknown meter, say) live in
`townlet_env.config.loader`, where the file and field can be named in the message.

Checks within one file are field validators rather than model validators wherever possible:
pydantic reports a field validator's error at that field (`meters`, `walls`, `actions[0].delta`),
while a model validator's error points at the whole model and cannot name the culprit.

Every value has one type and every float a finite range (see `StrictModel`), so a file that
validates cannot make a step produce NaN.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from townlet_env.config.messages import short

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=40)]
MeterDeltas = dict[str, Annotated[float, Field(ge=-1.0, le=1.0)]]
# A reward is a base plus at most 32 weights times a meter's distance from the centre (within
# [-1, 1]): this bound keeps every reward under about 3.3e7, finite in float32 and far beyond any
# useful scale.
REWARD_LIMIT = 1e6
RewardScale = Annotated[float, Field(ge=-REWARD_LIMIT, le=REWARD_LIMIT)]


def _list_as_tuple(value: Any) -> Any:
    # YAML has lists but no tuples, and strict validation takes only a tuple for a tuple field.
    return tuple(value) if isinstance(value, list) else value


IntPair = Annotated[tuple[int, int], BeforeValidator(_list_as_tuple)]


class StrictModel(BaseModel):
    """The base of every settings model, in packs and in training configs.

    * Unknown keys are errors, so a misspelt setting is never a silent default.
    * Strict types: a string is never read as a number (`"0.5"`) or a boolean (`"yes"`), and a
      boolean never as a number (`max_steps: true`). An int is a float (`1` for `1.0`).
    * No NaN or infinity anywhere, in lists and mappings too; each field bounds its floats.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _unique(names: list[str], what: str, field: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"duplicate {what} name '{name}' at {field}[{seen[name]}] and {field}[{i}] "
                "(names must be unique)"
            )
        seen[name] = i


# --- meters.yaml -------------------------------------------------------------------------------


class MeterSpec(StrictModel):
    name: Name
    initial: float = Field(ge=0.0, le=1.0)
    drain: float = Field(default=0.0, ge=0.0, le=1.0, description="loss per tick x difficulty")
    terminal: bool = Field(default=False, description="the agent dies when this meter is <= 0")


class MetersFile(StrictModel):
    meters: list[MeterSpec] = Field(min_length=1, max_length=32)

    @field_validator("meters")
    @classmethod
    def _names(cls, meters: list[MeterSpec]) -> list[MeterSpec]:
        _unique([m.name for m in meters], "meter", "meters")
        if not any(m.terminal for m in meters):
            raise ValueError("at least one meter must have terminal: true, or no agent could ever die")
        return meters


# --- cascades.yaml -----------------------------------------------------------------------------


class CascadeSpec(StrictModel):
    source: Name
    target: Name
    strength: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(default=0.3, gt=0.0, le=1.0)


class CascadeGroup(StrictModel):
    name: Name
    cascades: list[CascadeSpec] = Field(min_length=1)


class ModulationSpec(StrictModel):
    """`target -= base * (offset + scale * (1 - source))` every tick."""

    source: Name
    target: Name
    base: float = Field(ge=0.0, le=1.0)
    offset: float = Field(default=0.0, ge=0.0, le=100.0)
    scale: float = Field(default=1.0, ge=0.0, le=100.0)


class CascadesFile(StrictModel):
    modulations: list[ModulationSpec] = Field(default_factory=list)
    groups: list[CascadeGroup] = Field(default_factory=list)


# --- affordances.yaml --------------------------------------------------------------------------


class AffordanceSpec(StrictModel):
    name: Name
    hours: Literal["always"] | IntPair = Field(
        default="always", description="[open, close) in hours; close > 24 wraps past midnight"
    )
    ticks: int = Field(ge=1, le=100, description="duration of one full use")
    cost: MeterDeltas = Field(default_factory=dict, description="per tick; money unless named")
    effects: MeterDeltas = Field(default_factory=dict, description="per tick")
    completion: MeterDeltas = Field(default_factory=dict, description="bonus on completion")

    @field_validator("hours", mode="before")
    @classmethod
    def _hours_shape(cls, hours: Any) -> Any:
        # Without this, a bad value gets one error per union member ("hours.literal['always']",
        # "hours.tuple[int, int]"), which reads like a pydantic internal rather than a hint.
        ok = hours == "always" or (
            isinstance(hours, list | tuple) and len(hours) == 2 and all(type(h) is int for h in hours)
        )
        if not ok:
            raise ValueError(
                f"hours must be 'always' or [open, close] in whole hours, e.g. [8, 18] (got {short(hours)})"
            )
        return _list_as_tuple(hours)

    @field_validator("hours")
    @classmethod
    def _hours(cls, hours: Literal["always"] | tuple[int, int]) -> Literal["always"] | tuple[int, int]:
        if hours == "always":
            return hours
        open_, close = hours
        if not (0 <= open_ < 24 and open_ < close <= 48 and close - open_ <= 24):
            raise ValueError(
                f"{list(hours)} must be [open, close) with 0 <= open < 24, "
                "open < close <= 48 and at most 24 hours open"
            )
        return hours

    @field_validator("cost")
    @classmethod
    def _cost(cls, cost: dict[str, float]) -> dict[str, float]:
        for meter, amount in cost.items():
            if amount < 0:
                raise ValueError(f"cost of {short(meter)} is {amount}; costs are amounts paid, >= 0")
        return cost


class AffordancesFile(StrictModel):
    affordances: list[AffordanceSpec] = Field(min_length=1, max_length=64)

    @field_validator("affordances")
    @classmethod
    def _names(cls, affordances: list[AffordanceSpec]) -> list[AffordanceSpec]:
        _unique([a.name for a in affordances], "affordance", "affordances")
        return affordances


# --- world.yaml --------------------------------------------------------------------------------


class WorldFile(StrictModel):
    width: int = Field(ge=2, le=64)
    height: int = Field(ge=2, le=64)
    walls: list[IntPair] = Field(default_factory=list, description="[x, y] cells")
    max_steps: int = Field(ge=1, le=1_000_000)
    day_cycle: bool = Field(default=False, description="24-tick days; opening hours apply")
    interaction: Literal["instant", "multi_tick"] = "instant"

    @field_validator("walls")
    @classmethod
    def _walls(cls, walls: list[tuple[int, int]], info: ValidationInfo) -> list[tuple[int, int]]:
        # width and height are declared first, so they are in info.data when they were valid.
        width, height = info.data.get("width"), info.data.get("height")
        if width is None or height is None:
            return walls
        for i, (x, y) in enumerate(walls):
            if not (0 <= x < width and 0 <= y < height):
                raise ValueError(
                    f"[{x}, {y}] (walls[{i}]) is off the {width}x{height} grid "
                    f"(allowed: 0 <= x < {width}, 0 <= y < {height})"
                )
        return walls


# --- actions.yaml ------------------------------------------------------------------------------


class ActionSpec(StrictModel):
    name: Name
    kind: Literal["move", "interact", "wait", "self", "chat"] = Field(
        description="move by delta, use the affordance underfoot, do nothing, act on oneself, or talk "
        "to a neighbour (social levels only)"
    )
    # validate_default: a move action that leaves delta out must still reach the check below.
    delta: IntPair | None = Field(default=None, validate_default=True, description="[dx, dy], moves only")
    effects: MeterDeltas = Field(default_factory=dict, description="meter changes when executed")

    @field_validator("delta")
    @classmethod
    def _delta(cls, delta: tuple[int, int] | None, info: ValidationInfo) -> tuple[int, int] | None:
        kind, name = info.data.get("kind"), info.data.get("name", "?")
        if kind is None:  # the kind itself was invalid and is reported on its own
            return delta
        if kind == "move":
            if delta is None or delta == (0, 0):
                raise ValueError(f"move action '{name}' needs a non-zero delta [dx, dy], e.g. [0, -1] for up")
            if max(abs(delta[0]), abs(delta[1])) > 1:
                raise ValueError(
                    f"move action '{name}' delta {list(delta)} must be within one cell "
                    "(dx and dy in -1, 0, 1)"
                )
        elif delta is not None:
            raise ValueError(f"only move actions take a delta ('{name}' is of kind '{kind}')")
        return delta


class ActionsFile(StrictModel):
    actions: list[ActionSpec] = Field(min_length=1, max_length=32)

    @field_validator("actions")
    @classmethod
    def _kinds(cls, actions: list[ActionSpec]) -> list[ActionSpec]:
        _unique([a.name for a in actions], "action", "actions")
        kinds = [a.kind for a in actions]
        if kinds.count("wait") != 1:
            raise ValueError(
                f"exactly one action must be of kind 'wait' (the only one a dead agent has), "
                f"found {kinds.count('wait')}"
            )
        if kinds.count("interact") > 1:
            raise ValueError(f"at most one action may be of kind 'interact', found {kinds.count('interact')}")
        if kinds.count("chat") > 1:
            raise ValueError(f"at most one action may be of kind 'chat', found {kinds.count('chat')}")
        return actions


# --- reward.yaml -------------------------------------------------------------------------------


class _RewardBase(StrictModel):
    clip: Annotated[tuple[RewardScale, RewardScale], BeforeValidator(_list_as_tuple)] | None = None

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
    base: RewardScale = 0.0
    centre: float = Field(
        default=0.0, ge=0.0, le=1.0, description="the meter level worth 0 (a shift beyond it belongs in base)"
    )
    weights: dict[Name, RewardScale] = Field(min_length=1)


class ConstantPlusBonusReward(_RewardBase):
    """`base + bonus * product(bonus_meters)`: a survival reward with a shaped bonus."""

    kind: Literal["constant_plus_bonus"]
    base: RewardScale
    bonus: RewardScale = 0.0
    bonus_meters: list[Name] = Field(default_factory=list)


RewardSpec = Annotated[
    ProductReward | WeightedSumReward | ConstantPlusBonusReward, Field(discriminator="kind")
]


class RewardFile(StrictModel):
    reward: RewardSpec


# --- observation.yaml --------------------------------------------------------------------------


class ObservationFile(StrictModel):
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

    @field_validator("reserve")
    @classmethod
    def _reserve(cls, reserve: list[str], info: ValidationInfo) -> list[str]:
        encoding = info.data.get("encoding")
        if reserve and encoding is not None and encoding not in reserve:
            raise ValueError(f"reserve {short(reserve)} must include the encoding '{encoding}'")
        return reserve

    @field_validator("window")
    @classmethod
    def _window(cls, window: int) -> int:
        if window % 2 == 0:
            raise ValueError(f"must be odd (3, 5, 7, ...) so the agent sits in its centre, got {window}")
        return window

    @field_validator("affordance_channels")
    @classmethod
    def _channels(cls, channels: list[str] | None) -> list[str] | None:
        if channels is not None:
            _unique(channels, "affordance channel", "affordance_channels")
        return channels

    @property
    def views(self) -> list[str]:
        return list(self.reserve) if self.reserve else [self.encoding]


PACK_FILES: dict[str, type[StrictModel]] = {
    "meters.yaml": MetersFile,
    "cascades.yaml": CascadesFile,
    "affordances.yaml": AffordancesFile,
    "world.yaml": WorldFile,
    "actions.yaml": ActionsFile,
    "reward.yaml": RewardFile,
    "observation.yaml": ObservationFile,
}
