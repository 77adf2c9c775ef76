"""Reference learners from stable-baselines3 on a level, evaluated like our DQN.

    python -m benchmarks.sb3_reference                          # MaskablePPO on L1, 5 M steps (~20 min)
    python -m benchmarks.sb3_reference --algorithm dqn          # SB3's DQN on L1, 2 M steps (~30 min)
    python -m benchmarks.sb3_reference --level L0_minimal --timesteps 300000 --gamma 0.999

The agent trains through `townlet_env.interop.SB3VecEnv` at full difficulty (no curriculum),
then its greedy policy plays `--episodes` episodes through `townlet_train.evaluate`, the same
evaluation as `benchmarks/learning.py`: same seed, same towns, difficulty 1.0, masked greedy
actions, with the `--details` breakdown. This tells whether a result of our DQN is a limit of
the level, of DQN, or of our implementation of it:

- `ppo`: sb3-contrib's MaskablePPO (a policy-gradient learner that sees the action masks);
- `dqn`: stable-baselines3's DQN, an independent DQN implementation. It has no action masks, so
  it trains on all actions (a masked one runs as WAIT) and only its evaluation is masked.

Results are merged per algorithm and level into benchmarks/results/sb3_reference.json and shown
in docs/results.md by `results_page.py`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.sb3_l0_minimal import versions
from townlet_env import TownletVectorEnv

RESULTS = Path(__file__).resolve().parent / "results" / "sb3_reference.json"
NET_ARCH = [256, 256]

# (description, default agent-steps, default slots, hyperparameters) per algorithm
ALGORITHMS: dict[str, tuple[str, int, int, dict[str, Any]]] = {
    "ppo": (
        "sb3_contrib.MaskablePPO (MlpPolicy), greedy evaluation",
        5_000_000,
        64,
        {
            "n_steps": 256,
            "batch_size": 2048,
            "n_epochs": 4,
            "gae_lambda": 0.95,
            "ent_coef": 0.01,
            "learning_rate": 3e-4,
        },
    ),
    "dqn": (
        "stable_baselines3.DQN (MlpPolicy, no action masks in training), greedy evaluation",
        2_000_000,
        16,
        {
            # 2 updates of 64 per step of 16 slots: each transition is sampled 8 times, eight
            # times our default's replay ratio, as in SB3's own Atari settings
            "learning_rate": 2.5e-4,
            "buffer_size": 300_000,
            "learning_starts": 20_000,
            "batch_size": 64,
            "train_freq": 1,
            "gradient_steps": 2,
            "target_update_interval": 10_000,
            "exploration_fraction": 0.2,
            "exploration_final_eps": 0.02,
        },
    ),
}


class GreedyScores(torch.nn.Module):
    """An SB3 policy as a network of action scores (PPO logits, DQN Q-values), so that
    `evaluate` can act greedily with it."""

    def __init__(self, policy: Any, algorithm: str) -> None:
        super().__init__()
        self.policy, self.algorithm = policy, algorithm

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.algorithm == "dqn":
                return self.policy.q_net(obs)
            return self.policy.get_distribution(obs).distribution.logits


def build_model(algorithm: str, venv: Any, hyperparameters: dict[str, Any], seed: int) -> Any:
    kwargs = {"seed": seed, "verbose": 0, "policy_kwargs": {"net_arch": NET_ARCH}, **hyperparameters}
    if algorithm == "dqn":
        from stable_baselines3 import DQN

        return DQN("MlpPolicy", venv, **kwargs)
    from sb3_contrib import MaskablePPO

    return MaskablePPO("MlpPolicy", venv, **kwargs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="ppo")
    parser.add_argument("--level", default="L1_full_observability")
    parser.add_argument("--timesteps", type=int, help="agent-steps (default: 5 M for ppo, 2 M for dqn)")
    parser.add_argument("--envs", type=int, help="agent slots (default: 64 for ppo, 16 for dqn)")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    description, default_steps, default_envs, settings = ALGORITHMS[args.algorithm]
    timesteps = default_steps if args.timesteps is None else args.timesteps
    envs = default_envs if args.envs is None else args.envs
    hyperparameters = {**settings, "gamma": args.gamma}  # what the model gets is what is recorded

    from stable_baselines3.common.vec_env import VecMonitor

    from townlet_env.interop import SB3VecEnv
    from townlet_train.evaluate import evaluate

    torch.set_num_threads(args.threads)
    venv = VecMonitor(SB3VecEnv(TownletVectorEnv(args.level, num_envs=envs)))
    model = build_model(args.algorithm, venv, hyperparameters, args.seed)
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    train_seconds = time.perf_counter() - start
    policy = GreedyScores(model.policy.eval(), args.algorithm)
    evals = {
        "learned": evaluate(args.level, "learned", args.episodes, 1.0, policy, details=True),
        "scripted": evaluate(args.level, "scripted", args.episodes, 1.0),
        "random": evaluate(args.level, "random", args.episodes, 1.0),
    }
    entry = {
        "level": args.level,
        "algorithm": description,
        "timesteps": timesteps,
        "num_envs": envs,
        "seed": args.seed,
        "hyperparameters": {**hyperparameters, "net_arch": NET_ARCH},
        "train_seconds": round(train_seconds, 1),
        "steps_per_second": round(timesteps / train_seconds),
        "eval": evals,
        "versions": {**versions(), "threads": args.threads},
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}
    results["runs"][f"{args.algorithm}/{args.level}"] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name, ev in evals.items():
        print(f"{name:>9}: mean survival {ev['mean_survival']:.1f} / {ev['max_steps']}")
    print(f"trained {timesteps:,} steps in {train_seconds:.0f} s; results in {RESULTS}")
    return entry


if __name__ == "__main__":
    main()
