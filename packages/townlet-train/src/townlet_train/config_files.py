"""The training configs that ship inside townlet-train, and `--config NAME` finding them.

Two folders, package data of the wheel (the repository's top-level `configs/` is a link here, so
there is one copy): `configs/<level>.yaml`, each built-in level's default, and
`configs/recipes/<level>_<stage>[_<variant>].yaml`, the other recipes (`_dqn`, `_ppo`,
`_ppo_from_dagger`, `_dagger_lstm`; the level's full name always). A config's name is its file
name without `.yaml`; the names are unique across both folders because every recipe name adds a
stage to a level's. `--config` takes a file path or a name, so the same command works in a clone
and in an installed wheel, where no `configs/` folder is at hand.
"""

from __future__ import annotations

from pathlib import Path

from townlet_env.config import ConfigError
from townlet_train.config import CONFIG_DIR

RECIPE_DIR = CONFIG_DIR / "recipes"


def packaged_configs() -> dict[str, Path]:
    """Every packaged config by name: the level defaults, then the recipes."""
    found = {path.stem: path for path in sorted(CONFIG_DIR.glob("*.yaml"))}
    found.update((path.stem, path) for path in sorted(RECIPE_DIR.glob("*.yaml")))
    return found


def find_config(given: str | Path | None) -> Path | None:
    """`--config`'s file: an existing file as given, else the packaged config of that name.

    A name is a bare word (`L1_full_observability_ppo`, `.yaml` optional); a path with a folder in
    it that is not a file is an error, naming the packaged configs, rather than a guess.
    """
    if given is None:
        return None
    path = Path(given)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    packaged = packaged_configs()
    if path.parent == Path(".") and name in packaged:
        return packaged[name]
    raise ConfigError(
        f"--config {given}: no such training config file, nor a packaged config's name "
        f"(the packaged ones: {', '.join(packaged) or 'none'})"
    )
