"""Learning results: train each level with its default config, then evaluate at full difficulty.

    python benchmarks/learning.py                                  # every level, default budgets
    python benchmarks/learning.py --levels L1_full_observability --total-steps 2000000

For each level: train with `configs/<level>.yaml` (or --total-steps), evaluate the learned
(greedy), scripted and random policies for --episodes episodes at difficulty 1.0, and record
the learning curve (training survival and curriculum stage against agent-steps) from the run's
metrics.db. Writes `benchmarks/results/learning.json` (merged per level, so levels can be run
separately) and `docs/learning_curves.png`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from townlet_env import builtin_levels
from townlet_train.config import load_config
from townlet_train.evaluate import evaluate
from townlet_train.loop import Trainer, write_resolved_config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "learning.json"
PLOT = ROOT / "docs" / "learning_curves.png"


def learning_curve(db: Path, bins: int = 40) -> list[dict[str, float]]:
    """Mean training survival, difficulty and stage of the episodes in each agent-step bin."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT agent_steps, steps_survived, difficulty, curriculum_stage FROM episodes"
        ).fetchall()
    if not rows:
        return []
    top = max(r[0] for r in rows)
    width = max(1, top // bins + 1)
    grouped: dict[int, list[tuple[int, float, int]]] = {}
    for steps, survived, difficulty, stage in rows:
        grouped.setdefault(steps // width, []).append((survived, difficulty, stage))
    curve = []
    for key in sorted(grouped):
        items = grouped[key]
        curve.append(
            {
                "agent_steps": (key + 0.5) * width,
                "survival": sum(i[0] for i in items) / len(items),
                "difficulty": sum(i[1] for i in items) / len(items),
                "stage": sum(i[2] for i in items) / len(items),
            }
        )
    return curve


def run_level(level: str, total_steps: int | None, episodes: int, out_dir: Path) -> dict[str, Any]:
    cfg = load_config(None, level=level, total_steps=total_steps, metrics__progress=False)
    run_dir = out_dir / level
    write_resolved_config(cfg, run_dir)
    started = time.perf_counter()
    trainer = Trainer(cfg, run_dir)
    summary = trainer.run()
    train_seconds = time.perf_counter() - started
    network = trainer.agent.online.eval()
    evals = {
        policy: evaluate(level, policy, episodes, 1.0, network if policy == "learned" else None)
        for policy in ("learned", "scripted", "random")
    }
    return {
        "level": level,
        "total_steps": summary["agent_steps"],
        "train_seconds": round(train_seconds, 1),
        "agent_steps_per_second": round(summary["agent_steps"] / train_seconds),
        "network": cfg.network.kind,
        "final_mean_stage": summary["mean_stage"],
        "eval": evals,
        "curve": learning_curve(run_dir / "metrics.db"),
    }


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [lv for lv in builtin_levels() if lv in results["levels"]]
    fig, axes = plt.subplots(len(levels), 1, figsize=(8, 2.6 * len(levels)), squeeze=False)
    for ax, level in zip(axes[:, 0], levels, strict=True):
        entry = results["levels"][level]
        curve = entry["curve"]
        xs = [p["agent_steps"] / 1e6 for p in curve]
        ax.plot(xs, [p["survival"] for p in curve], label="training survival (at curriculum difficulty)")
        for policy, style in (("learned", "-"), ("scripted", "--"), ("random", ":")):
            value = entry["eval"][policy]["mean_survival"]
            ax.axhline(value, linestyle=style, color="gray", label=f"{policy} eval at 1.0: {value:.0f}")
        twin = ax.twinx()
        twin.plot(xs, [p["difficulty"] for p in curve], color="tab:orange", alpha=0.6)
        twin.set_ylabel("difficulty", color="tab:orange")
        twin.set_ylim(0, 1.1)
        ax.set_title(level)
        ax.set_ylabel("steps survived")
        ax.legend(fontsize=7, loc="lower right")
    axes[-1, 0].set_xlabel("agent-steps (millions)")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", nargs="*", default=builtin_levels())
    parser.add_argument("--total-steps", type=int, help="override every level's default budget")
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes per policy")
    parser.add_argument("--out", type=Path, default=Path("runs/learning-benchmark"))
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"levels": {}}
    for level in args.levels:
        print(f"== {level}", flush=True)
        entry = run_level(level, args.total_steps, args.episodes, args.out / time.strftime("%Y%m%d-%H%M%S"))
        results["levels"][level] = entry
        for policy, ev in entry["eval"].items():
            print(
                f"   {policy:>8}: mean survival {ev['mean_survival']:.1f} / {ev['max_steps']}, "
                f"median {ev['median_survival']:.0f}, mean reward {ev['mean_reward']:.1f}",
                flush=True,
            )
        print(
            f"   trained {entry['total_steps']:,} agent-steps in {entry['train_seconds']:.0f} s "
            f"({entry['agent_steps_per_second']:,}/s)",
            flush=True,
        )
        results["machine"] = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
            ).stdout.strip(),
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1))
        plot(results)


if __name__ == "__main__":
    main()
