"""A policy-gradient reference: sb3-contrib's MaskablePPO on a level, evaluated like our DQN.

    python benchmarks/sb3_ppo.py                                   # L1, 5 M steps (about 20 min, CPU)
    python benchmarks/sb3_ppo.py --level L0_minimal --timesteps 300000 --gamma 0.999

The agent trains through `townlet_env.interop.SB3VecEnv` at full difficulty (no curriculum),
then its greedy policy (the most likely legal action) plays `--episodes` episodes through
`townlet_train.evaluate`, the same evaluation as `benchmarks/learning.py`: same seed, same
towns, difficulty 1.0, with the `--details` breakdown. This tells whether a result of our DQN
is a limit of the level or of the learner. Results are merged per level into
benchmarks/results/sb3_ppo.json and shown in docs/results.md by `results_page.py`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from sb3_l0_minimal import versions  # the scripts run from benchmarks/, beside each other
from townlet_env import TownletVectorEnv

RESULTS = Path(__file__).resolve().parent / "results" / "sb3_ppo.json"


class GreedyLogits(torch.nn.Module):
    """The PPO policy as a network of action scores, so that `evaluate` can act greedily with it."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.policy.get_distribution(obs).distribution.logits


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--level", default="L1_full_observability")
    parser.add_argument("--timesteps", type=int, default=5_000_000)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import VecMonitor

    from townlet_env.interop import SB3VecEnv
    from townlet_train.evaluate import evaluate

    torch.set_num_threads(args.threads)
    settings = {
        "n_steps": 256,
        "batch_size": 2048,
        "n_epochs": 4,
        "gamma": args.gamma,
        "gae_lambda": 0.95,
        "ent_coef": 0.01,
        "learning_rate": 3e-4,
    }
    net_arch = [256, 256]
    venv = VecMonitor(SB3VecEnv(TownletVectorEnv(args.level, num_envs=args.envs)))
    model = MaskablePPO(
        "MlpPolicy", venv, seed=args.seed, verbose=0, policy_kwargs={"net_arch": net_arch}, **settings
    )
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps)
    train_seconds = time.perf_counter() - start
    policy = GreedyLogits(model.policy.eval())
    evals = {
        "learned": evaluate(args.level, "learned", args.episodes, 1.0, policy, details=True),
        "scripted": evaluate(args.level, "scripted", args.episodes, 1.0),
        "random": evaluate(args.level, "random", args.episodes, 1.0),
    }
    entry = {
        "level": args.level,
        "algorithm": "sb3_contrib.MaskablePPO (MlpPolicy), greedy evaluation",
        "timesteps": args.timesteps,
        "num_envs": args.envs,
        "seed": args.seed,
        "hyperparameters": {**settings, "net_arch": net_arch},
        "train_seconds": round(train_seconds, 1),
        "steps_per_second": round(args.timesteps / train_seconds),
        "eval": evals,
        "versions": {**versions(), "threads": args.threads},
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"levels": {}}
    results["levels"][args.level] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name, ev in evals.items():
        print(f"{name:>9}: mean survival {ev['mean_survival']:.1f} / {ev['max_steps']}")
    print(f"trained {args.timesteps:,} steps in {train_seconds:.0f} s; results in {RESULTS}")
    return entry


if __name__ == "__main__":
    main()
