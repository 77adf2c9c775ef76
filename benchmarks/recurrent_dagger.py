"""Recurrent DAgger on the partial-observation levels: train a recipe, then evaluate at full
difficulty.

    python benchmarks/recurrent_dagger.py                          # L2 and L3, their recipes
    python benchmarks/recurrent_dagger.py --recipes L3_dagger --out runs/rd

For each recipe (`configs/recipes/<name>.yaml`): train it on this machine, timing the run; then
evaluate the final checkpoint's greedy recurrent policy (through `load_policy`, as
`townlet-train eval` plays it), the scripted teacher and the random policy for --episodes
episodes at difficulty 1.0 (seed 12345). Writes `benchmarks/results/recurrent_dagger.json`,
merged per level (read again just before writing, so recipes can run in separate processes).
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
from townlet_train.loop import write_resolved_config
from townlet_train.policy import load_policy
from townlet_train.trainers import make_trainer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "recurrent_dagger.json"
KEEP = ("mean_survival", "median_survival", "mean_reward", "episodes", "difficulty", "max_steps")


def run_recipe(name: str, episodes: int, out_dir: Path) -> dict[str, Any]:
    recipe = CONFIG_DIR / "recipes" / f"{name}.yaml"
    cfg = load_config(recipe, device="cpu", metrics__progress=False)
    run_dir = out_dir / name
    write_resolved_config(cfg, run_dir)
    started = time.perf_counter()
    summary = make_trainer(cfg, run_dir).run()
    train_seconds = time.perf_counter() - started
    policy, _ = load_policy(Path(summary["checkpoint"]))
    evals = {
        kind: evaluate(cfg.level, kind, episodes, 1.0, agent=policy if kind == "learned" else None)
        for kind in ("learned", "scripted", "random")
    }
    return {
        "recipe": f"configs/recipes/{name}.yaml",
        "level": cfg.level,
        "agent_steps": summary["agent_steps"],
        "train_seconds": round(train_seconds, 1),
        "network": cfg.network.model_dump(),
        "algorithm": cfg.algorithm.model_dump(),
        "eval": {kind: {k: ev[k] for k in KEEP} for kind, ev in evals.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", nargs="*", default=["L2_dagger", "L3_dagger"])
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes per policy")
    parser.add_argument("--out", type=Path, default=Path("runs/recurrent-dagger-benchmark"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.recipes:
        print(f"== {name}", flush=True)
        entry = run_recipe(name, args.episodes, args.out / time.strftime("%Y%m%d-%H%M%S"))
        for kind, ev in entry["eval"].items():
            print(f"   {kind:>8}: mean survival {ev['mean_survival']:.1f} / {ev['max_steps']}", flush=True)
        print(
            f"   trained {entry['agent_steps']:,} agent-steps in {entry['train_seconds']:.0f} s", flush=True
        )
        entry["machine"] = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
            ).stdout.strip(),
        }
        results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"levels": {}}
        results["levels"][entry["level"]] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
