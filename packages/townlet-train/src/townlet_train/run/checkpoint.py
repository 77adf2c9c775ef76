"""Checkpoints: written atomically, verified by SHA-256, loaded without running pickled code.

File layout: `<name>.pt` holds the payload saved by `torch.save`; `<name>.pt.sha256` holds its
digest. Loading checks the digest, then `torch.load(weights_only=True)`, then the format
version, the level hash, the network shape and that the learned tensors are finite, and
reports any problem in one message.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or belongs to another level, network or format."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_temp(path: Path, write: Any) -> Path:
    """Write into a hidden temporary file next to `path` (flushed and synced); return it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _atomic_write(path: Path, write: Any) -> None:
    tmp = _write_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _step_of(path: Path) -> tuple[int, float, str]:
    """Sort key: the agent-step in `step_<N>.pt`, then the modification time, then the name."""
    stem = path.name.removesuffix(".pt")
    number = stem.removeprefix("step_")
    step = int(number) if stem.startswith("step_") and number.isdigit() else -1
    return step, path.stat().st_mtime, path.name


def save_checkpoint(payload: dict[str, Any], directory: Path, name: str, keep: int) -> Path:
    """Write `directory/name.pt` and its digest atomically; prune to the newest `keep`.

    The payload goes to a temporary file first; its digest file is written next, and only then
    is the payload renamed into place, so a `.pt` never appears without its digest and an
    interrupted save leaves the previous checkpoints as they were.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    payload = {"format_version": FORMAT_VERSION, **payload}
    tmp = _write_temp(path, lambda f: torch.save(payload, f))
    try:
        digest = _digest(tmp)
        _atomic_write(_sidecar(path), lambda f: f.write(f"{digest}  {path.name}\n".encode()))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for old in sorted(directory.glob("step_*.pt"), key=_step_of)[:-keep]:
        if old != path:
            old.unlink(missing_ok=True)
            _sidecar(old).unlink(missing_ok=True)
    return path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint in `directory` (highest step), or None."""
    candidates = checkpoints_newest_first(directory)
    return candidates[0] if candidates else None


def resolve_checkpoint(path: Path, option: str = "--checkpoint") -> Path:
    """What a user means by a checkpoint: a file as given; a run directory's newest checkpoint;
    RUN_DIR/best, the run's checkpoints/best.pt. CheckpointError (one line naming `option`) when
    the directory holds none."""
    if path.is_dir():
        newest = latest_checkpoint(path / "checkpoints")
        if newest is None:
            raise CheckpointError(f"{option} {path}: a directory without checkpoints/*.pt")
        return newest
    if not path.exists() and path.name == "best" and path.parent.is_dir():
        best = path.parent / "checkpoints" / "best.pt"
        if not best.is_file():
            raise CheckpointError(f"{option} {path}: no {best} (set evaluation.every_steps to keep one)")
        return best
    return path


def checkpoints_newest_first(directory: Path) -> list[Path]:
    """Every `*.pt` in `directory`, highest step first; whether they verify is for the caller."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.pt"), key=_step_of, reverse=True)


def set_aside(path: Path) -> Path:
    """Rename a checkpoint that does not verify (and its digest) to `<name>.unverified`: kept for
    inspection, but no longer counted by pruning nor offered to `--resume` or `eval`."""
    target = path.with_name(path.name + ".unverified")
    if _sidecar(path).exists():
        os.replace(_sidecar(path), _sidecar(target))
    os.replace(path, target)
    return target


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files of saves that a SIGKILL or power cut interrupted. Only call this
    while holding the run directory's lock: another trainer's save in progress looks the same."""
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


# Counters are checked like the env state: a file anyone can edit and re-sign must not wipe the
# metrics (agent_steps -1), loop for ever (update_debt inf) or never learn (NaN).
MAX_COUNT = 2**53  # beyond this a float64 metric or a step count stops being exact
INTEGRAL = ("counters", "updates", "t", "size", "cursor", "recent_survival")
SKIP = ("config",)  # the recorded config is validated by its own schema (see resume)


