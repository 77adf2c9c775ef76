"""Load a level pack (a directory of YAML files) into a validated `LevelConfig`.

Every problem becomes one `ConfigError` whose message names the file, the field path and what
is allowed, so a user can fix a pack without reading a traceback.
"""

from __future__ import annotations

import difflib
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
        f"(built-in: {', '.join(builtin_levels())}{_hint(str(level), builtin_levels())})"
    )


def load_level(level: str | Path) -> LevelConfig:
    pack = resolve_pack(level)
    present = {p.name for p in pack.glob("*.y*ml")}
    unknown = sorted(present - set(PACK_FILES))
    if unknown:
        raise ConfigError(
            f"{pack / unknown[0]}: unknown file in level pack "
            f"(allowed: {', '.join(PACK_FILES)}{_hint(unknown[0], list(PACK_FILES))})"
        )
    parsed: dict[str, Any] = {}
    for file, model in PACK_FILES.items():
        parsed[file.removesuffix(".yaml")] = _load_file(pack / file, model)
    config = LevelConfig(name=pack.name, source=pack, **parsed)
    _cross_check(config)
    return config


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a key written twice in one mapping.

    Plain YAML keeps the last value silently, so `{drain: 0.1, drain: 0.2}` would hide a typo.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # the base class reports unhashable keys in its own words
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key '{key}' (each key may appear once)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_file(path: Path, model: type[BaseModel]) -> BaseModel:
    if not path.is_file():
        raise ConfigError(f"{path}: missing (a level pack needs {', '.join(PACK_FILES)})")
    fields = ", ".join(model.model_fields)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if data is None:
        raise ConfigError(f"{path}: empty file (expected a mapping with the fields: {fields})")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping (key: value) at the top level with the fields: {fields}; "
            f"got {_kind_of(data)}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, model, exc)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where the parser gave up and why (PyYAML's own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem is None:
        return " ".join(str(exc).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    context = getattr(exc, "context", None)
    return f"{where}{problem}" + (f" ({context})" if context else "")


def _kind_of(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), type(value).__name__) + f" {_short(value)}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hint(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


# --- pydantic errors as one line each ----------------------------------------------------------

MAX_LINES = 6  # more than this and the first few problems are the useful ones
_JARGON = {  # pydantic's words for Python types, in the words of a YAML file
    "a valid tuple": "a list like [a, b]",
    "a valid dictionary or object to extract fields from": "a mapping (key: value)",
    "a valid dictionary": "a mapping (key: value)",
}


def _describe(path: Path, model: type[BaseModel], exc: ValidationError) -> str:
    """One line per problem: `file: field.path: what is wrong (allowed: ...)`."""
    lines = [f"{path}: {_one(model, err)}" for err in exc.errors()]
    if len(lines) > MAX_LINES:
        lines = [*lines[: MAX_LINES - 1], f"{path}: ... and {len(lines) - MAX_LINES + 1} more problems"]
    return "\n".join(lines)


def _one(model: type[BaseModel], err: Any) -> str:
    loc, kind, value = list(err["loc"]), err["type"], err.get("input")
    where, end, constraints = _walk(model, loc)
    where = where or "(top level)"
    if kind == "extra_forbidden":
        owner = _walk(model, loc[:-1])[1]
        allowed = list(owner.model_fields) if _is_model(owner) else []
        return f"{where}: unknown field (allowed: {', '.join(allowed)}{_hint(str(loc[-1]), allowed)})"
    if kind == "missing":
        return f"{where}: required field missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = err["ctx"]["discriminator"].strip("'")
        tags = [str(_tag(m)) for m in _members(end)]
        tag = err["ctx"].get("tag")
        problem = f"unknown {key} '{tag}'" if kind == "union_tag_invalid" else "required field missing"
        return f"{where}.{key}: {problem} (allowed: {', '.join(tags)}{_hint(str(tag), tags)})"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "value")
        return f"{where}: {value!r} is out of range (allowed: {_range(constraints, name)})"
    if kind == "literal_error":
        return f"{where}: got {_short(value)} (allowed: {err['ctx']['expected']})"
    if kind == "string_pattern_mismatch":
        rule = "letters, digits and _, not starting with a digit"
        return f"{where}: {value!r} is not a valid name (allowed: {rule})"
    if kind == "value_error":  # our own validators already say what they got
        return f"{where}: {err['msg'].removeprefix('Value error, ')}"
    msg = err["msg"]
    for jargon, plain in _JARGON.items():
        msg = msg.replace(jargon, plain)
    return f"{where}: {msg} (got {_short(value)})"


