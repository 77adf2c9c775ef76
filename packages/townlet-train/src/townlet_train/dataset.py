"""Datasets of played steps: captured from a policy, verified before anyone learns from them.

A dataset directory holds shards `shard_00000.npz` (numpy arrays only: loading never unpickles)
of `obs` [T, D] float32, `mask` [T, A] bool, `action` [T] int64, `reward` [T] float32 and
`done` [T] bool (the step ended its episode, terminated or truncated), and `manifest.json`:
the level and its content hash, the observation layout and actions, the policy, seed and
slots, the counts, and the SHA-256 of every shard. Loading checks all of it, so that a shard
changed or missing, or a dataset of another level (or another version of it), is refused with
one message instead of silently training on the wrong data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_env import TownletVectorEnv
from townlet_env.core import compile_level
from townlet_env.files import Archive, ArchiveError, read_regular_file
from townlet_env.policies import Policy, RandomPolicy, ScriptedAgent

FORMAT = 1
FIELDS = ("obs", "mask", "action", "reward", "done")
CAPTURE_POLICIES = ("scripted", "random")


class DatasetError(ValueError):
    """A dataset is missing, changed, or belongs to another level."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layout(env: TownletVectorEnv) -> list[list[Any]]:
    return [[name, offset, size] for name, offset, size in env.observation_layout]


def capture(
    level: str,
    policy: str,
    agent_steps: int,
    out: Path,
    seed: int = 0,
    num_envs: int = 64,
    shard_steps: int = 256,
) -> dict[str, Any]:
    """Play `policy` for at least `agent_steps` agent-steps (whole env steps of `num_envs` slots)
    and write the dataset into `out` (which must not hold one already); return its manifest."""
    if policy not in CAPTURE_POLICIES:
        raise DatasetError(f"--policy {policy}: capture plays one of {', '.join(CAPTURE_POLICIES)}")
    if (out / "manifest.json").exists():
        raise DatasetError(f"{out} already holds a dataset; give another --out")
    out.mkdir(parents=True, exist_ok=True)
    env = TownletVectorEnv(level, num_envs)
    obs, info = env.reset(seed=seed)
    rng = torch.Generator().manual_seed(seed)
    actor: Policy = ScriptedAgent(env.town) if policy == "scripted" else RandomPolicy(rng)
    state = actor.initial_state(num_envs, env.device)
    steps = -(-agent_steps // num_envs)
    shards: list[dict[str, Any]] = []
    rows: dict[str, list[torch.Tensor]] = {key: [] for key in FIELDS}
    episodes = 0
    for step in range(steps):
        action, state = actor.act(obs, info["action_mask"], state)
        rows["obs"].append(obs.clone())
        rows["mask"].append(info["action_mask"].clone())
        rows["action"].append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated | truncated
        rows["reward"].append(reward)
        rows["done"].append(done)
        episodes += int(done.sum())
        if bool(done.any()):
            state = actor.reset(state, done)
        if len(rows["obs"]) == shard_steps or step == steps - 1:
            shards.append(_write_shard(out, len(shards), rows))
            rows = {key: [] for key in FIELDS}
    manifest = {
        "format": FORMAT,
        "level": env.level.name,
        "level_source": level,
        "level_hash": env.level.content_hash,
        "observation": {"size": env.level.layout.size, "layout": _layout(env)},
        "actions": list(env.level.action_names),
        "policy": policy,
        "seed": seed,
        "num_envs": num_envs,
        "agent_steps": steps * num_envs,
        "episodes_ended": episodes,
        "shards": shards,
    }
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")  # a dataset without a manifest is no dataset
    return manifest


def _write_shard(out: Path, index: int, rows: dict[str, list[torch.Tensor]]) -> dict[str, Any]:
    # env steps are stacked [T, N, ...] then flattened: the rows of one slot stay N apart
    arrays = {key: torch.stack(value).flatten(0, 1).cpu().numpy() for key, value in rows.items()}
    path = out / f"shard_{index:05d}.npz"
    with path.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub reads ** as allow_pickle
    return {"file": path.name, "rows": int(arrays["action"].shape[0]), "sha256": _sha256(path)}


# Bounds on what a dataset may ask of the machine; a shard's arrays are sized from the manifest
# and checked before inflating (townlet_env.files.npz).
MAX_MANIFEST_BYTES = 16 << 20
MAX_SHARD_BYTES = 4 << 30
MAX_SHARDS = 100_000
# manifest field -> the JSON types it may hold
MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "format": (int,),
    "level": (str,),
    "level_source": (str,),
    "level_hash": (str,),
    "observation": (dict,),
    "actions": (list,),
    "shards": (list,),
}
SHARD_TYPES: dict[str, tuple[type, ...]] = {"file": (str,), "rows": (int,), "sha256": (str,)}


