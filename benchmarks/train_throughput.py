"""Trainer throughput: agent-steps per second including learning.

    python -m benchmarks.train_throughput                      # DQN on L1 and L2, and the L1 cases below
    python -m benchmarks.train_throughput --levels --cases ppo_recipe ppo_fast --threads 1 --rounds 3

Two parts, each written to `benchmarks/results/train_throughput.json` only when it ran (the
other part's figures are kept):

- `--levels`: each level trains with its DQN config (configs/recipes/<level>_dqn.yaml, or the
  level's default configs/<level>.yaml where that is DQN) after a warm-up past
  `learning_starts`, so every timed step includes acting, env stepping, storing and the
  gradient updates the replay ratio asks for.
- `--cases` (on L1 unless named): the DQN config as the reference, PPO, DAgger (L1's default
  config), and the default DAgger configs of L4_social and L5_town (`dagger_L4_social`,
  `dagger_L5_town`). A
  PPO case is timed over whole iterations (a rollout of `rollout_steps` env steps, then
  `epochs` passes of minibatch updates), after one warm-up iteration; DAgger after its
  `learning_starts`. The cases run `--rounds` times in alternating order, so that a machine
  shared with other work slows them alike; the median of each is recorded, with agent-steps per
  CPU-second of this process (less sensitive to other work than wall-clock, but counting every
  thread) and the load average around each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from townlet_env.config.bounded_yaml import read_yaml_mapping
from townlet_train.config import CONFIG_DIR, TrainConfig, builtin_config, load_config
from townlet_train.run.loop import Trainer
from townlet_train.run.metrics import Metrics
from townlet_train.trainers import make_trainer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "train_throughput.json"
L1 = "L1_full_observability"
RECIPES = CONFIG_DIR / "recipes"
# The PPO recipe's settings once its KL term and critic warm-up are over (the last 80% of its run),
# from a fresh network instead of its DAgger student (`init_from` is dropped).
PPO_RECIPE = {"algorithm__kl_start": 0.0, "algorithm__critic_warmup": 0}
# Settings that reach 50 k agent-steps/s with learning on a 2-core CPU; their learning is unmeasured.
PPO_FAST = {
    **PPO_RECIPE,
    "env__num_envs": 1024,
    "algorithm__rollout_steps": 32,
    "algorithm__epochs": 1,
    "network__hidden": [64, 64],
    "network__field_embed": 16,
}
CASES: dict[str, tuple[Path, dict[str, Any]]] = {
    "dqn": (RECIPES / f"{L1}_dqn.yaml", {}),  # the reference
    "ppo_recipe": (RECIPES / f"{L1}_ppo_from_dagger.yaml", PPO_RECIPE),
    "ppo_fast_2_epochs": (RECIPES / f"{L1}_ppo_from_dagger.yaml", {**PPO_FAST, "algorithm__epochs": 2}),
    "ppo_fast": (RECIPES / f"{L1}_ppo_from_dagger.yaml", PPO_FAST),
    "dagger": (CONFIG_DIR / f"{L1}.yaml", {}),  # L1's default config
    # the social towns' default configs (DAgger, towns of six), to set their training time
    # beside L1's, whose whole default run is timed on docs/results.md
    "dagger_L4_social": (CONFIG_DIR / "L4_social.yaml", {}),
    "dagger_L5_town": (CONFIG_DIR / "L5_town.yaml", {}),
}


def dqn_config(level: str) -> Path | None:
    """The level's DQN recipe, else its default config (None: no built-in config)."""
    recipe = RECIPES / f"{level}_dqn.yaml"
    return recipe if recipe.is_file() else builtin_config(level)


def measure(level: str, seconds: float, device: str) -> dict[str, Any]:
    quiet = {"metrics__progress": False, "metrics__tensorboard": False}
    cfg = load_config(dqn_config(level), level=level, device=device, **quiet)
    run_dir = Path(tempfile.mkdtemp(prefix="townlet-bench-"))
    trainer = Trainer(cfg, run_dir)
    metrics = Metrics(run_dir, list(trainer.env.meter_names), tensorboard=False)
    while trainer.counters["agent_steps"] < cfg.dqn.learning_starts + cfg.env.num_envs * 20:
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
        "replay_ratio": cfg.dqn.replay_ratio,
        "batch_size": cfg.dqn.batch_size,
        "agent_steps_per_s": steps / elapsed,
        "updates_per_s": (trainer.agent.updates - start_updates) / elapsed,
        "seconds": elapsed,
    }


