"""Recurrent students on the partial-observation levels: train a recipe, then evaluate at full
difficulty.

    python -m benchmarks.recurrent_dagger                          # L2 and L3 DAgger recipes
    python -m benchmarks.recurrent_dagger --recipes L3_temporal_mechanics_dagger_lstm --out runs/rd
    python -m benchmarks.recurrent_dagger --recipes L2_partial_observability_dagger_lstm \
        --evaluate runs/L2 --train-seconds 1800

For each recipe (`configs/recipes/<name>.yaml`): train it on this machine, timing the run; then
evaluate the final checkpoint's greedy recurrent policy (through `load_policy`, as
`townlet-train eval` plays it), the scripted teacher and the random policy for --episodes
episodes at difficulty 1.0 (seed 12345), and the same policy sampled instead of greedy. Writes
`benchmarks/results/recurrent_dagger.json`, merged per recipe (read again just before writing,
so recipes can run in separate processes). A PPO recipe starts from the DAgger student its
`init_from` names (train that one first).

`--evaluate RUN_DIR` evaluates the newest checkpoint of a run of the recipe trained before (with
`townlet-train train`, in one go or resumed) instead of training; its training time is then the
caller's measurement, `--train-seconds`, and `--note` says how it was trained.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from townlet_train.config import CONFIG_DIR, load_config
from townlet_train.evaluate import evaluate
from townlet_train.policy import load_policy
from townlet_train.run.checkpoint import latest_checkpoint, load_checkpoint
from townlet_train.run.loop import write_resolved_config
from townlet_train.run.resume import config_changes
from townlet_train.trainers import make_trainer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "recurrent_dagger.json"
KEEP = ("mean_survival", "median_survival", "mean_reward", "episodes", "difficulty", "max_steps")


def train(name: str, out_dir: Path) -> tuple[Path, float]:
    """Train a recipe; (its final checkpoint, the seconds it took)."""
    recipe = CONFIG_DIR / "recipes" / f"{name}.yaml"
    cfg = load_config(recipe, device="cpu", metrics__progress=False)
    run_dir = out_dir / name
    write_resolved_config(cfg, run_dir)
    started = time.perf_counter()
    summary = make_trainer(cfg, run_dir).run()
    return Path(summary["checkpoint"]), time.perf_counter() - started


def evaluate_run(name: str, checkpoint: Path, train_seconds: float, episodes: int) -> dict[str, Any]:
    """Evaluate a run's final checkpoint against the scripted and random policies."""
    recipe = load_config(CONFIG_DIR / "recipes" / f"{name}.yaml")
    policy, cfg = load_policy(checkpoint)
    # the student a PPO run started from is a path of that run; the result names it
    trained = cfg.model_dump(mode="json")
    if "init_from" in trained["algorithm"]:
        trained["algorithm"]["init_from"] = recipe.model_dump(mode="json")["algorithm"]["init_from"]
    changed = config_changes(trained, recipe)
    if changed:
        raise SystemExit(f"{checkpoint}: not trained with configs/recipes/{name}.yaml ({'; '.join(changed)})")
    agent_steps = int(load_checkpoint(checkpoint)["counters"]["agent_steps"])
    evals = {
        kind: evaluate(cfg.level, kind, episodes, 1.0, agent=policy if kind == "learned" else None)
        for kind in ("learned", "scripted", "random")
    }
    # not the goal's measure (that is greedy), but how much sampling breaks the greedy loops
    sampled, _ = load_policy(checkpoint, sample=True, rng=torch.Generator().manual_seed(0))
    evals["learned_sampled"] = evaluate(cfg.level, "learned", episodes, 1.0, agent=sampled)
    return {
        "recipe": f"configs/recipes/{name}.yaml",
        "level": cfg.level,
        "agent_steps": agent_steps,
        "train_seconds": round(train_seconds, 1),
        "init_from": getattr(cfg.algorithm, "init_from", None),
        "network": cfg.network.model_dump(),
        "algorithm": cfg.algorithm.model_dump(),
        "eval": {kind: {k: ev[k] for k in KEEP} for kind, ev in evals.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--recipes",
        nargs="*",
        default=["L2_partial_observability_dagger_lstm", "L3_temporal_mechanics_dagger_lstm"],
    )
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes per policy")
    parser.add_argument("--out", type=Path, default=Path("runs/recurrent-dagger-benchmark"))
    parser.add_argument("--evaluate", type=Path, help="a run directory of the (one) recipe, trained before")
    parser.add_argument("--train-seconds", type=float, help="with --evaluate: how long its training took")
    parser.add_argument("--note", default="", help="how the run was trained, if not in one go here")
    args = parser.parse_args()
    if args.evaluate is not None and (len(args.recipes) != 1 or args.train_seconds is None):
        parser.error("--evaluate takes one recipe and --train-seconds")
    torch.set_num_threads(1)
    for name in args.recipes:
        print(f"== {name}", flush=True)
        if args.evaluate is not None:
            checkpoint, seconds = latest_checkpoint(args.evaluate / "checkpoints"), args.train_seconds
            assert checkpoint is not None, f"{args.evaluate}: no checkpoint"
        else:
            checkpoint, seconds = train(name, args.out / time.strftime("%Y%m%d-%H%M%S"))
        entry = evaluate_run(name, checkpoint, seconds, args.episodes)
        for kind, ev in entry["eval"].items():
            print(f"   {kind:>8}: mean survival {ev['mean_survival']:.1f} / {ev['max_steps']}", flush=True)
        print(
            f"   trained {entry['agent_steps']:,} agent-steps in {entry['train_seconds']:.0f} s", flush=True
        )
        if args.note:
            entry["note"] = args.note
        entry["machine"] = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
            ).stdout.strip(),
        }
        results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"recipes": {}}
        results["recipes"][name] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
