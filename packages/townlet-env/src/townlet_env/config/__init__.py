"""Level packs: YAML files validated into a `LevelConfig`."""

from townlet_env.config.loader import (
    ConfigError,
    LevelConfig,
    builtin_levels,
    load_level,
    resolve_pack,
)

__all__ = ["ConfigError", "LevelConfig", "builtin_levels", "load_level", "resolve_pack"]