def case_config(name: str, device: str) -> TrainConfig:
    path, overrides = CASES[name]
    data: dict[str, Any] = read_yaml_mapping(path, TrainConfig.model_fields)
    if isinstance(data.get("algorithm"), dict):
        data["algorithm"].pop("init_from", None)
    quiet = {"metrics__progress": False, "metrics__tensorboard": False}
    return load_config(None, **{**data, "device": device, **quiet, **overrides})


def _unit(trainer: Any) -> int:
    """Env steps in one timed unit: a whole PPO iteration, or a single step for the others."""
    settings = trainer.cfg.algorithm
    return settings.rollout_steps if settings.kind == "ppo" else 1


def _warm_up(trainer: Any, metrics: Metrics) -> None:
    settings = trainer.cfg.algorithm
    if settings.kind == "dagger":
        ready = lambda: len(trainer.agent.replay) >= settings.learning_starts  # noqa: E731
    elif settings.kind == "dqn":
        ready = lambda: trainer.counters["agent_steps"] >= settings.learning_starts  # noqa: E731
    else:
        ready = lambda: trainer.agent.iterations >= 1  # noqa: E731
    while not ready():
        trainer.collect(metrics)
        trainer.learn()


def measure_case(name: str, seconds: float, device: str) -> dict[str, Any]:
    """One timed run of a case on L1, in whole units (see `_unit`), learning included."""
    path, overrides = CASES[name]
    cfg = case_config(name, device)
    run_dir = Path(tempfile.mkdtemp(prefix="townlet-bench-"))
    trainer = make_trainer(cfg, run_dir)
    metrics = Metrics(run_dir, list(trainer.env.meter_names), tensorboard=False)
    _warm_up(trainer, metrics)
    load_before = os.getloadavg()
    steps, updates = trainer.counters["agent_steps"], trainer.agent.updates
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        for _ in range(_unit(trainer)):
            trainer.collect(metrics)
            trainer.learn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    metrics.close()
    steps = trainer.counters["agent_steps"] - steps
    algorithm = cfg.algorithm.model_dump(exclude={"init_from"})
    return {
        "config": str(path.relative_to(CONFIG_DIR)),
        "overrides": overrides,
        "algorithm": algorithm,
        "network": cfg.network.model_dump(),
        "num_envs": cfg.env.num_envs,
        "agent_steps_per_s": steps / wall,
        "agent_steps_per_cpu_s": steps / cpu,
        "updates_per_s": (trainer.agent.updates - updates) / wall,
        "seconds": wall,
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
    }


def measure_cases(names: list[str], rounds: int, seconds: float, device: str) -> dict[str, Any]:
    """Every case `rounds` times, in alternating order; the median run of each (by wall-clock)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            run = measure_case(name, seconds, device)
            runs[name].append(run)
            print(
                f"  round {round_ + 1} {name:<18} {run['agent_steps_per_s']:>9,.0f} agent-steps/s "
                f"({run['agent_steps_per_cpu_s']:,.0f} per CPU-second), load {run['load_before'][0]:.1f}",
                flush=True,
            )
    cases = {}
    for name, got in runs.items():
        median = statistics.median_low(r["agent_steps_per_s"] for r in got)
        chosen = next(r for r in got if r["agent_steps_per_s"] == median)
        cases[name] = {
            **chosen,
            "runs_agent_steps_per_s": [r["agent_steps_per_s"] for r in got],
            "runs_agent_steps_per_cpu_s": [r["agent_steps_per_cpu_s"] for r in got],
        }
    return cases


def machine(device: str) -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load": list(os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", nargs="*", default=[L1, "L2_partial_observability"], help="DQN levels")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES), help="L1 cases")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the cases")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON to update (default: %(default)s)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {"levels": {}}
    if args.levels:
        results["machine"], results["levels"] = machine(args.device), {}
        for level in args.levels:
            entry = measure(level, args.seconds, args.device)
            results["levels"][level] = entry
            print(
                f"{level:<26} {entry['network']:>8}: {entry['agent_steps_per_s']:>9,.0f} agent-steps/s, "
                f"{entry['updates_per_s']:.1f} updates/s",
                flush=True,
            )
    if args.cases:
        print(f"cases, {args.rounds} alternating rounds of {args.seconds:.0f} s:", flush=True)
        results["cases"] = {
            "machine": machine(args.device),
            "rounds": args.rounds,
            "runs": measure_cases(args.cases, args.rounds, args.seconds, args.device),
        }
        for name, run in results["cases"]["runs"].items():
            print(f"{name:<18} median {run['agent_steps_per_s']:>9,.0f} agent-steps/s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