def _typed(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, with every field the loader relies on present and of the right type."""
    path = directory / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{directory}: not a dataset (no manifest.json)")
    try:
        manifest = json.loads(read_regular_file(path, MAX_MANIFEST_BYTES).decode())
    except ArchiveError as exc:
        raise DatasetError(str(exc)) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT or not _typed(manifest.get("format"), (int,)):
        raise DatasetError(
            f"{path}: dataset format {repr(manifest.get('format'))[:20]}, this trainer reads {FORMAT}"
        )
    for key, kinds in MANIFEST_TYPES.items():
        if key not in manifest:
            raise DatasetError(f"{path}: field '{key}' is missing")
        if not _typed(manifest[key], kinds):
            raise DatasetError(
                f"{path}: field '{key}' is {type(manifest[key]).__name__}, expected {kinds[0].__name__}"
            )
    size = manifest["observation"].get("size")
    if not _typed(size, (int,)) or size < 1:
        raise DatasetError(
            f"{path}: field 'observation.size' is {repr(size)[:20]}, expected a whole number >= 1"
        )
    if not manifest["actions"] or not all(isinstance(a, str) for a in manifest["actions"]):
        raise DatasetError(f"{path}: field 'actions' must be a non-empty list of action names")
    shards = manifest["shards"]
    if not 1 <= len(shards) <= MAX_SHARDS:
        raise DatasetError(f"{path}: field 'shards' lists {len(shards)} shards, expected 1..{MAX_SHARDS}")
    for i, shard in enumerate(shards):
        where = f"{path}: field 'shards[{i}]"
        if not isinstance(shard, dict):
            raise DatasetError(f"{where}' is {type(shard).__name__}, expected an object")
        for key, kinds in SHARD_TYPES.items():
            if not _typed(shard.get(key), kinds):
                raise DatasetError(
                    f"{where}.{key}' is {repr(shard.get(key))[:20]}, expected {kinds[0].__name__}"
                )
        if shard["rows"] < 0 or Path(shard["file"]).name != shard["file"] or shard["file"] in ("", ".", ".."):
            raise DatasetError(f"{where}' names a shard outside the dataset or a negative row count")
    return manifest


def load_dataset(directory: Path, level: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every shard of a dataset, verified against its manifest (and against `level`, if given):
    digests, then each array's dtype, shape, range and finiteness (see `check_shard`)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if level is not None and compile_level(level).name != manifest["level"]:
        raise DatasetError(f"{directory}: captured on level '{manifest['level']}', not on '{level}'")
    try:
        current = compile_level(manifest["level_source"] or manifest["level"])
    except ValueError as exc:  # ConfigError included: a pack that is gone or broken
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DatasetError(
            f"{directory}: cannot load its level {manifest['level'][:80]!r} ({first})"
        ) from None
    if current.content_hash != manifest["level_hash"]:
        raise DatasetError(
            f"{directory}: captured on another version of level '{manifest['level']}' "
            f"(hash {manifest['level_hash'][:12]}, now {current.content_hash[:12]})"
        )
    width, n_actions = manifest["observation"]["size"], len(manifest["actions"])
    if width != current.layout.size or n_actions != current.n_actions:
        raise DatasetError(
            f"{directory / 'manifest.json'}: field 'observation.size'/'actions' ({width}, {n_actions}) "
            f"differ from level '{current.name}' ({current.layout.size}, {current.n_actions})"
        )
    parts: dict[str, list[np.ndarray]] = {key: [] for key in FIELDS}
    for shard in manifest["shards"]:
        path = directory / shard["file"]
        if not path.is_file():
            raise DatasetError(f"{path}: shard missing (the manifest lists it)")
        if _sha256(path) != shard["sha256"]:
            raise DatasetError(f"{path}: SHA-256 differs from the manifest; the shard was changed")
        arrays = read_shard(path, shard["rows"], width, n_actions)
        for key in FIELDS:
            parts[key].append(arrays[key])
    data = {key: torch.from_numpy(np.concatenate(value)) for key, value in parts.items()}
    if data["action"].shape[0] == 0:
        raise DatasetError(f"{directory}: the dataset holds no rows")
    return data, manifest


def read_shard(path: Path, rows: int, width: int, n_actions: int) -> dict[str, np.ndarray]:
    """A shard's arrays, sized from the manifest before inflating, then checked value by value."""
    forms = {
        "obs": (np.float32, (rows, width)),
        "mask": (np.bool_, (rows, n_actions)),
        "action": (np.int64, (rows,)),
        "reward": (np.float32, (rows,)),
        "done": (np.bool_, (rows,)),
    }
    try:
        archive = Archive(path, lambda key: key in forms, MAX_SHARD_BYTES, MAX_SHARD_BYTES)
        archive.check_members()
        missing = [key for key in FIELDS if key not in archive.members]
        if missing:
            raise DatasetError(f"{path}: field '{missing[0]}' is missing")
        arrays = {}
        for key, (dtype, shape) in forms.items():
            arrays[key] = archive.read(key, int(np.dtype(dtype).itemsize * np.prod(shape, dtype=np.int64)))
    except ArchiveError as exc:
        raise DatasetError(str(exc)) from None
    for key, (dtype, shape) in forms.items():
        got = arrays[key]
        if got.dtype != dtype or got.shape != shape:
            raise DatasetError(
                f"{path}: field '{key}' is {got.dtype} {got.shape}, expected {np.dtype(dtype)} {shape} "
                "(every field has the manifest's row count)"
            )
    check_shard(path, arrays, n_actions)
    return arrays


def check_shard(path: Path, arrays: dict[str, np.ndarray], n_actions: int) -> None:
    """Values a learner relies on: finite observations and rewards, actions in range and legal
    under their mask, at least one legal action per row."""
    for key in ("obs", "reward"):
        bad = ~np.isfinite(arrays[key])
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DatasetError(f"{path}: field '{key}' holds NaN or inf (first at row {row})")
    action, mask = arrays["action"], arrays["mask"]
    out = (action < 0) | (action >= n_actions)
    if out.any():
        row = int(np.argmax(out))
        raise DatasetError(
            f"{path}: field 'action' is {int(action[row])} at row {row}, expected 0..{n_actions - 1}"
        )
    if len(action) and not mask.any(axis=1).all():
        raise DatasetError(f"{path}: field 'mask' allows no action at row {int(np.argmin(mask.any(axis=1)))}")
    illegal = ~mask[np.arange(len(action)), action]
    if illegal.any():
        row = int(np.argmax(illegal))
        raise DatasetError(f"{path}: field 'action' at row {row} is not legal under its 'mask'")
