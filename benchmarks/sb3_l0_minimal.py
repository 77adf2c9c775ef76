"""Train sb3-contrib's MaskablePPO on L0_minimal and compare its episode length with random play.

    python -m benchmarks.sb3_l0_minimal                      # the recorded run (a few minutes, CPU)
    python -m benchmarks.sb3_l0_minimal --timesteps 20000    # quicker, weaker

L0_minimal: a 3x3 town with one Bed; energy drains 0.01 per tick (0.005 more per move or
INTERACT), the agent dies at 0, and 0.25 money pays for five Bed uses of +0.5 energy. An agent
that never sleeps lives about 100 ticks; one that sleeps only when tired lives about 347.

The agent trains through `townlet_env.interop.SB3VecEnv` (the torch vector env seen by SB3 as
numpy envs). Evaluation runs `--eval-episodes` fresh episodes per policy, one per slot of a
separately seeded vector env, and reports their mean length:
  - trained: the MaskablePPO policy, sampling from its masked distribution
  - random_masked: uniform over the legal actions
  - random: uniform over all actions (a masked choice runs as WAIT)
  - scripted: walk to the Bed, sleep only when energy <= 0.5 (a hand-written near-optimum)
Results go to benchmarks/results/sb3_l0_minimal.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import townlet_env
from townlet_env import TownletVectorEnv

LEVEL = "L0_minimal"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sb3_l0_minimal.json"


def evaluate(policy: Any, episodes: int, seed: int) -> dict[str, float]:
    """Mean and spread of the first episode length of each of `episodes` slots."""
    env = TownletVectorEnv(LEVEL, num_envs=episodes)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    lengths = np.zeros(episodes, dtype=np.int64)
    returns = np.zeros(episodes, dtype=np.float64)
    finished = np.zeros(episodes, dtype=bool)
    while not finished.all():
        actions = policy(obs.numpy(), info["action_mask"].numpy(), rng)
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        returns += np.where(finished, 0.0, reward.numpy())
        done = (terminated | truncated).numpy() & ~finished
        lengths[done] = info["final_episode_step"].numpy()[done]
        finished |= done
    return {
        "mean_episode_length": float(lengths.mean()),
        "std_episode_length": float(lengths.std()),
        "min_episode_length": int(lengths.min()),
        "max_episode_length": int(lengths.max()),
        "mean_return": float(returns.mean()),
        "episodes": episodes,
    }


def random_masked(obs: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(m)) for m in masks])


def random_any(obs: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, masks.shape[1], size=masks.shape[0])


def scripted(obs: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Walk to the Bed (UP, DOWN, LEFT, RIGHT by its offset), INTERACT there when energy <= 0.5."""
    level = townlet_env.compile_level(LEVEL)
    layout, names = level.layout, level.action_names
    energy = obs[:, layout["meters"].offset]
    bed = obs[:, layout["affordances"].slice]  # one channel: dx, dy, present
    dx, dy = bed[:, 0], bed[:, 1]
    interact = names.index("INTERACT")
    actions = np.full(len(obs), names.index("WAIT"))
    actions[(energy <= 0.5) & masks[:, interact]] = interact
    actions[dy < -1e-6] = names.index("UP")
    actions[dy > 1e-6] = names.index("DOWN")
    actions[dx < -1e-6] = names.index("LEFT")
    actions[dx > 1e-6] = names.index("RIGHT")
    return actions


def versions() -> dict[str, str]:
    import sb3_contrib
    import stable_baselines3

    return {
        "townlet_env": townlet_env.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--gamma", type=float, default=0.999)
    parser.add_argument("--n-epochs", type=int, default=10)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    args = parser.parse_args(argv)

    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import VecMonitor

    from townlet_env.interop import SB3VecEnv

    torch.set_num_threads(1)  # a small MLP: one thread is fastest, and it shares the machine politely
    venv = VecMonitor(SB3VecEnv(TownletVectorEnv(LEVEL, num_envs=args.envs)))
    model = MaskablePPO(
        "MlpPolicy",
        venv,
        n_steps=256,
        batch_size=512,
        n_epochs=args.n_epochs,
        gamma=args.gamma,
        gae_lambda=0.95,
        ent_coef=args.ent_coef,
        learning_rate=3e-4,
        seed=args.seed,
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps)
    train_seconds = time.perf_counter() - start

    def trained(obs: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        actions, _ = model.predict(obs, action_masks=masks, deterministic=False)
        return actions

    eval_seed = args.seed + 1000
    results = {
        "level": LEVEL,
        "algorithm": "sb3_contrib.MaskablePPO (MlpPolicy)",
        "timesteps": args.timesteps,
        "num_envs": args.envs,
        "seed": args.seed,
        "hyperparameters": {
            "n_steps": 256,
            "batch_size": 512,
            "n_epochs": args.n_epochs,
            "gamma": args.gamma,
            "gae_lambda": 0.95,
            "ent_coef": args.ent_coef,
            "learning_rate": 3e-4,
        },
        "train_seconds": round(train_seconds, 1),
        "max_steps": 1000,
        "policies": {
            "trained": evaluate(trained, args.eval_episodes, eval_seed),
            "random_masked": evaluate(random_masked, args.eval_episodes, eval_seed),
            "random": evaluate(random_any, args.eval_episodes, eval_seed),
            "scripted": evaluate(scripted, args.eval_episodes, eval_seed),
        },
        "versions": versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for name, stats in results["policies"].items():
        print(
            f"{name:>14}: mean episode length {stats['mean_episode_length']:.1f} "
            f"(std {stats['std_episode_length']:.1f}, {stats['episodes']} episodes)"
        )
    print(f"trained {args.timesteps} steps in {train_seconds:.0f} s; results in {args.out}")
    return results


if __name__ == "__main__":
    main()
