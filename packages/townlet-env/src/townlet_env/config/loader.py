"""Load a level pack (a directory of YAML files) into a validated `LevelConfig`.

Every problem becomes one `ConfigError` whose message names the file, the field path and what
is allowed, so a user can fix a pack without reading a traceback.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from townlet_env.config.schema import (
    PACK_FILES,
    ActionsFile,
    AffordancesFile,
    CascadesFile,
    MetersFile,
    ObservationFile,
    RewardFile,
    WorldFile,
)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "levels"


class ConfigError(ValueError):
    """A level pack or setting is invalid; the message says where and what is allowed."""


@dataclass(frozen=True)
class LevelConfig:
    name: str
    source: Path
    meters: MetersFile
    cascades: CascadesFile
    affordances: AffordancesFile
    world: WorldFile
    actions: ActionsFile
    reward: RewardFile
    observation: ObservationFile

    @property
    def meter_names(self) -> list[str]:
        return [m.name for m in self.meters.meters]

    def content_hash(self) -> str:
        """SHA-256 of the validated content: the same rules give the same hash wherever they live."""
        payload = {
            file.removesuffix(".yaml"): getattr(self, file.removesuffix(".yaml")).model_dump(mode="json")
            for file in PACK_FILES
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def builtin_levels() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "world.yaml").is_file())


def resolve_pack(level: str | Path) -> Path:
    """A built-in level name or a path to a pack directory."""
    path = Path(level)
    if path.is_dir():
        return path.resolve()
    if str(level) in builtin_levels():
        return BUILTIN_DIR / str(level)
    raise ConfigError(
        f"level '{level}' is neither a pack directory nor a built-in level "
        f"(built-in: {', '.join(builtin_levels())})"
    )


def load_level(level: str | Path) -> LevelConfig:
    pack = resolve_pack(level)
    present = {p.name for p in pack.glob("*.y*ml")}
    unknown = sorted(present - set(PACK_FILES))
    if unknown:
        raise ConfigError(
            f"{pack / unknown[0]}: unknown file in level pack (allowed: {', '.join(PACK_FILES)})"
        )
    parsed: dict[str, Any] = {}
    for file, model in PACK_FILES.items():
        parsed[file.removesuffix(".yaml")] = _load_file(pack / file, model)
    config = LevelConfig(name=pack.name, source=pack, **parsed)
    _cross_check(config)
    return config


def _load_file(path: Path, model: type[BaseModel]) -> BaseModel:
    if not path.is_file():
        raise ConfigError(f"{path}: missing (a level pack needs {', '.join(PACK_FILES)})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, model, exc)) from None


def _describe(path: Path, model: type[BaseModel], exc: ValidationError) -> str:
    """One line per problem: `file: field.path: what is wrong (allowed: ...)`."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = _dotted(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = ", ".join(owner.model_fields) if owner else "?"
            lines.append(f"{path}: {where}: unknown field (allowed: {allowed})")
        elif err["type"] == "missing":
            lines.append(f"{path}: {where}: required field missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {where}: {msg} (got {err.get('input')!r})")
    return "\n".join(lines)


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], loc: list[Any]) -> type[BaseModel] | None:
    """Walk the model classes along an error location to find the model that owns a field."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = _inner(current.model_fields[part].annotation)
        else:  # a discriminated-union tag such as 'product'
            current = next((t for t in _members(current) if _tag(t) == part), current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _members(tp: Any) -> list[Any]:
    return [_inner(t) for t in typing.get_args(tp)] if _is_union(tp) else [tp]


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _tag(tp: Any) -> Any:
    field = getattr(tp, "model_fields", {}).get("kind")
    return typing.get_args(field.annotation)[0] if field else None


def _inner(tp: Any) -> Any:
    """list[X] -> X, X | None -> X, Annotated[X, ...] -> X; unions of models stay unions."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (list, tuple):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif _is_union(tp):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


# --- checks across files -----------------------------------------------------------------------


