"""Stable-Baselines3 glue, at its documented import path (the code is in `townlet_env.envs.sb3`)."""

from townlet_env.envs.sb3 import SB3VecEnv, SuperSuitSB3Fix

__all__ = ["SB3VecEnv", "SuperSuitSB3Fix"]
