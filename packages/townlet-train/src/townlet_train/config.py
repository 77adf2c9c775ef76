"""Training configuration: strict pydantic models, loaded from YAML.

Like the env's level packs, and through the same `StrictModel` and YAML reader: every model
forbids unknown keys, takes each value in one type only, bounds every float to a finite range,
and every error names the file, the field and what is allowed. The built-in configs (one per
level) ship inside the package.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from townlet_env.config import ConfigError, StrictModel
from townlet_env.config.bounded_yaml import read_yaml_mapping
from townlet_env.config.messages import describe_validation_error, short
from townlet_train.config_layout import LayoutError, migrate

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class EnvSettings(StrictModel):
    num_envs: int = Field(default=256, ge=1, le=1 << 20, description="agent slots stepped together")
    agents_per_town: int = Field(default=1, ge=1, le=64)


class NetworkSettings(StrictModel):
    kind: Literal["mlp", "dueling", "lstm", "map"] = Field(
        default="dueling", description="map: DAgger's student with a map, for partial views"
    )
    hidden: list[Annotated[int, Field(ge=1, le=8192)]] = Field(default_factory=lambda: [256, 256])
    field_embed: int = Field(default=64, ge=1, le=4096, description="width of each field encoder")
    lstm_hidden: int = Field(default=128, ge=1, le=4096)
    sequence_length: int | None = Field(
        default=None,
        ge=1,
        le=512,
        description="lstm: learned steps per stored window (default: dqn 16, dagger 32)",
    )
    burn_in: int | None = Field(
        default=None, ge=0, le=512, description="lstm: steps of each window that only warm the memory (8)"
    )


class HardTarget(StrictModel):
    kind: Literal["hard"] = "hard"
    every: int = Field(
        default=500, ge=1, le=1 << 40, description="gradient updates between copies (at most 2**40)"
    )


class PolyakTarget(StrictModel):
    kind: Literal["polyak"]
    tau: float = Field(default=0.005, gt=0.0, le=1.0)


class ReplaySettings(StrictModel):
    """DQN's replay; a recurrent memory (network.kind lstm) replays whole windows uniformly."""

    kind: Literal["uniform", "prioritized"] = "uniform"
    capacity: int = Field(default=200_000, ge=1, description="transitions kept")
    alpha: float = Field(default=0.6, ge=0.0, le=1.0, description="prioritized: priority exponent")
    beta_start: float = Field(default=0.4, ge=0.0, le=1.0, description="prioritized: IS exponent")
    beta_steps: int = Field(default=1_000_000, ge=1, description="agent-steps to anneal beta to 1")


class EpsilonSettings(StrictModel):
    start: float = Field(default=1.0, ge=0.0, le=1.0)
    end: float = Field(default=0.05, ge=0.0, le=1.0)
    decay_steps: int = Field(default=500_000, ge=1, description="agent-steps of linear decay")
    spread: float = Field(
        default=0.0,
        ge=0.0,
        le=64.0,
        description="per-slot ends (Ape-X): slot i of N decays to end ** (1 + spread * i / (N - 1)); "
        "0 gives every slot `end`",
    )


class DQNSettings(StrictModel):
    """DQN (the default: a config without `algorithm.kind` is a DQN config)."""

    kind: Literal["dqn"] = "dqn"
    gamma: float = Field(default=0.99, gt=0.0, lt=1.0)
    n_step: int = Field(default=3, ge=1, le=64)
    double: bool = True
    loss: Literal["huber", "mse"] = "huber"
    lr: float = Field(default=5e-4, gt=0.0, le=1.0)
    grad_clip: float = Field(default=10.0, gt=0.0, le=1e6, description="largest gradient norm")
    batch_size: int = Field(default=256, ge=1, le=1 << 16)
    replay_ratio: float = Field(
        default=0.25, gt=0.0, le=64.0, description="sampled transitions per collected transition"
    )
    learning_starts: int = Field(default=10_000, ge=0, description="agent-steps before learning")
    target: Annotated[HardTarget | PolyakTarget, Field(discriminator="kind")] = Field(
        default_factory=HardTarget
    )
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    epsilon: EpsilonSettings = Field(default_factory=EpsilonSettings)

    @field_validator("target", mode="before")
    @classmethod
    def _default_target_kind(cls, value: Any) -> Any:
        # `target: {every: 1000}` means a hard target, as the default does; without this the
        # discriminated union rejected it with "kind: required field missing".
        if isinstance(value, dict) and "kind" not in value:
            return {"kind": "hard", **value}
        return value


