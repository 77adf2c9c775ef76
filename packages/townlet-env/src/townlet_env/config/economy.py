"""The optional `economy.yaml` of a level pack: jobs with shifts, prices and perturbations, the
lifecycle of a town's population and the reward terms that go with them (docs/economy.md).

It builds on the social layer (a pack with economy.yaml needs a social.yaml). The style follows
config/social.py: unknown keys are errors, every number is strict, finite and bounded. Checks that
need the other files (an employer or an event target that names no affordance) are in the
loader, where the message can name the file and field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from townlet_env.config.social import RewardWeight, Unit

Ticks = Annotated[int, Field(strict=True, ge=0, le=100_000)]
Hour = Annotated[int, Field(strict=True, ge=0, le=24)]
Multiplier = Annotated[float, Field(strict=True, ge=0.0, le=2.0, allow_inf_nan=False)]
Chance = Annotated[float, Field(strict=True, ge=0.0, le=24.0, allow_inf_nan=False)]
MAX_EMPLOYERS = 8
MAX_EVENTS = 16
MAX_WINDOW = 30  # absences are a bit mask of the last shifts: a long holds far more


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(value: tuple, what: str, strict_less: bool = False) -> tuple:
    if value[0] > value[1] or (strict_less and value[0] == value[1]):
        raise ValueError(
            f"{what} {list(value)} must be [low, high] with low {'<' if strict_less else '<='} high"
        )
    return value


class Employer(_Strict):
    """An affordance that employs agents: its shift (start and end hour, every day) and the wage
    paid for each tick an employee stands on its cell during the shift."""

    place: str = Field(max_length=40, description="the affordance the employees work at")
    shift: tuple[Hour, Hour] = Field(description="[start, end) hours of the daily shift")
    wage: Unit = Field(description="money per tick on site during the shift")

    @field_validator("shift")
    @classmethod
    def _shift(cls, value: tuple[int, int]) -> tuple[int, int]:
        return _ordered(value, "shift", strict_less=True)


class JobsSpec(_Strict):
    employers: list[Employer] = Field(min_length=1, max_length=MAX_EMPLOYERS)
    grace: int = Field(
        default=1, strict=True, ge=1, le=24, description="ticks after the start that are on time"
    )
    late_penalty: Unit = Field(default=0.0, description="money docked on a late arrival")
    absence_window: int = Field(
        default=3, strict=True, ge=1, le=MAX_WINDOW, description="shifts looked back over"
    )
    absences_to_fire: int = Field(default=3, strict=True, ge=1, le=MAX_WINDOW)
    rehire_cooldown: Ticks = Field(default=48, description="ticks without a wage after a firing")

    @model_validator(mode="after")
    def _window(self) -> JobsSpec:
        if self.absences_to_fire > self.absence_window:
            raise ValueError(
                f"absences_to_fire ({self.absences_to_fire}) cannot exceed absence_window "
                f"({self.absence_window}): no one could ever be fired"
            )
        return self


EVENT_KINDS = ("price_spike", "outage", "gathering")


class EventSpec(_Strict):
    """One entry of the catalogue. Each tick inside `hours` an event that is not active, off
    cooldown and under the cap starts with probability chance_per_day / (hours in the window)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=40)
    kind: Literal["price_spike", "outage", "gathering"]
    targets: list[str] = Field(min_length=1, max_length=32, description="affordance names")
    chance_per_day: Chance
    hours: tuple[Hour, Hour] = Field(default=(0, 24), description="[from, to) hours it may start in")
    cooldown: Ticks = Field(default=0, description="ticks after it ends before it may start again")
    duration: tuple[
        Annotated[int, Field(strict=True, ge=1, le=10_000)],
        Annotated[int, Field(strict=True, ge=1, le=10_000)],
    ]
    multiplier: tuple[Multiplier, Multiplier] = Field(
        default=(1.0, 1.0), description="price (spike) or chat gain (gathering) factor, drawn in [low, high]"
    )

    @field_validator("duration", "multiplier")
    @classmethod
    def _range(cls, value: tuple) -> tuple:
        return _ordered(value, "range")

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[int, int]) -> tuple[int, int]:
        return _ordered(value, "hours", strict_less=True)