def _cross_check(cfg: LevelConfig) -> None:
    meters = cfg.meter_names
    pack = cfg.source

    def need_meter(file: str, where: str, name: str) -> None:
        if name not in meters:
            raise ConfigError(
                f"{pack / file}: {where}: unknown meter '{name}' (meters: {', '.join(meters)})"
            )

    for i, mod in enumerate(cfg.cascades.modulations):
        need_meter("cascades.yaml", f"modulations[{i}].source", mod.source)
        need_meter("cascades.yaml", f"modulations[{i}].target", mod.target)
    for g, group in enumerate(cfg.cascades.groups):
        for c, cas in enumerate(group.cascades):
            need_meter("cascades.yaml", f"groups[{g}].cascades[{c}].source", cas.source)
            need_meter("cascades.yaml", f"groups[{g}].cascades[{c}].target", cas.target)
            if cas.source == cas.target:
                raise ConfigError(
                    f"{pack / 'cascades.yaml'}: groups[{g}].cascades[{c}]: a meter cannot cascade "
                    f"into itself ('{cas.source}')"
                )
    for i, aff in enumerate(cfg.affordances.affordances):
        for field in ("cost", "effects", "completion"):
            for name in getattr(aff, field):
                need_meter("affordances.yaml", f"affordances[{i}].{field}.{name}", name)
    for i, act in enumerate(cfg.actions.actions):
        for name in act.effects:
            need_meter("actions.yaml", f"actions[{i}].effects.{name}", name)
    _check_reward(cfg, need_meter)
    _check_observation(cfg)
    _check_world(cfg)
    _check_cycles(cfg)


def _check_reward(cfg: LevelConfig, need_meter: Any) -> None:
    spec = cfg.reward.reward
    names = getattr(spec, "meters", None) or getattr(spec, "bonus_meters", None) or []
    field = "meters" if spec.kind == "product" else "bonus_meters"
    if spec.kind == "weighted_sum":
        names, field = list(spec.weights), "weights"
    for i, name in enumerate(names):
        need_meter("reward.yaml", f"reward.{field}[{i}]", name)


def _check_observation(cfg: LevelConfig) -> None:
    channels = cfg.observation.affordance_channels
    if channels is None:
        return
    for i, aff in enumerate(cfg.affordances.affordances):
        if aff.name not in channels:
            raise ConfigError(
                f"{cfg.source / 'observation.yaml'}: affordance_channels: affordance "
                f"'{aff.name}' (affordances[{i}]) has no channel (channels: {', '.join(channels)})"
            )


def _check_world(cfg: LevelConfig) -> None:
    world = cfg.world
    walls = {tuple(w) for w in world.walls}
    free = [(x, y) for y in range(world.height) for x in range(world.width) if (x, y) not in walls]
    n_aff = len(cfg.affordances.affordances)
    if len(free) < n_aff + 1:
        raise ConfigError(
            f"{cfg.source / 'world.yaml'}: walls: {len(free)} free cells cannot hold "
            f"{n_aff} affordances and an agent"
        )
    # Every free cell must be reachable, or an affordance could be placed out of reach.
    seen = {free[0]}
    frontier = [free[0]]
    while frontier:
        x, y = frontier.pop()
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            inside = 0 <= nxt[0] < world.width and 0 <= nxt[1] < world.height
            if inside and nxt not in walls and nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    if len(seen) != len(free):
        cut = sorted(set(free) - seen)[0]
        raise ConfigError(
            f"{cfg.source / 'world.yaml'}: walls: cell {list(cut)} cannot be reached from "
            f"{list(free[0])}; the free cells must be connected"
        )


def _check_cycles(cfg: LevelConfig) -> None:
    edges: dict[str, list[str]] = {}
    pairs = [(m.source, m.target) for m in cfg.cascades.modulations]
    pairs += [(c.source, c.target) for g in cfg.cascades.groups for c in g.cascades]
    for source, target in pairs:
        edges.setdefault(source, []).append(target)

    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt]
                raise ConfigError(
                    f"{cfg.source / 'cascades.yaml'}: cascades form a cycle: {' -> '.join(cycle)}"
                )
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in list(edges):
        if node not in state:
            visit(node, [])