class PPOSettings(StrictModel):
    """PPO (Schulman et al. 2017) on the vector env; see ppo.py."""

    kind: Literal["ppo"]
    gamma: float = Field(default=0.99, gt=0.0, lt=1.0)
    gae_lambda: float = Field(default=0.95, ge=0.0, le=1.0)
    rollout_steps: int = Field(default=128, ge=1, le=1 << 16, description="env steps per rollout")
    epochs: int = Field(default=4, ge=1, le=1000)
    minibatch_size: int = Field(default=8192, ge=1, le=1 << 24, description="samples per minibatch")
    lr: float = Field(default=3e-4, gt=0.0, le=1.0)
    anneal_lr: bool = True
    clip: float = Field(default=0.2, gt=0.0, le=10.0)
    clip_value: bool = True
    value_coef: float = Field(default=0.5, ge=0.0, le=1000.0)
    entropy_start: float = Field(default=0.01, ge=0.0, le=100.0)
    entropy_end: float = Field(default=0.001, ge=0.0, le=100.0)
    grad_clip: float = Field(default=0.5, gt=0.0, le=1e6, description="largest gradient norm")
    init_from: str | None = Field(default=None, description="a bc/dagger/ppo checkpoint to start from")
    critic_warmup: int = Field(
        default=0, ge=0, le=1 << 20, description="first iterations that train only the critic"
    )
    actor_lr_scale: float = Field(default=1.0, gt=0.0, le=1.0, description="actor lr / critic lr")
    kl_start: float = Field(
        default=0.0, ge=0.0, le=1000.0, description="weight of KL(teacher || policy) at the start"
    )
    kl_steps: int = Field(default=1_000_000, ge=1, description="agent-steps to anneal the KL weight to 0")


class DaggerSettings(StrictModel):
    """DAgger (Ross et al. 2011) with the scripted policy as the (privileged) teacher."""

    kind: Literal["dagger"]
    beta_start: float = Field(default=1.0, ge=0.0, le=1.0, description="P(execute the teacher's action)")
    beta_end: float = Field(default=0.0, ge=0.0, le=1.0)
    beta_steps: int = Field(default=500_000, ge=1, description="agent-steps of linear decay")
    capacity: int = Field(default=200_000, ge=1, description="labelled states kept (a ring)")
    lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    anneal_lr: bool = Field(default=False, description="decay the learning rate linearly to 0 at total_steps")
    grad_clip: float = Field(default=10.0, gt=0.0, le=1e6)
    batch_size: int = Field(default=1024, ge=1, le=1 << 20)
    updates_per_step: float = Field(
        default=0.25, gt=0.0, le=64.0, description="gradient updates per env step"
    )
    learning_starts: int = Field(default=2048, ge=0, description="labelled states before learning")
    recall_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1000.0,
        description="network.kind lstm: weight of the auxiliary loss of saying where each affordance is",
    )
    teacher_knows: Literal["town", "student_map"] = Field(
        default="town",
        description="town: the teacher reads the whole town; student_map (network.kind map): it "
        "chooses among the affordances on the student's map and explores when that falls short",
    )


class BCSettings(StrictModel):
    """Behaviour cloning from a captured dataset (`townlet-train bc`)."""

    kind: Literal["bc"]
    dataset: str = ""
    updates: int = Field(default=5000, ge=1)
    lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    batch_size: int = Field(default=1024, ge=1, le=1 << 20)
    grad_clip: float = Field(default=10.0, gt=0.0, le=1e6)


AlgorithmSettings = DQNSettings  # its older name

Algorithm = Annotated[DQNSettings | PPOSettings | DaggerSettings | BCSettings, Field(discriminator="kind")]


class RndSettings(StrictModel):
    enabled: bool = False
    weight_start: float = Field(default=0.1, ge=0.0, le=1000.0)
    weight_end: float = Field(default=0.0, ge=0.0, le=1000.0)
    anneal_steps: int = Field(default=1_000_000, ge=1)
    embed: int = Field(default=64, ge=1, le=4096)
    lr: float = Field(default=1e-4, gt=0.0, le=1.0)


