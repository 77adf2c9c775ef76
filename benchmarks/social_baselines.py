"""L4_social baselines: survival and social figures of random, scripted and (given a checkpoint)
learned play, each slot playing one whole episode at full difficulty.

    python -m benchmarks.social_baselines                           # random and scripted
    python -m benchmarks.social_baselines --checkpoint runs/L4_social/<run>/checkpoints/step_*.pt

Writes `benchmarks/results/social_baselines.json`; docs/results.md quotes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from townlet_train.evaluate import evaluate, load_policy_network

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "social_baselines.json"
KEYS = ("mean_survival", "median_survival", "mean_reward", "chats_per_episode", "mean_trust")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=96, help="a multiple of 6 (towns of six)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    out: dict[str, Any] = {"level": "L4_social", "episodes": args.episodes, "seed": args.seed, "policies": {}}
    policies: list[tuple[str, torch.nn.Module | None]] = [("random", None), ("scripted", None)]
    if args.checkpoint is not None:
        learned, cfg = load_policy_network(args.checkpoint, torch.device("cpu"))
        policies.append(("learned", learned))
        out["checkpoint"] = {"path": str(args.checkpoint), "total_steps": cfg.total_steps}
    for name, network in policies:
        result = evaluate("L4_social", name, args.episodes, difficulty=1.0, network=network, seed=args.seed)
        out["policies"][name] = {key: round(float(result[key]), 4) for key in KEYS}
        print(name, out["policies"][name])
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
