"""Level packs: YAML files validated into a `LevelConfig`."""

from townlet_env.config.loader import (
    ConfigError,
    LevelConfig,
    builtin_levels,
    load_level,
    resolve_pack,
)
from townlet_env.config.schema import StrictModel

__all__ = ["ConfigError", "LevelConfig", "StrictModel", "builtin_levels", "load_level", "resolve_pack"]