class ExplorationSettings(StrictModel):
    rnd: RndSettings = Field(default_factory=RndSettings)


class CurriculumSettings(StrictModel):
    kind: Literal["adversarial", "static"] = "adversarial"
    stages: list[Annotated[float, Field(ge=0.0, le=10.0)]] = Field(
        default_factory=lambda: [0.2, 0.5, 0.8, 1.0, 1.0], min_length=1
    )
    window: int = Field(default=10, ge=1, le=10_000, description="recent episodes judged")
    min_episodes: int = Field(default=10, ge=1, description="episodes between two stage moves")
    advance_survival: float = Field(default=0.7, ge=0.0, le=1.0)
    advance_entropy: float = Field(default=0.5, ge=0.0, le=100.0)
    retreat_survival: float = Field(default=0.3, ge=0.0, le=1.0)
    difficulty: float = Field(default=1.0, ge=0.0, le=10.0, description="static: the multiplier")


class CheckpointSettings(StrictModel):
    """A save comes at whichever of the three limits is reached first; `every_seconds` bounds what
    a crash can lose on any level and device, the other two put saves at reproducible points."""

    every_episodes: int = Field(default=2000, ge=1, description="finished episodes between saves")
    every_steps: int = Field(default=500_000, ge=1, description="agent-steps between saves")
    every_seconds: float = Field(
        default=120.0, gt=0.0, le=86_400.0, description="wall-clock seconds since the last save"
    )
    keep: int = Field(default=3, ge=1, description="most recent checkpoints kept")
    include_replay: bool = False


class EvaluationSettings(StrictModel):
    """Every `every_steps` agent-steps, a greedy evaluation at full difficulty on fixed towns (the
    same seed each time); the best so far is kept as checkpoints/best.pt. 0 turns it off."""

    every_steps: int = Field(default=0, ge=0, description="agent-steps between evaluations; 0: never")
    episodes: int = Field(default=32, ge=1, le=1 << 16, description="episodes, played side by side")
    seed: int = Field(default=12345, ge=0, lt=1 << 63, description="the towns' seed")


class MetricsSettings(StrictModel):
    tensorboard: bool = True
    log_every_updates: int = Field(default=50, ge=1)
    progress: bool = True


