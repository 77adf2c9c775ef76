"""Social-town baselines (L4_social, L5_town): survival, social and (L5) work figures of random,
scripted and (given checkpoints) learned play, each slot playing one whole episode at full
difficulty.

    python -m benchmarks.social_baselines                           # L4_social: random and scripted
    python -m benchmarks.social_baselines --learned dagger runs/L4_social/seed0 runs/L4_social/seed1
    python -m benchmarks.social_baselines --level L5_town --learned dagger runs/L5_town/seed0

`--learned NAME CHECKPOINT...` evaluates each checkpoint (a .pt file, a run directory: its
newest checkpoint, or RUN_DIR/best, as `townlet-train eval --checkpoint` takes them) on the same
towns and stores their mean under `learned_NAME`, with each checkpoint's figures under `runs`.
Rows of other names already in the JSON are kept, so learners can be measured one at a time.
Writes `benchmarks/results/social_baselines.json` (L4_social) or `economy_baselines.json`
(L5_town, with wages, on-time rate, evictions and exits by reason); docs/results.md quotes both.
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
RESULTS = {
    "L4_social": ROOT / "benchmarks" / "results" / "social_baselines.json",
    "L5_town": ROOT / "benchmarks" / "results" / "economy_baselines.json",
}
KEYS = ("mean_survival", "median_survival", "mean_reward", "chats_per_episode", "mean_trust")
WORK_KEYS = ("wages_per_episode", "on_time_rate", "evictions")  # L5_town's economy


def measure(
    level: str, policy: str, episodes: int, seed: int, network: torch.nn.Module | None = None
) -> dict[str, Any]:
    result = evaluate(level, policy, episodes, difficulty=1.0, network=network, seed=seed)
    figures: dict[str, Any] = {key: round(float(result[key]), 4) for key in KEYS}
    if "exits" in result:
        figures |= {key: round(float(result[key]), 4) for key in WORK_KEYS}
        figures["exits"] = dict(result["exits"])
    return figures


def mean_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' mean figure by figure (exits: the mean count of each reason)."""
    mean: dict[str, Any] = {}
    for key, value in runs[0].items():
        if key in ("checkpoint", "seed", "total_steps"):
            continue
        if isinstance(value, dict):
            mean[key] = {k: round(sum(run[key][k] for run in runs) / len(runs), 4) for k in value}
        else:
            mean[key] = round(sum(run[key] for run in runs) / len(runs), 4)
    return mean


def learned(level: str, checkpoints: list[Path], episodes: int, seed: int) -> dict[str, Any]:
    runs = []
    for given in checkpoints:
        try:
            path = resolve_checkpoint(given, "--learned")
        except CheckpointError as exc:
            raise SystemExit(f"error: {exc}") from None
        network, cfg = load_policy_network(path, torch.device("cpu"))
        if cfg.level != level:
            raise SystemExit(f"error: --learned {given}: a checkpoint of {cfg.level}, not {level}")
        figures = measure(level, "learned", episodes, seed, network)
        runs.append({"checkpoint": str(path), "seed": cfg.seed, "total_steps": cfg.total_steps, **figures})
        print(path, figures)
    return {**mean_of(runs), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", choices=sorted(RESULTS), default="L4_social")
    parser.add_argument("--episodes", type=int, default=96, help="a multiple of 6 (towns of six)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--learned", nargs="+", metavar=("NAME", "CHECKPOINT"), default=None)
    args = parser.parse_args()
    results = RESULTS[args.level]
    out: dict[str, Any] = {"level": args.level, "episodes": args.episodes, "seed": args.seed, "policies": {}}
    if results.exists():
        kept = json.loads(results.read_text())
        if (kept.get("episodes"), kept.get("seed")) == (args.episodes, args.seed):
            out["policies"] = {k: v for k, v in kept["policies"].items() if k.startswith("learned_")}
    for name in ("random", "scripted"):
        out["policies"][name] = measure(args.level, name, args.episodes, args.seed)
        print(name, out["policies"][name])
    if args.learned is not None:
        if len(args.learned) < 2:
            parser.error("--learned takes a name and at least one checkpoint")
        name, *paths = args.learned
        out["policies"][f"learned_{name}"] = learned(
            args.level, [Path(p) for p in paths], args.episodes, args.seed
        )
    with atomic_output(results, force=True) as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
