"""Townlet: a batched, torch-native town-life simulation for reinforcement learning."""

from townlet_env.config import ConfigError, LevelConfig, builtin_levels, load_level
from townlet_env.core import CompiledLevel, TownState, compile_level
from townlet_env.persistence import StateMismatchError
from townlet_env.vector_env import TownletVectorEnv

__version__ = "0.1.0"

__all__ = [
    "CompiledLevel",
    "ConfigError",
    "LevelConfig",
    "StateMismatchError",
    "TownState",
    "TownletVectorEnv",
    "builtin_levels",
    "compile_level",
    "load_level",
]
