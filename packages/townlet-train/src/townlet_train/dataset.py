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


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{directory}: not a dataset (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: dataset format {manifest.get('format')!r}, this trainer reads {FORMAT}")
    return manifest


def load_dataset(directory: Path, level: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every shard of a dataset, verified against its manifest (and against `level`, if given)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if level is not None and compile_level(level).name != manifest["level"]:
        raise DatasetError(f"{directory}: captured on level '{manifest['level']}', not on '{level}'")
    current = compile_level(manifest.get("level_source", manifest["level"]))
    if current.content_hash != manifest["level_hash"]:
        raise DatasetError(
            f"{directory}: captured on another version of level '{manifest['level']}' "
            f"(hash {manifest['level_hash'][:12]}, now {current.content_hash[:12]})"
        )
    parts: dict[str, list[np.ndarray]] = {key: [] for key in FIELDS}
    for shard in manifest["shards"]:
        path = directory / shard["file"]
        if Path(shard["file"]).name != shard["file"]:
            raise DatasetError(f"{directory}: manifest names a shard outside the dataset: {shard['file']!r}")
        if not path.is_file():
            raise DatasetError(f"{path}: shard missing (the manifest lists it)")
        if _sha256(path) != shard["sha256"]:
            raise DatasetError(f"{path}: SHA-256 differs from the manifest; the shard was changed")
        with np.load(path, allow_pickle=False) as arrays:
            for key in FIELDS:
                parts[key].append(arrays[key])
    data = {key: torch.from_numpy(np.concatenate(value)) for key, value in parts.items()}
    if data["obs"].shape[1] != manifest["observation"]["size"]:
        raise DatasetError(f"{directory}: observations are not {manifest['observation']['size']} wide")
    return data, manifest