class EventsSpec(_Strict):
    max_concurrent: int = Field(default=2, strict=True, ge=1, le=MAX_EVENTS)
    catalogue: list[EventSpec] = Field(default_factory=list, max_length=MAX_EVENTS)

    @field_validator("catalogue")
    @classmethod
    def _names(cls, catalogue: list[EventSpec]) -> list[EventSpec]:
        seen: set[str] = set()
        for i, event in enumerate(catalogue):
            if event.name in seen:
                raise ValueError(f"duplicate event name '{event.name}' at catalogue[{i}]")
            seen.add(event.name)
        return catalogue


class NightlyReset(_Strict):
    """At the start of each day (hour 0): living agents go to their birth cell, stop any use,
    leave any queue, and the listed meters are clamped into [low, high]."""

    meters: dict[str, tuple[Unit, Unit]] = Field(default_factory=dict, max_length=32)

    @field_validator("meters")
    @classmethod
    def _ranges(cls, meters: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for value in meters.values():
            _ordered(value, "range")
        return meters


class LifecycleSpec(_Strict):
    population_cap: int = Field(
        default=64, strict=True, ge=1, le=64, description="living agents per town at most"
    )
    respawn_delay: Ticks = Field(default=0, description="ticks a slot stays empty before a newcomer")
    evict_broke_ticks: int = Field(default=0, strict=True, ge=0, le=100_000, description="0: never")
    evict_firings: int = Field(default=0, strict=True, ge=0, le=1000, description="0: never")
    nightly_reset: NightlyReset | None = None


class Punctuality(_Strict):
    on_time: RewardWeight = 0.0
    late: RewardWeight = Field(default=0.0, description="subtracted on a late arrival")
    absent: RewardWeight = Field(default=0.0, description="subtracted for a missed shift")


class EconomyReward(_Strict):
    """Terms that join social.yaml's (all clipped together per tick by social.yaml's clip)."""

    wage: RewardWeight | None = Field(default=None, description="x money earned as wage this tick")
    punctuality: Punctuality | None = None
    terminal: dict[str, RewardWeight] = Field(default_factory=dict, description="exit reason -> value")
    episode_clip: tuple[
        Annotated[float, Field(strict=True, ge=-1e6, le=1e6)],
        Annotated[float, Field(strict=True, ge=-1e6, le=1e6)],
    ] = (-1e6, 1e6)

    @field_validator("episode_clip")
    @classmethod
    def _clip(cls, value: tuple[float, float]) -> tuple[float, float]:
        return _ordered(value, "episode_clip", strict_less=True)

    @property
    def term_names(self) -> tuple[str, ...]:
        names = [n for n in ("wage", "punctuality") if getattr(self, n) is not None]
        return (*names, "terminal") if self.terminal else tuple(names)


class EconomyFile(_Strict):
    money: str = Field(default="money", description="the meter wages fill and prices draw")
    prices: dict[str, Multiplier] = Field(
        default_factory=dict, description="base price multiplier per affordance"
    )
    jobs: JobsSpec
    events: EventsSpec = Field(default_factory=EventsSpec)
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)
    reward: EconomyReward = Field(default_factory=EconomyReward)


def exit_reason_names(terminal_meters: list[str]) -> tuple[str, ...]:
    """Code 0 is "none" (the slot's agent did not leave this tick); then a death by each terminal
    meter (the first in pack order at 0 names it), then the two evictions."""
    return ("none", *(f"death_{m}" for m in terminal_meters), "evicted_broke", "evicted_fired")


__all__ = ["EVENT_KINDS", "EconomyFile", "exit_reason_names"]