def _walk(model: type[BaseModel], loc: list[Any]) -> tuple[str, Any, list[Any]]:
    """Follow an error location through the schema's types.

    Returns the path as the user wrote it (a discriminated union's tag such as 'product' is
    dropped: pydantic puts it in the location, but it is not a key in the file), the type at
    the end of the path, and the constraints (ge, le, ...) declared on that value.
    """
    path, current = "", _strip(model)[0]
    constraints: list[Any] = []
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            args = typing.get_args(current)
            current, constraints = _strip(args[min(part, len(args) - 1)] if args else Any)
            continue
        if _is_union(current) and any(_tag(m) == part for m in _members(current)):
            current = next(m for m in _members(current) if _tag(m) == part)
            continue
        path += f".{part}" if path else str(part)
        if _is_model(current) and part in current.model_fields:
            info = current.model_fields[part]
            current, extra = _strip(info.annotation)
            constraints = list(info.metadata) + extra
        elif typing.get_origin(current) is dict:
            current, constraints = _strip(typing.get_args(current)[1])
        else:
            current, constraints = Any, []
    return path, current, constraints


def _strip(tp: Any) -> tuple[Any, list[Any]]:
    """Annotated[X, ...] -> X and X | None -> X, collecting the constraints on the way."""
    constraints: list[Any] = []
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp, *meta = typing.get_args(tp)
            for item in meta:
                constraints += getattr(item, "metadata", [item])
        elif _is_union(tp) and type(None) in typing.get_args(tp):
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp, constraints
            tp = rest[0]
        else:
            return tp, constraints


def _range(constraints: list[Any], name: str) -> str:
    low = next((f"{c.ge:g} <= " for c in constraints if hasattr(c, "ge")), "")
    low = low or next((f"{c.gt:g} < " for c in constraints if hasattr(c, "gt")), "")
    high = next((f" <= {c.le:g}" for c in constraints if hasattr(c, "le")), "")
    high = high or next((f" < {c.lt:g}" for c in constraints if hasattr(c, "lt")), "")
    return f"{low}{name}{high}"


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any) -> list[Any]:
    return [_strip(t)[0] for t in typing.get_args(tp)] if _is_union(tp) else [tp]


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _tag(tp: Any) -> Any:
    field = getattr(tp, "model_fields", {}).get("kind")
    return typing.get_args(field.annotation)[0] if field else None


# --- checks across files -----------------------------------------------------------------------


def _cross_check(cfg: LevelConfig) -> None:
    meters = cfg.meter_names
    pack = cfg.source

    def need_meter(file: str, where: str, name: str) -> None:
        if name not in meters:
            raise ConfigError(
                f"{pack / file}: {where}: unknown meter '{name}' "
                f"(meters: {', '.join(meters)}{_hint(name, meters)})"
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
    if spec.kind == "weighted_sum":  # a mapping: name the key, as in affordance effects
        for name in spec.weights:
            need_meter("reward.yaml", f"reward.weights.{name}", name)
        return
    field = "meters" if spec.kind == "product" else "bonus_meters"
    for i, name in enumerate(getattr(spec, field)):
        need_meter("reward.yaml", f"reward.{field}[{i}]", name)


def _check_observation(cfg: LevelConfig) -> None:
    channels = cfg.observation.affordance_channels
    if channels is None:
        return
    # Channels may name affordances this level lacks: they stay zero and keep the layout shared
    # with a bigger level. A misspelt channel still fails, as its affordance then has none.
    names = [a.name for a in cfg.affordances.affordances]
    spare = [c for c in channels if c not in names]
    for i, aff in enumerate(cfg.affordances.affordances):
        if aff.name not in channels:
            close = difflib.get_close_matches(aff.name, spare, n=1, cutoff=0.6)
            hint = f"; is '{close[0]}' a misspelling?" if close else ""
            raise ConfigError(
                f"{cfg.source / 'observation.yaml'}: affordance_channels: affordance "
                f"'{aff.name}' (affordances[{i}]) has no channel (channels: {', '.join(channels)}{hint})"
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
                cycle = [*path[path.index(nxt) :], node, nxt] if nxt in path else [node, nxt]
                raise ConfigError(
                    f"{cfg.source / 'cascades.yaml'}: cascades form a cycle: {' -> '.join(cycle)}"
                )
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in list(edges):
        if node not in state:
            visit(node, [])