def _leaves(tree: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every leaf of a nested dict/list; `skip` names top-level keys."""
    if isinstance(tree, dict):
        items: Any = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        yield prefix.rstrip("."), tree
        return
    for key, value in items:
        if prefix or key not in skip:
            yield from _leaves(value, f"{prefix}{key}.")


def _numbers(tree: Any) -> list[tuple[str, Any]]:
    """(dotted name, value) of every plain Python number in a nested dict/list (not tensors)."""
    return [
        (name, value)
        for name, value in _leaves(tree, skip=SKIP)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


def counter_problem(payload: dict[str, Any]) -> str | None:
    """The first counter whose value no run could have written, as 'field: why', or None."""
    for name, value in _numbers(payload):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} is {value}, expected a finite number"
        if value < 0 or value > MAX_COUNT:
            return f"{name} is {value}, expected 0..{MAX_COUNT}"
        if name.split(".")[0] in INTEGRAL and not isinstance(value, int):
            return f"{name} is {value!r}, expected a whole number"
    counters = payload.get("counters")
    if counters is not None and not isinstance(counters, dict):
        return f"counters is {type(counters).__name__}, expected a mapping"
    counters = counters or {}
    named = [(f"counters.{k}", v) for k, v in counters.items()]
    named += [(k, payload.get(k)) for k in ("updates", "t", "size", "cursor") if k in payload]
    for name, value in named:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} is {repr(value)[:20]}, expected a whole number"
    debt = payload.get("update_debt", 0.0)
    if isinstance(debt, bool) or not isinstance(debt, (int, float)) or not 0 <= debt < 1:
        return f"update_debt is {debt!r}, expected a number in [0, 1) (the fraction of an update owed)"
    steps = counters.get("agent_steps", 0)
    if counters.get("episodes", 0) > steps:
        return f"counters.episodes is {counters['episodes']}, more than the {steps} agent-steps run"
    config: dict[str, Any] = payload["config"] if isinstance(payload.get("config"), dict) else {}
    env: dict[str, Any] = config["env"] if isinstance(config.get("env"), dict) else {}
    total, envs = config.get("total_steps"), env.get("num_envs")
    if isinstance(total, int) and isinstance(envs, int) and steps > total + envs:
        return f"counters.agent_steps is {steps}, beyond total_steps {total} (+ {envs}, one env step)"
    return None


# The parts of a checkpoint that learning writes; a NaN or inf in any of them means the run had
# diverged, and resuming from it trains on garbage (the loss turns NaN, evaluation looks normal).
LEARNED_PARTS = ("network", "target_network", "optimizer", "rnd")


def non_finite_tensors(tree: Any) -> list[str]:
    """Dotted names of the floating-point tensors in a nested dict/list that hold NaN or inf."""
    return [
        name
        for name, value in _leaves(tree)
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]


def load_checkpoint(
    path: Path, *, level_hash: str | None = None, network_shapes: dict[str, tuple] | None = None
) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise CheckpointError(
            f"{path}: missing its digest file {sidecar.name}; refusing an unverified checkpoint"
        )
    recorded = sidecar.read_text(errors="replace").split()
    expected = recorded[0] if recorded else ""
    actual = _digest(path)
    if actual != expected:
        raise CheckpointError(
            f"{path}: SHA-256 mismatch (file {actual[:12]}..., recorded {expected[:12]}...): "
            "the checkpoint is corrupt or was modified"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable files
        first = (str(exc).strip().splitlines() or [""])[0]  # torch's messages run to pages
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        got = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: format version {got!r}, this trainer reads version {FORMAT_VERSION}")
    problem = counter_problem(payload)
    if problem is not None:
        raise CheckpointError(f"{path}: field {problem}; refusing a checkpoint no run could have written")
    if level_hash is not None and payload.get("level_hash") != level_hash:
        saved_hash = str(payload.get("level_hash"))[:12]
        raise CheckpointError(
            f"{path}: trained on level '{payload.get('level')}' (hash {saved_hash}), "
            f"not on this level (hash {level_hash[:12]})"
        )
    if not isinstance(payload.get("network"), dict):
        raise CheckpointError(f"{path}: holds no network weights")
    if network_shapes is not None:
        saved = {k: tuple(v.shape) for k, v in payload["network"].items()}
        if saved != network_shapes:
            keys = sorted(set(saved) | set(network_shapes))
            diff = [
                f"{k}: checkpoint {saved.get(k, 'absent')}, config {network_shapes.get(k, 'absent')}"
                for k in keys
                if saved.get(k) != network_shapes.get(k)
            ]
            raise CheckpointError(
                f"{path}: network shape differs from this config "
                f"({len(diff)} tensors; first: {'; '.join(diff[:3])})"
            )
    bad = non_finite_tensors({part: payload.get(part) for part in LEARNED_PARTS})
    if bad:
        names = ", ".join(bad[:3])
        raise CheckpointError(
            f"{path}: {len(bad)} learned tensors hold NaN or inf (first: {names}): "
            "training had diverged before this save"
        )
    return payload
