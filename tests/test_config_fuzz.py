"""Fuzzing the settings files: whatever a user writes, the result is a clear error or a working thing.

Each case starts from a built-in level pack file or training config, breaks its YAML tree (values
replaced by NaN, infinities, huge or negative numbers, strings, booleans, null, lists, mappings,
deep nesting, alias bombs, a value that contains itself; keys deleted or added; list items
repeated; the text itself cut or scribbled on), writes it and loads it. It must end in either

* one `ConfigError` whose every line (one per problem, at most `MAX_LINES`) names a file of the
  pack and is of bounded length, or
* for a pack, a level that plays: a `TownletVectorEnv` of 4 slots resets and steps 20 random
  legal actions with finite observations and rewards; for a training config, a `TrainConfig`
  whose floats are all finite.

Anything else (a traceback, a hang, NaN in a step) fails the test with the file that caused it.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from townlet_env import ConfigError, TownletVectorEnv, builtin_levels
from townlet_env.config.loader import BUILTIN_DIR, OPTIONAL_PACK_FILES
from townlet_env.config.messages import MAX_LINE, MAX_LINES
from townlet_env.config.schema import PACK_FILES
from townlet_env.core import compile_level
from townlet_env.core.town import default_agents_per_town
from townlet_train.config import CONFIG_DIR, TrainConfig, load_config

FUZZ = settings(
    max_examples=500,  # about 25 s for both tests on two shared cores; the issue asks for hundreds
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # explaining takes minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- values a careless or hostile user writes ------------------------------------------------

ODD_SCALARS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 2**31, 2**64, -1, 0, True, False]
ODD_SCALARS += [None, "", "0.5", "1", "yes", "no", "true", "1e-3", "always", "energy", "move", "full"]
scalars = st.one_of(
    st.sampled_from(ODD_SCALARS),
    st.floats(-2.0, 2.0),  # plausible numbers: many of these validate, and must then play
    st.integers(-3, 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.just("x" * 5000),
)


def nested(depth: int) -> list[Any]:
    value: list[Any] = [0.5]
    for _ in range(depth):
        value = [value]
    return value


def alias_bomb(levels: int) -> list[Any]:
    """A list of 9 references to a list of 9 references ...: YAML writes it as anchors and aliases."""
    value: list[Any] = ["lol"] * 9
    for _ in range(levels):
        value = [value] * 9
    return value


def self_containing() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)  # written as `&id001 [1, *id001]`
    return value


values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=8), scalars, max_size=3),
    st.integers(1, 60).map(nested),
    st.integers(0, 12).map(alias_bomb),
    st.builds(self_containing),
)

# --- breaking a tree -------------------------------------------------------------------------


def paths(tree: Any, prefix: tuple[Any, ...] = (), seen: set[int] | None = None) -> list[tuple[Any, ...]]:
    """Where an edit can go; a shared list or mapping (an alias, or a bomb) is entered once."""
    seen = set() if seen is None else seen
    found = [prefix]
    if id(tree) in seen:
        return found
    seen.add(id(tree))
    children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    for key, child in children:
        found += paths(child, (*prefix, key), seen)
    return found


def at(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def mutate(data: st.DataObject, tree: Any) -> Any:
    """One edit of the tree; returns the new root (the root itself may be replaced)."""
    path = data.draw(st.sampled_from(paths(tree)), label="path")
    edit = data.draw(st.sampled_from(["replace", "replace", "delete", "add_key", "repeat", "share"]))
    if not path:  # the root: only a replacement makes sense
        return data.draw(values, label="root")
    parent, key = at(tree, path[:-1]), path[-1]
    if edit == "replace":
        parent[key] = data.draw(values, label="value")
    elif edit == "delete":
        del parent[key]
    elif edit == "add_key" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=10), label="new key")] = data.draw(values, label="value")
    elif edit == "repeat" and isinstance(parent, list):
        parent.append(parent[key])  # a second item of the same name
    elif edit == "share":
        parent[key] = at(tree, data.draw(st.sampled_from(paths(tree))))  # written as an alias
    return tree


def render(data: st.DataObject, tree: Any) -> str:
    try:
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    except RecursionError:  # PyYAML's own writer recurses: a value nested 60 deep and shared
        text = "a: b\n"
    if data.draw(st.integers(0, 4), label="damage text") == 0:
        cut = data.draw(st.integers(0, len(text)), label="at")
        scribble = data.draw(st.text("[]{}:,-&*!|>'\"#%@` \t\nx9.", max_size=6), label="scribble")
        text = text[:cut] + scribble + text[cut + data.draw(st.integers(0, 3)) :]
    return text


def broken(data: st.DataObject, path: Path) -> str:
    tree = yaml.safe_load(path.read_text())
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        tree = mutate(data, tree)
    return render(data, tree)


# --- the checks ------------------------------------------------------------------------------


def check_message(error: ConfigError, where: Path, text: str) -> None:
    lines = str(error).splitlines()
    assert 1 <= len(lines) <= MAX_LINES, str(error)
    for line in lines:
        assert line.startswith(str(where)), f"{line!r} does not name a file under {where}\n{text[:2000]}"
        assert len(line) <= len(str(where)) + len("/observation.yaml: ") + MAX_LINE + 200, line
        assert "Traceback" not in line


def plays(pack: Path, seed: int) -> None:
    k = default_agents_per_town(compile_level(pack))  # whole towns: six agents on a social level
    env = TownletVectorEnv(pack, num_envs=2 * k, agents_per_town=k)
    obs, info = env.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(20):
        actions = info["action_mask"].float().multinomial(1, generator=generator).squeeze(1)
        obs, reward, _, _, info = env.step(actions)
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.data(), level=st.sampled_from(builtin_levels()))
def test_a_broken_pack_is_an_error_or_plays(workdir: Path, data: st.DataObject, level: str) -> None:
    pack = workdir / "pack"
    shutil.rmtree(pack, ignore_errors=True)
    shutil.copytree(BUILTIN_DIR / level, pack)
    present = [f for f in (*PACK_FILES, *OPTIONAL_PACK_FILES) if (pack / f).is_file()]
    file = data.draw(st.sampled_from(present), label="file")
    text = broken(data, pack / file)
    (pack / file).write_text(text, encoding="utf-8")
    try:
        compile_level(pack)
    except ConfigError as error:
        check_message(error, pack, text)
        event("refused")
        return
    event("plays")
    plays(pack, seed=data.draw(st.integers(0, 2**32), label="seed"))


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))))
def test_a_broken_training_config_is_an_error_or_valid(workdir: Path, data: st.DataObject, name: str) -> None:
    path = workdir / "train.yaml"
    text = broken(data, CONFIG_DIR / name)
    path.write_text(text, encoding="utf-8")
    try:
        config = load_config(path)
    except ConfigError as error:
        check_message(error, path, text)
        event("refused")
        return
    event("valid")
    assert isinstance(config, TrainConfig)
    floats = [v for v in _leaves(config.model_dump()) if isinstance(v, float)]
    assert all(math.isfinite(v) for v in floats)


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    if isinstance(tree, list | tuple):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]
