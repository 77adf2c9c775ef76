"""The optional `social.yaml` of a level pack: relationships, chat, queues, personalities and the
reward as a sum of named terms (docs/social.md).

A pack without the file is not social, and its content hash does not change: the loader only
adds this file to the hashed payload when it is present. The style follows schema.py: unknown
keys are errors, every float is finite, bounded and strict (a string or a bool is not a number).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _float(low: float, high: float) -> object:
    return Field(strict=True, ge=low, le=high, allow_inf_nan=False)


Unit = Annotated[float, _float(0.0, 1.0)]
Gain = Annotated[float, _float(0.0, 10.0)]
RewardWeight = Annotated[float, _float(-10.0, 10.0)]
Count = Annotated[int, Field(strict=True, ge=1, le=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Decay(_Strict):
    """Per tick, each tie moves this much toward its neutral value 0 (and stops there)."""

    trust: Unit = 0.0
    familiarity: Unit = 0.0
    rivalry: Unit = 0.0


class RelationshipsSpec(_Strict):
    decay: Decay = Field(default_factory=Decay)


class ChatSpec(_Strict):
    avoid_rivalry: Unit = Field(default=0.7, description="the partner refuses above this rivalry")
    social_gain: Unit = Field(default=0.1, description="social meter of both on success")
    trust_gain: Unit = 0.05
    familiarity_gain: Unit = 0.1
    rivalry_on_failure: Unit = Field(default=0.05, description="speaker's rivalry toward the partner")
    familiarity_loss: Unit = Field(default=0.05, description="speaker's familiarity toward the partner")


class QueueSpec(_Strict):
    ghost_ticks: Count = Field(default=3, description="a holder that stalls this long goes to the back")
    rivalry_stalled: Unit = Field(default=0.1, description="each waiting agent toward a ghosted holder")
    rivalry_overtaken: Unit = Field(default=0.05, description="a ghosted holder toward the new head")
    handover_trust: Unit = Field(default=0.05, description="both ways, occupant and head, on completion")


TraitRange = tuple[Unit, Unit]


class PersonalitySpec(_Strict):
    """Traits are drawn uniformly in [low, high] at birth; the factors say what they scale."""

    extroversion: TraitRange = (0.0, 1.0)
    forgiveness: TraitRange = (0.0, 1.0)
    ambition: TraitRange = (0.0, 1.0)
    social_drain: Unit = Field(default=0.0, description="extra social drain per tick x extroversion")
    chat_gain: Gain = Field(default=0.0, description="chat gains x (1 + chat_gain x extroversion)")
    forgiveness_softening: Unit = Field(default=0.0, description="losses x (1 - this x forgiveness)")
    ambition_rivalry: Gain = Field(default=0.0, description="rivalry growth x (1 + this x ambition)")

    @field_validator("extroversion", "forgiveness", "ambition")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"{list(value)} must be [low, high] with low <= high")
        return value


class ChatReward(_Strict):
    """Per successful chat an agent takes part in: base + trust x t + familiarity x f, with t and f
    its ties toward the other before the chat."""

    base: RewardWeight = 0.0
    trust: RewardWeight = 0.0
    familiarity: RewardWeight = 0.0


class SocialReward(_Strict):
    """The reward is the sum of the terms present, clipped per tick. Absent terms are not summed
    and not reported."""

    needs: RewardWeight | None = Field(default=None, description="weight of reward.yaml's formula")
    survival: RewardWeight | None = Field(default=None, description="per tick alive")
    chat: ChatReward | None = None
    clip: tuple[RewardWeight, RewardWeight] = (-1.0, 1.0)

    @field_validator("clip")
    @classmethod
    def _clip(cls, clip: tuple[float, float]) -> tuple[float, float]:
        if clip[0] >= clip[1]:
            raise ValueError(f"clip {list(clip)} must be [low, high] with low < high")
        return clip

    @property
    def term_names(self) -> tuple[str, ...]:
        return tuple(name for name in ("needs", "survival", "chat") if getattr(self, name) is not None)


class SocialObservation(_Strict):
    nearest: int = Field(default=5, strict=True, ge=1, le=16, description="nearest agents seen")


class SocialFile(_Strict):
    population: int = Field(strict=True, ge=2, le=64, description="default agents per town")
    meter: str = Field(default="social", description="the meter that chat fills and extroversion drains")
    relationships: RelationshipsSpec = Field(default_factory=RelationshipsSpec)
    chat: ChatSpec = Field(default_factory=ChatSpec)
    queue: QueueSpec = Field(default_factory=QueueSpec)
    personality: PersonalitySpec = Field(default_factory=PersonalitySpec)
    reward: SocialReward = Field(default_factory=lambda: SocialReward(needs=1.0))
    observation: SocialObservation = Field(default_factory=SocialObservation)

    @field_validator("reward")
    @classmethod
    def _terms(cls, reward: SocialReward) -> SocialReward:
        if not reward.term_names:
            raise ValueError("the reward needs at least one term (needs, survival or chat)")
        return reward


TRAITS = ("extroversion", "forgiveness", "ambition")
