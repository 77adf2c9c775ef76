"""Trainer throughput: agent-steps per second including learning, at the default replay ratio.

    python benchmarks/train_throughput.py                    # L1 (dueling MLP) and L2 (LSTM)
    python benchmarks/train_throughput.py --levels L1_full_observability --seconds 60

Each level trains with its default config (configs/<level>.yaml) after a warm-up past
`learning_starts`, so every timed step includes acting, env stepping, storing and the gradient
updates the replay ratio asks for. Writes `benchmarks/results/train_throughput.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from townlet_train.config import load_config
from townlet_train.loop import Trainer
from townlet_train.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "train_throughput.json"


def measure(level: str, seconds: float, device: str) -> dict[str, Any]:
    cfg = load_config(None, level=level, device=device, metrics__progress=False, metrics__tensorboard=False)
    run_dir = Path(tempfile.mkdtemp(prefix="townlet-bench-"))
    trainer = Trainer(cfg, run_dir)
    metrics = Metrics(run_dir, list(trainer.env.meter_names), tensorboard=False)
    while trainer.counters["agent_steps"] < cfg.algorithm.learning_starts + cfg.env.num_envs * 20:
        trainer.collect(metrics)
        trainer.learn()
    start_steps, start_updates = trainer.counters["agent_steps"], trainer.agent.updates
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        trainer.collect(metrics)
        trainer.learn()
    elapsed = time.perf_counter() - start
    metrics.close()
    steps = trainer.counters["agent_steps"] - start_steps
    return {
        "network": cfg.network.kind,
        "num_envs": cfg.env.num_envs,
        "replay_ratio": cfg.algorithm.replay_ratio,
        "batch_size": cfg.algorithm.batch_size,
        "agent_steps_per_s": steps / elapsed,
        "updates_per_s": (trainer.agent.updates - start_updates) / elapsed,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", nargs="*", default=["L1_full_observability", "L2_partial_observability"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    results: dict[str, Any] = {
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": args.device,
            "cpu": platform.processor() or platform.machine(),
            "commit": commit.stdout.strip(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
        "levels": {},
    }
    for level in args.levels:
        entry = measure(level, args.seconds, args.device)
        results["levels"][level] = entry
        print(
            f"{level:<26} {entry['network']:>8}: {entry['agent_steps_per_s']:>9,.0f} agent-steps/s, "
            f"{entry['updates_per_s']:.1f} updates/s",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
