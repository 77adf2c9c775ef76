"""The search space of a sweep: a YAML file mapping config keys to a range or a list of choices.

    algorithm.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # floats (log-uniform)
    env.num_envs: {low: 16, high: 64, step: 16}             # ints, when low and high are ints
    network.hidden: {choices: [[64, 64], [256, 256]]}       # any values of the key

Read strictly, like a training config: a key that is not a field of the base config, an unknown
or missing setting, `low > high`, or a bound or choice that the field itself refuses (its type
or range) is one `error:` line naming the file and the key. What only a combination can break
(the config's cross-field checks, e.g. a DAgger capacity below its learning_starts) is found
per trial: that trial is recorded as failed, with the reason, and the sweep goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from townlet_env.config import ConfigError, StrictModel
from townlet_env.config.bounded_yaml import read_yaml
from townlet_env.config.messages import describe_validation_error, short
from townlet_train.config import TrainConfig, load_config

MAX_PARAMS = 64


class Spec(StrictModel):
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(default=None, gt=0)
    choices: list[Any] | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_kind(self) -> Spec:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.step is not None:
                raise ValueError("give either choices or low/high (with log or step), not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices (a list)")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log needs low > 0 and no step")
        return self

    @property
    def integer(self) -> bool:
        return all(type(v) is int for v in (self.low, self.high)) and type(self.step) in (int, type(None))


@dataclass(frozen=True)
class Param:
    key: str  # dotted config key, e.g. algorithm.lr
    spec: Spec

    def distribution(self) -> Any:
        import optuna

        s = self.spec
        if s.choices is not None:  # Optuna's choices are scalars: each value travels as JSON
            return optuna.distributions.CategoricalDistribution([json.dumps(c) for c in s.choices])
        if s.integer:
            return optuna.distributions.IntDistribution(int(s.low), int(s.high), log=s.log, step=s.step or 1)  # type: ignore[arg-type]
        return optuna.distributions.FloatDistribution(float(s.low), float(s.high), log=s.log, step=s.step)  # type: ignore[arg-type]

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.spec.choices is not None else value


def load_space(path: Path, base: TrainConfig) -> list[Param]:
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of config keys (algorithm.lr: {{low: .., high: ..}})")
    if len(data) > MAX_PARAMS:
        raise ConfigError(f"{path}: {len(data)} keys; at most {MAX_PARAMS}")
    params = []
    for key, raw in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}: key {short(key)}: expected a dotted config key such as algorithm.lr")
        parent, leaf = _field(path, key, base)
        try:
            spec = Spec.model_validate(raw)
        except ValidationError as exc:
            first = describe_validation_error(Path(f"{path}: {key}"), Spec, exc).splitlines()[0]
            raise ConfigError(first) from None
        values = spec.choices if spec.choices is not None else [spec.low, spec.high]
        for value in values:
            _check_value(path, key, parent, leaf, value)
        params.append(Param(key, spec))
    return params


def _field(path: Path, key: str, base: TrainConfig) -> tuple[BaseModel, str]:
    """The model holding the key's field in the base config, and the field's name."""
    node: Any = base
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = type(node).model_fields if isinstance(node, BaseModel) else {}
        if part not in fields:
            where = ".".join(parts[:depth]) or "the config"
            allowed = ", ".join(fields) or "none (not a section)"
            raise ConfigError(f"{path}: {key}: {where} has no field '{part}' (allowed: {allowed})")
        if depth == len(parts) - 1:
            if key in ("level", "algorithm.kind", "seed"):
                raise ConfigError(f"{path}: {key}: cannot be swept (the seeds are --seeds)")
            return node, part
        node = getattr(node, part)
    raise AssertionError(key)


def _check_value(path: Path, key: str, parent: BaseModel, leaf: str, value: Any) -> None:
    """The field's own checks (type and range) on one value; the config's cross-field checks
    wait for the trial's whole set of values."""
    try:
        type(parent).model_validate({**parent.model_dump(), leaf: value})
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ConfigError(f"{path}: {key}: {short(value)} is refused by the config: {reason}") from None


def trial_config(base_path: Path | None, params: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The base config with a trial's values (a ConfigError if the combination is refused)."""
    values = {key.replace(".", "__"): value for key, value in params.items()}
    return load_config(base_path, **overrides, **values)
