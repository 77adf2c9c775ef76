"""A/B training: the same short runs by this tree and by another checkout; same weights?

    python benchmarks/ab_training.py --base /work/ref-main            # every case
    python benchmarks/ab_training.py --base /work/ref-main --cases dqn_dueling_L1 ppo_lstm_L2

A refactor of the trainer that should not change what it learns is checked here: each case is a
short run (same config, same seed) through `townlet-train train` of each tree, in fresh
processes; then every tensor of the final checkpoint's network, target network and optimizer
is compared exactly (torch.equal), and both checkpoints are evaluated with `townlet-train eval`
(same seed). The base is a directory holding `packages/townlet-{env,train}/src` (a checkout or
`git worktree`), never modified. Writes `benchmarks/results/ab_training.json`.

Cases cover every learner and memory: DQN (feed-forward uniform, prioritized + RND, recurrent),
PPO (feed-forward, recurrent, from a DAgger student with the KL term), DAgger (mlp, lstm with
recall, map with the map-reading teacher: the L1, L2 and L3 defaults) and BC.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ab_training.json"
# The cases' configs are the base tree's (the older layout, which this tree migrates when it
# reads them); each one's counterpart in this tree's configs must resolve to the same config.
RECIPES = Path("configs") / "recipes"
BUILTIN = Path("packages") / "townlet-train" / "src" / "townlet_train" / "configs"
# recipes renamed since the base: base name -> this tree's
RENAMED = {
    "L1_ppo.yaml": "L1_full_observability_ppo.yaml",
    "L1_ppo_from_dagger.yaml": "L1_full_observability_ppo_from_dagger.yaml",
    "L2_dagger_lstm.yaml": "L2_partial_observability_dagger_lstm.yaml",
    "L2_ppo_from_dagger.yaml": "L2_partial_observability_ppo_from_dagger.yaml",
    "L3_dagger_lstm.yaml": "L3_temporal_mechanics_dagger_lstm.yaml",
    "L3_ppo_from_dagger.yaml": "L3_temporal_mechanics_ppo_from_dagger.yaml",
}

QUICK = {
    "device": "cpu",
    "env": {"num_envs": 32, "agents_per_town": 1},
    "metrics": {"tensorboard": False, "log_every_updates": 50, "progress": False},
    "checkpoint": {"every_episodes": 100000, "every_steps": 10**9, "every_seconds": 86400, "keep": 2},
}
SMALL_DQN = {"batch_size": 64, "learning_starts": 1024, "target": {"kind": "hard", "every": 50}}
SMALL_DAGGER = {"batch_size": 256, "learning_starts": 512, "beta_steps": 4096, "capacity": 20000}
SMALL_PPO = {"rollout_steps": 32, "minibatch_size": 256, "epochs": 2}

# name: (base config, changes merged into it, agent-steps)
CASES: dict[str, tuple[Path, dict[str, Any], int]] = {
    "dagger_mlp_L1_default": (BUILTIN / "L1_full_observability.yaml", {"algorithm": SMALL_DAGGER}, 4096),
    "dagger_map_L2_default": (BUILTIN / "L2_partial_observability.yaml", {"algorithm": SMALL_DAGGER}, 4096),
    "dagger_map_L3_default": (BUILTIN / "L3_temporal_mechanics.yaml", {"algorithm": SMALL_DAGGER}, 4096),
    "dagger_lstm_L2": (
        RECIPES / "L2_dagger_lstm.yaml",
        {"algorithm": {**SMALL_DAGGER, "sequence_length": 8, "burn_in": 4}, "network": {"hidden": [64]}},
        4096,
    ),
    "dqn_dueling_L1": (RECIPES / "L1_full_observability_dqn.yaml", {"algorithm": SMALL_DQN}, 4096),
    "dqn_prioritized_rnd_L1": (
        RECIPES / "L1_full_observability_dqn.yaml",
        {
            "network": {"kind": "mlp", "hidden": [64]},
            "algorithm": SMALL_DQN,
            "replay": {"kind": "prioritized", "capacity": 20000},
            "exploration": {"rnd": {"enabled": True}},
        },
        4096,
    ),
    "dqn_lstm_L2": (
        RECIPES / "L2_partial_observability_dqn.yaml",
        {
            "network": {"hidden": [64], "lstm_hidden": 32},
            "algorithm": SMALL_DQN,
            "replay": {"kind": "sequence", "capacity": 20000, "sequence_length": 8, "burn_in": 4},
        },
        4096,
    ),
    "dqn_lstm_L3": (
        RECIPES / "L3_temporal_mechanics_dqn.yaml",
        {
            "network": {"hidden": [64], "lstm_hidden": 32},
            "algorithm": SMALL_DQN,
            "replay": {"kind": "sequence", "capacity": 20000, "sequence_length": 8, "burn_in": 4},
        },
        4096,
    ),
    "ppo_mlp_L1": (RECIPES / "L1_ppo.yaml", {"algorithm": SMALL_PPO, "network": {"hidden": [64]}}, 4096),
    "ppo_lstm_L2": (
        RECIPES / "L2_ppo_from_dagger.yaml",
        {"algorithm": {**SMALL_PPO, "init_from": None, "kl_start": 0.0, "critic_warmup": 1}},
        4096,
    ),
    "ppo_from_dagger_L1": (
        RECIPES / "L1_ppo_from_dagger.yaml",
        {"algorithm": {**SMALL_PPO, "init_from": "{dagger_mlp_L1_default}", "kl_steps": 4096}},
        4096,
    ),
}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def townlet_train(source: Path, *args: str) -> str:
    paths = [source / "packages" / "townlet-env" / "src", source / "packages" / "townlet-train" / "src"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, paths)))
    done = subprocess.run(
        [sys.executable, "-m", "townlet_train.cli", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{source}: townlet-train {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


DIGEST = r"""
import hashlib, json, sys, torch
payload = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
def walk(tree, prefix, out):
    if isinstance(tree, torch.Tensor):
        out[prefix] = hashlib.sha256(tree.contiguous().numpy().tobytes()).hexdigest()[:16]
    elif isinstance(tree, dict):
        for k, v in tree.items():
            walk(v, f"{prefix}.{k}", out)
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            walk(v, f"{prefix}.{i}", out)
out = {}
for part in ("network", "target_network", "optimizer", "recall", "rnd"):
    if part in payload:
        walk(payload[part], part, out)
