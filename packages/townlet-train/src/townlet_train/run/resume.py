"""Resuming a run from the newest checkpoint that verifies and fits it.

Candidates are tried newest first. Each must pass every check of `load_checkpoint` (digest,
loadable without pickled code, format version, level hash, network shapes, finite learned
tensors), have been trained with the run's config.yaml (apart from the settings a resume may
change), and load into the trainer. The ones that fail are set aside (renamed `*.unverified`)
so that a stray or corrupt file never blocks a resume nor shadows the run's own checkpoints
again; the caller reports them. If none passes, one error says why each failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from townlet_train.config import TrainConfig
from townlet_train.run.checkpoint import CheckpointError, checkpoints_newest_first, load_checkpoint, set_aside
from townlet_train.run.loop import Trainer

# How long to train, on what, and how often to save and log: nothing the training state
# depends on. The level is compared by content hash instead, so a moved pack still resumes.
MAY_CHANGE = frozenset({"total_steps", "device", "checkpoint", "metrics", "level"})


@dataclass
class Resumed:
    trainer: Trainer
    path: Path
    skipped: list[str] = field(default_factory=list)  # "name: why (set aside as name.unverified)"


def resume(cfg: TrainConfig, run_dir: Path, make_trainer: Callable[[], Trainer]) -> Resumed:
    directory = run_dir / "checkpoints"
    candidates = checkpoints_newest_first(directory)
    if not candidates:
        raise CheckpointError(
            f"{directory}: no checkpoint to resume from (the run stopped before its first save, "
            f"at most checkpoint.every_seconds in); start afresh in another --run-dir or remove {run_dir}"
        )
    failures: list[tuple[Path, str]] = []
    trainer: Trainer | None = None
    for path in candidates:
        trainer = trainer or make_trainer()
        try:
            payload = _verified(path, trainer, cfg)
        except CheckpointError as exc:
            failures.append((path, _reason(exc, path)))
            continue
        try:
            trainer.load_state_dict(payload)
        except Exception as exc:  # whatever the file holds that the trainer cannot take
            failures.append((path, _reason(exc, path)))
            trainer = None  # it may be half loaded: the next candidate gets a fresh one
            continue
        skipped = [f"{p.name}: {why} (set aside as {set_aside(p).name})" for p, why in failures]
        return Resumed(trainer, path, skipped)
    listing = "; ".join(f"{p.name}: {why}" for p, why in failures)
    raise CheckpointError(f"{directory}: no checkpoint can be resumed ({listing})")


def _verified(path: Path, trainer: Trainer, cfg: TrainConfig) -> dict[str, Any]:
    shapes = {k: tuple(v.shape) for k, v in trainer.learner.online.state_dict().items()}
    payload = load_checkpoint(path, level_hash=trainer.env.level.content_hash, network_shapes=shapes)
    changes = config_changes(payload.get("config"), cfg)
    if changes:
        raise CheckpointError(
            f"{path}: the run's config.yaml differs from the config it was trained with "
            f"({'; '.join(changes[:3])}); a resume may change only total_steps, device and the "
            "checkpoint and metrics settings"
        )
    return payload


def config_changes(recorded: Any, cfg: TrainConfig) -> list[str]:
    """'env.num_envs: 32, trained with 16' for each setting that differs and that training
    state depends on."""
    try:
        trained = TrainConfig.model_validate(recorded)
    except ValidationError:
        return ["the config recorded in the checkpoint is not valid for this trainer"]
    old = dict(_flatten(_resolved(trained)))
    new = dict(_flatten(_resolved(cfg)))
    return [
        f"{key}: {new.get(key)!r}, trained with {old.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if key.split(".")[0] not in MAY_CHANGE and old.get(key) != new.get(key)
    ]


def _resolved(cfg: TrainConfig) -> dict[str, Any]:
    """The config's settings with the window a recurrent memory learns from resolved: a config
    that leaves it to the algorithm's default (None) and one that names that default (as the
    older layout's `replay` section always did) trained the same way."""
    dump = cfg.model_dump(mode="json")
    dump["network"]["sequence_length"], dump["network"]["burn_in"] = cfg.window()
    return dump


def _flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), tree


def _reason(exc: Exception, path: Path) -> str:
    if isinstance(exc, CheckpointError):
        return str(exc).removeprefix(f"{path}: ")
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"does not load into this run ({type(exc).__name__}: {first})"
