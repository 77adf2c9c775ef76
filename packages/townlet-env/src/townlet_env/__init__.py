"""Townlet: a batched, torch-native town-life simulation for reinforcement learning."""

from townlet_env.config import ConfigError, LevelConfig, builtin_levels, load_level
from townlet_env.core import (
    CompiledLevel,
    MemoryBudgetError,
    StateMismatchError,
    Town,
    TownState,
    compile_level,
)
from townlet_env.envs.gym_env import TorchToNumpy, TownletEnv
from townlet_env.envs.pettingzoo_env import TownletParallelEnv, env, parallel_env
from townlet_env.envs.vector_env import TownletVectorEnv
from townlet_env.registration import register_envs

__version__ = "0.1.0"

register_envs()

__all__ = [
    "CompiledLevel",
    "ConfigError",
    "LevelConfig",
    "MemoryBudgetError",
    "StateMismatchError",
    "TorchToNumpy",
    "Town",
    "TownState",
    "TownletEnv",
    "TownletParallelEnv",
    "TownletVectorEnv",
    "builtin_levels",
    "compile_level",
    "env",
    "load_level",
    "parallel_env",
    "register_envs",
]
