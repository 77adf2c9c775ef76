"""L4_social baselines: survival and social figures of random, scripted and (given checkpoints)
learned play, each slot playing one whole episode at full difficulty.

    python -m benchmarks.social_baselines                           # random and scripted
    python -m benchmarks.social_baselines --learned dagger runs/L4_social/seed0 runs/L4_social/seed1

`--learned NAME CHECKPOINT...` evaluates each checkpoint (a .pt file, a run directory: its
newest checkpoint, or RUN_DIR/best, as `townlet-train eval --checkpoint` takes them) on the same
towns and stores their mean under `learned_NAME`, with each checkpoint's figures under `runs`.
Rows of other names already in the JSON are kept, so learners can be measured one at a time.
Writes `benchmarks/results/social_baselines.json`; docs/results.md quotes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from townlet_env.files import atomic_output
from townlet_train.evaluate import evaluate, load_policy_network
from townlet_train.run.checkpoint import CheckpointError, resolve_checkpoint

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "social_baselines.json"
KEYS = ("mean_survival", "median_survival", "mean_reward", "chats_per_episode", "mean_trust")


def measure(
    policy: str, episodes: int, seed: int, network: torch.nn.Module | None = None
) -> dict[str, float]:
    result = evaluate("L4_social", policy, episodes, difficulty=1.0, network=network, seed=seed)
    return {key: round(float(result[key]), 4) for key in KEYS}


def learned(checkpoints: list[Path], episodes: int, seed: int) -> dict[str, Any]:
    runs = []
    for given in checkpoints:
        try:
            path = resolve_checkpoint(given, "--learned")
        except CheckpointError as exc:
            raise SystemExit(f"error: {exc}") from None
        network, cfg = load_policy_network(path, torch.device("cpu"))
        figures = measure("learned", episodes, seed, network)
        runs.append({"checkpoint": str(path), "seed": cfg.seed, "total_steps": cfg.total_steps, **figures})
        print(path, figures)
    mean = {key: round(sum(run[key] for run in runs) / len(runs), 4) for key in KEYS}
    return {**mean, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=96, help="a multiple of 6 (towns of six)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--learned", nargs="+", metavar=("NAME", "CHECKPOINT"), default=None)
    args = parser.parse_args()
    out: dict[str, Any] = {"level": "L4_social", "episodes": args.episodes, "seed": args.seed, "policies": {}}
    if RESULTS.exists():
        kept = json.loads(RESULTS.read_text())
        if (kept.get("episodes"), kept.get("seed")) == (args.episodes, args.seed):
            out["policies"] = {k: v for k, v in kept["policies"].items() if k.startswith("learned_")}
    for name in ("random", "scripted"):
        out["policies"][name] = measure(name, args.episodes, args.seed)
        print(name, out["policies"][name])
    if args.learned is not None:
        if len(args.learned) < 2:
            parser.error("--learned takes a name and at least one checkpoint")
        name, *paths = args.learned
        out["policies"][f"learned_{name}"] = learned([Path(p) for p in paths], args.episodes, args.seed)
    with atomic_output(RESULTS, force=True) as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
