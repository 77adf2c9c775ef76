"""The layers of docs/architecture.md, checked on the source: who may import whom, no cycles, and
no adapter that sequences the core itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {
    "townlet_env": ROOT / "packages" / "townlet-env" / "src" / "townlet_env",
    "townlet_train": ROOT / "packages" / "townlet-train" / "src" / "townlet_train",
}

TRAIN_BASE = {
    "townlet_env",
    "townlet_env.cli_errors",
    "townlet_env.config",
    "townlet_env.core",
    "townlet_env.files",
    "townlet_env.policies",
    "townlet_env.recording",
    "townlet_env.observer",
    # what every layer of townlet_train may read: its config, exploration schedules, the dataset
    # format and the checkpoint file format
    "townlet_train.config",
    "townlet_train.config_layout",
    "townlet_train.exploration",
    "townlet_train.dataset",
    "townlet_train.run.checkpoint",
}
TRAIN_LAYERS = {
    "townlet_train.models",
    "townlet_train.policy",
    "townlet_train.data",
    "townlet_train.algos",
    "townlet_train.run",
    "townlet_train.evaluate",
}

# layer -> the layers its modules may import (besides their own)
ALLOWED = {
    "townlet_env.config": set(),
    "townlet_env.core": {"townlet_env.config"},
    "townlet_env.testing": {"townlet_env.config", "townlet_env.core"},
    "townlet_env.envs": {"townlet_env.config", "townlet_env.core"},
    "townlet_env.registration": set(),
    "townlet_env.cli_errors": set(),  # the one-line `error:` contract of both command lines
    "townlet_env.describe": {"townlet_env.config", "townlet_env.core"},  # what `inspect` shows
    "townlet_env.policies": {"townlet_env.config", "townlet_env.core"},
    "townlet_env.files": set(),
    "townlet_env.recording": {"townlet_env.config", "townlet_env.core", "townlet_env.files"},
    "townlet_env.recording.commands": {
        "townlet_env.config",
        "townlet_env.core",
        "townlet_env.files",
        "townlet_env.policies",
        "townlet_env.recording",
    },
    "townlet_env.observer": {
        "townlet_env.config",
        "townlet_env.core",
        "townlet_env.files",
        "townlet_env.recording",
    },
    "townlet_env.observer.cli": {"townlet_env.core", "townlet_env.observer", "townlet_env.policies"},
    "townlet_env.cli": {
        "townlet_env",
        "townlet_env.cli_errors",
        "townlet_env.describe",
        "townlet_env.observer",
        "townlet_env.observer.cli",
        "townlet_env.config",
        "townlet_env.core",
        "townlet_env.files",
        "townlet_env.recording",
        "townlet_env.recording.commands",
    },
    "townlet_env.interop": {"townlet_env.envs"},
    "townlet_env": {"townlet_env.config", "townlet_env.core", "townlet_env.envs", "townlet_env.registration"},
    # townlet_train's own layers (docs/architecture.md): models, policy, data, algos, run; the
    # modules at the package's top (config, cli, evaluate, ...) may import any of them
    "townlet_train": {*TRAIN_BASE, *TRAIN_LAYERS},
    "townlet_train.run.checkpoint": set(),  # the checkpoint file format, read by every layer
    "townlet_train.config": {*TRAIN_BASE},
    "townlet_train.config_layout": set(),
    "townlet_train.exploration": {*TRAIN_BASE},
    "townlet_train.dataset": {*TRAIN_BASE},
    "townlet_train.evaluate": {*TRAIN_BASE, "townlet_train.models", "townlet_train.policy"},
    "townlet_train.models": TRAIN_BASE,
    "townlet_train.policy": {*TRAIN_BASE, "townlet_train.models"},
    "townlet_train.data": {*TRAIN_BASE, "townlet_train.models"},
    "townlet_train.algos": {
        *TRAIN_BASE,
        "townlet_train.models",
        "townlet_train.policy",
        "townlet_train.data",
    },
    "townlet_train.run": {*TRAIN_BASE, *TRAIN_LAYERS},
}
# What a Town does once; an adapter that imports these is sequencing the core by hand again.
SEQUENCING = {"step", "observe", "action_mask", "autoreset", "initial_state", "regenerate", "respawn"}


def modules() -> dict[str, Path]:
    found = {}
    for package, base in SOURCES.items():
        for path in base.rglob("*.py"):
            parts = [package, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, names: set[str]) -> list[tuple[str, set[str]]]:
    """(module imported, the names taken from it) for every import, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, set()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            taken = {alias.name for alias in node.names}
            submodules = {f"{node.module}.{name}" for name in taken} & names
            rest = taken - {m.rsplit(".", 1)[1] for m in submodules}
            if rest:  # `from package import submodule` alone does not depend on the package's __init__
                out.append((node.module, rest))
            out += [(sub, set()) for sub in submodules]
    return [(target, taken) for target, taken in out if target.split(".")[0] in SOURCES]


def layer_of(module: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer of ALLOWED: add it there and to architecture.md")


def graph() -> dict[str, set[str]]:
    found = modules()
    names = set(found)
    return {module: {target for target, _ in imports_of(path, names)} for module, path in found.items()}


def test_every_import_goes_down_the_layers() -> None:
    wrong = []
    for module, targets in graph().items():
        layer = layer_of(module)
        for target in targets:
            if layer_of(target) not in ALLOWED[layer] | {layer}:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers of docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_townlet_env_never_imports_townlet_train() -> None:
    """The lower package never reaches up into the one built on it, lazily or not: no exception.
    Recording a trained agent is `townlet-train eval --record`."""
    found = modules()
    names = set(found)
    wrong = [
        f"{module} -> {target}"
        for module, path in found.items()
        if module.split(".")[0] == "townlet_env"
        for target, _ in imports_of(path, names)
        if target.split(".")[0] == "townlet_train"
    ]
    assert not wrong, "townlet_env imports townlet_train:\n" + "\n".join(sorted(wrong))
    assert not any(
        "townlet_train" in layer
        for env_layer, layer_set in ALLOWED.items()
        if env_layer.startswith("townlet_env")
        for layer in layer_set
    ), "ALLOWED must not let a townlet_env layer import townlet_train"


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if target not in edges:
                continue
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target] if target in path else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_adapters_and_the_trainer_leave_sequencing_to_town() -> None:
    found = modules()
    names = set(found)
    offenders = []
    for module, path in found.items():
        if not (module.startswith("townlet_env.envs") or module.startswith("townlet_train")):
            continue
        for target, taken in imports_of(path, names):
            if target.startswith("townlet_env.core") and taken & SEQUENCING:
                offenders.append(f"{module}: {sorted(taken & SEQUENCING)} from {target}")
    assert not offenders, "\n".join(offenders)