print(json.dumps({"tensors": out, "counters": payload.get("counters")}))
"""


SAME_CONFIG = r"""
import json, sys
from townlet_train.config import load_config
old, new = (load_config(path).model_dump(mode="json") for path in sys.argv[1:3])
print(json.dumps(old == new))
"""


def same_config(base: Path, relative: Path) -> bool:
    """Whether this tree reads the base's config file and its own counterpart as one config."""
    ours = ROOT / relative.parent / RENAMED.get(relative.name, relative.name)
    paths = [ROOT / "packages" / "townlet-env" / "src", ROOT / "packages" / "townlet-train" / "src"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, paths)))
    done = subprocess.run(
        [sys.executable, "-c", SAME_CONFIG, str(base / relative), str(ours)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(json.loads(done.stdout.splitlines()[-1]))


def run_case(
    name: str, source: Path, work: Path, done: dict[str, Path], steps: int, base: Path
) -> dict[str, Any]:
    config_path, changes, default_steps = CASES[name]
    cfg = merged(merged(yaml.safe_load((base / config_path).read_text()), QUICK), changes)
    cfg["total_steps"] = steps or default_steps
    init = cfg.get("algorithm", {}).get("init_from")
    if isinstance(init, str) and init.startswith("{"):
        cfg["algorithm"]["init_from"] = str(done[init.strip("{}")])
    run_dir = work / name
    (work / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    townlet_train(source, "train", "--config", str(work / f"{name}.yaml"), "--run-dir", str(run_dir))
    checkpoint = max((run_dir / "checkpoints").glob("step_*.pt"))
    done[name] = checkpoint
    digest = subprocess.run(
        [sys.executable, "-c", DIGEST, str(checkpoint)], capture_output=True, text=True, check=True
    )
    ev = townlet_train(source, "eval", "--checkpoint", str(checkpoint), "--episodes", "4", "--json")
    return {**json.loads(digest.stdout), "eval": json.loads(ev.splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="a checkout of the base revision")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=0, help="agent-steps per case (default: the case's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON written (default: %(default)s)")
    args = parser.parse_args()
    needed = list(args.cases)
    for name in args.cases:  # a case that starts from another's checkpoint runs after it
        init = CASES[name][1].get("algorithm", {}).get("init_from")
        if isinstance(init, str) and init.startswith("{") and init.strip("{}") not in needed:
            needed.insert(0, init.strip("{}"))
    rows, same_all = [], True
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"base": args.base.resolve(), "this": ROOT}
        done: dict[str, dict[str, Path]] = {tree: {} for tree in trees}
        for name in needed:
            result = {}
            for tree, source in trees.items():
                work = Path(tmp) / tree
                work.mkdir(exist_ok=True)
                result[tree] = run_case(name, source, work, done[tree], args.steps, trees["base"])
            base_t, this_t = result["base"]["tensors"], result["this"]["tensors"]
            differing = sorted(k for k in set(base_t) | set(this_t) if base_t.get(k) != this_t.get(k))
            config_same = same_config(trees["base"], CASES[name][0])
            same = not differing and bool(base_t) and config_same
            same_all &= same
            fig = {tree: result[tree]["eval"].get("mean_survival") for tree in trees}
            print(
                f"{name:<26} tensors {len(this_t):>3} {'identical' if same else 'DIFFER'}"
                f"  eval mean survival base {fig['base']} this {fig['this']}"
                + (f"  first differing: {differing[:3]}" if differing else "")
                + ("" if config_same else "  this tree's config file resolves differently")
            )
            rows.append(
                {
                    "case": name,
                    "identical": same,
                    "same_config": config_same,
                    "differing": differing[:20],
                    **result,
                }
            )
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    for row in rows:
        for tree in ("base", "this"):
            row[tree].pop("tensors")
    summary = {"base": str(args.base), "head": head.stdout.strip(), "identical": same_all, "cases": rows}
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{'all identical' if same_all else 'SOME DIFFER'}; wrote {out}")
    sys.exit(0 if same_all else 1)


if __name__ == "__main__":
    main()