class TrainConfig(StrictModel):
    level: str = "L1_full_observability"
    seed: int = Field(default=0, ge=-(1 << 63), lt=1 << 63, description="a 64-bit int, as torch takes")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    total_steps: int = Field(default=2_000_000, ge=1, description="agent-steps, all slots together")
    env: EnvSettings = Field(default_factory=EnvSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    algorithm: Algorithm = Field(default_factory=DQNSettings)
    exploration: ExplorationSettings = Field(default_factory=ExplorationSettings)
    curriculum: CurriculumSettings = Field(default_factory=CurriculumSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @model_validator(mode="before")
    @classmethod
    def _older_layout(cls, data: Any) -> Any:
        # checkpoints and run directories written before the sections moved (config_layout.py)
        return migrate(data)[0] if isinstance(data, dict) else data

    @field_validator("algorithm", mode="before")
    @classmethod
    def _default_algorithm_kind(cls, value: Any) -> Any:
        # configs and checkpoints written before PPO and DAgger existed have no kind: DQN
        if isinstance(value, dict) and "kind" not in value:
            return {"kind": "dqn", **value}
        return value

    @property
    def dqn(self) -> DQNSettings:
        """The DQN settings; only the DQN learner asks, and only of a DQN config."""
        if not isinstance(self.algorithm, DQNSettings):
            raise ValueError(f"algorithm.kind is '{self.algorithm.kind}', not 'dqn'")
        return self.algorithm

    def window(self) -> tuple[int, int]:
        """(sequence_length, burn_in) of the windows a recurrent memory learns from."""
        length = self.network.sequence_length or (32 if self.algorithm.kind == "dagger" else 16)
        return length, 8 if self.network.burn_in is None else self.network.burn_in

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        recurrent = self.network.kind == "lstm"
        if self.algorithm.kind == "bc" and recurrent:
            raise ValueError("algorithm.kind 'bc' has no recurrent network (use mlp, or dagger with lstm)")
        if self.network.kind == "map" and self.algorithm.kind != "dagger":
            raise ValueError(
                f"network.kind 'map' is a DAgger student (algorithm.kind dagger), not "
                f"{self.algorithm.kind}; for {self.algorithm.kind} use mlp, dueling or lstm"
            )
        if self.exploration.rnd.enabled and self.algorithm.kind not in ("dqn", "ppo"):
            raise ValueError(
                f"exploration.rnd adds a bonus to the reward, which {self.algorithm.kind} does not "
                "learn from: it is for algorithm.kind dqn and ppo"
            )
        teacher = getattr(self.algorithm, "teacher_knows", "town")
        if teacher == "student_map" and self.network.kind != "map":
            raise ValueError(
                f"algorithm.teacher_knows 'student_map' needs network.kind 'map', not '{self.network.kind}'"
            )
        # network.kind lstm already says that DQN replays windows
        dqn = self.algorithm if isinstance(self.algorithm, DQNSettings) else None
        if dqn is not None and recurrent and dqn.replay.kind == "prioritized":
            raise ValueError(
                "algorithm.replay.kind 'prioritized' is for feed-forward networks: network.kind 'lstm' "
                "replays whole windows uniformly (algorithm.replay.kind uniform, the default)"
            )
        if dqn is not None and recurrent and self.window()[0] < 2:
            raise ValueError("network.sequence_length must be at least 2 for DQN's windows")
        # a learning_starts beyond total_steps is a run not meant to learn (a test, a look at the
        # student's acting); within it, a capacity that can never reach it fails silently
        if (
            isinstance(self.algorithm, DaggerSettings)
            and self.algorithm.capacity < self.algorithm.learning_starts <= self.total_steps
        ):
            raise ValueError(
                f"algorithm.capacity {self.algorithm.capacity} is below algorithm.learning_starts "
                f"{self.algorithm.learning_starts}: the labelled states kept could never reach it, so the "
                "student would never learn"
            )
        if dqn is not None and dqn.replay.capacity < dqn.batch_size:
            raise ValueError(
                f"algorithm.replay.capacity {dqn.replay.capacity} is below algorithm.batch_size "
                f"{dqn.batch_size}: the replay could never fill a batch, so nothing is learned"
            )
        if self.env.num_envs % self.env.agents_per_town:
            raise ValueError("env.num_envs must be a multiple of env.agents_per_town")
        if self.curriculum.retreat_survival >= self.curriculum.advance_survival:
            raise ValueError("curriculum.retreat_survival must be below advance_survival")
        return self


def builtin_config(level: str) -> Path | None:
    if Path(level).name != level or level in ("", ".", ".."):
        return None  # a pack directory, not a built-in level name (and never an absolute join)
    path = CONFIG_DIR / f"{level}.yaml"
    return path if path.is_file() else None


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a YAML config (or the built-in one for `overrides['level']`), then apply overrides.

    Overrides use dotted keys flattened with '__' ('env__num_envs=64') or top-level names.
    """
    data: dict[str, Any] = {}
    source = Path(path) if path is not None else None
    if source is None and overrides.get("level"):
        source = builtin_config(str(overrides["level"]))
    if source is not None:
        if not source.is_file():
            raise ConfigError(f"{source}: no such training config file")
        data = read_yaml_mapping(source, TrainConfig.model_fields)
    applied = []
    for key, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = key.split("__")
        for depth, parent in enumerate(parents):
            child = node.setdefault(parent, {})
            if child is None:  # `env:` left empty in the YAML
                child = node[parent] = {}
            if not isinstance(child, dict):
                where = ".".join(parents[: depth + 1])
                raise ConfigError(
                    f"{source or '<settings>'}: {where}: expected a mapping, got {short(child)}"
                )
            node = child
        node[leaf] = value
        if not (key == "level" and path is None):  # not when it only picked the built-in file
            applied.append(key.replace("__", "."))
    label = str(source) if source is not None else "<settings>"
    if applied:  # a bad value may come from the command line, not from the file
        label += f" (with overrides: {', '.join(applied)})"
    try:
        data, notes = migrate(data)
    except LayoutError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    if notes:  # one line: the file still works, and says how to write it today
        print(f"notice: {label}: older layout read as the new one ({'; '.join(notes)})", file=sys.stderr)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(Path(label), TrainConfig, exc)) from None
