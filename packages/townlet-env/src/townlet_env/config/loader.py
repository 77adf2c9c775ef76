"""Load a level pack (a directory of YAML files) into a validated `LevelConfig`.

Every problem becomes one `ConfigError` whose message names the file, the field path and what
is allowed, so a user can fix a pack without reading a traceback.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from townlet_env.config.bounded_yaml import read_yaml_mapping
from townlet_env.config.economy import EconomyFile, exit_reason_names
from townlet_env.config.messages import ConfigError, describe_validation_error, did_you_mean, printable
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
from townlet_env.config.social import SocialFile

# Files a pack may leave out. An absent one is not hashed, so adding one here never changes the
# hash of the packs that do not use it.
OPTIONAL_PACK_FILES: dict[str, type[BaseModel]] = {"social.yaml": SocialFile, "economy.yaml": EconomyFile}

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "levels"
# Bump when townlet_env.core.layout or observe changes what an observation's floats mean
# (2: the affordances and agents fields became rows dx, dy, present; a new `underfoot` field).
OBSERVATION_FORMAT = 2


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
    social: SocialFile | None = None  # social.yaml: relationships, chat, queues (docs/social.md)
    economy: EconomyFile | None = None  # economy.yaml: jobs, prices, events, lifecycle (docs/economy.md)

    @property
    def meter_names(self) -> list[str]:
        return [m.name for m in self.meters.meters]

    def content_hash(self) -> str:
        """SHA-256 of the validated content: the same rules give the same hash wherever they live.

        The observation format is part of it, so a checkpoint or saved env state from before a
        change of what the observation's floats mean is refused as another version of the level.
        """
        payload: dict[str, object] = {
            file.removesuffix(".yaml"): getattr(self, file.removesuffix(".yaml")).model_dump(mode="json")
            for file in PACK_FILES
        }
        for file in OPTIONAL_PACK_FILES:
            part = getattr(self, file.removesuffix(".yaml"))
            if part is not None:
                payload[file.removesuffix(".yaml")] = part.model_dump(mode="json")
        payload["observation_format"] = OBSERVATION_FORMAT
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
        f"(built-in: {', '.join(builtin_levels())}{did_you_mean(str(level), builtin_levels())})"
    )


def load_level(level: str | Path) -> LevelConfig:
    pack = resolve_pack(level)
    present = {p.name for p in pack.glob("*.y*ml")}
    allowed = [*PACK_FILES, *OPTIONAL_PACK_FILES]
    unknown = sorted(present - set(allowed))
    if unknown:
        raise ConfigError(
            f"{pack / printable(unknown[0])}: unknown file in level pack "
            f"(allowed: {', '.join(allowed)}{did_you_mean(unknown[0], allowed)})"
        )
    parsed: dict[str, Any] = {}
    for file, model in PACK_FILES.items():
        parsed[file.removesuffix(".yaml")] = _load_file(pack / file, model)
    for file, optional in OPTIONAL_PACK_FILES.items():
        if (pack / file).is_file():
            parsed[file.removesuffix(".yaml")] = _load_file(pack / file, optional)
    config = LevelConfig(name=pack.name, source=pack, **parsed)
    _cross_check(config)
    return config


def _load_file(path: Path, model: type[BaseModel]) -> BaseModel:
    if not path.is_file():
        raise ConfigError(f"{path}: missing (a level pack needs {', '.join(PACK_FILES)})")
    data = read_yaml_mapping(path, model.model_fields)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, model, exc)) from None


# --- checks across files -----------------------------------------------------------------------


def _cross_check(cfg: LevelConfig) -> None:
    meters = cfg.meter_names
    pack = cfg.source

    def need_meter(file: str, where: str, name: str) -> None:
        if name not in meters:  # a meter delta's key is any string: show it safely
            raise ConfigError(
                f"{pack / file}: {where}: unknown meter '{printable(name)}' "
                f"(meters: {', '.join(meters)}{did_you_mean(name, meters)})"
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
                need_meter("affordances.yaml", f"affordances[{i}].{field}.{printable(name)}", name)
    for i, act in enumerate(cfg.actions.actions):
        for name in act.effects:
            need_meter("actions.yaml", f"actions[{i}].effects.{printable(name)}", name)
    _check_reward(cfg, need_meter)
    _check_social(cfg, need_meter)
    _check_economy(cfg, need_meter)
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


def _check_social(cfg: LevelConfig, need_meter: Any) -> None:
    kinds = [a.kind for a in cfg.actions.actions]
    if cfg.social is None:
        if "chat" in kinds:
            raise ConfigError(
                f"{cfg.source / 'actions.yaml'}: actions[{kinds.index('chat')}]: a 'chat' action needs "
                "a social.yaml in the pack (see docs/social.md)"
            )
        return
    need_meter("social.yaml", "meter", cfg.social.meter)
    if "chat" not in kinds or "interact" not in kinds:
        raise ConfigError(
            f"{cfg.source / 'actions.yaml'}: a social level needs an action of kind 'chat' and one of "
            "kind 'interact' (queues form at affordances)"
        )
    if cfg.world.interaction != "multi_tick":
        raise ConfigError(
            f"{cfg.source / 'world.yaml'}: interaction: a social level needs multi_tick uses "
            "(an occupant and a queue behind it; see docs/social.md)"
        )


def _check_economy(cfg: LevelConfig, need_meter: Any) -> None:
    spec = cfg.economy
    if spec is None:
        return
    file = cfg.source / "economy.yaml"
    if cfg.social is None:
        raise ConfigError(f"{file}: an economy needs the social layer: add a social.yaml (docs/social.md)")
    need_meter("economy.yaml", "money", spec.money)
    names = [a.name for a in cfg.affordances.affordances]

    def need_place(where: str, name: str) -> None:
        if name not in names:
            raise ConfigError(
                f"{file}: {where}: unknown affordance '{printable(name)}' "
                f"(affordances: {', '.join(names)}{did_you_mean(name, names)})"
            )

    for name in spec.prices:
        need_place(f"prices.{printable(name)}", name)
    for i, employer in enumerate(spec.jobs.employers):
        need_place(f"jobs.employers[{i}].place", employer.place)
    for i, event in enumerate(spec.events.catalogue):
        for j, target in enumerate(event.targets):
            need_place(f"events.catalogue[{i}].targets[{j}]", target)
    if spec.lifecycle.nightly_reset is not None:
        for name in spec.lifecycle.nightly_reset.meters:
            need_meter("economy.yaml", f"lifecycle.nightly_reset.meters.{printable(name)}", name)
    terminal = [m.name for m in cfg.meters.meters if m.terminal]
    reasons = exit_reason_names(terminal)[1:]
    for name in spec.reward.terminal:
        if name not in reasons:
            raise ConfigError(
                f"{file}: reward.terminal.{printable(name)}: unknown exit reason "
                f"(exit reasons: {', '.join(reasons)}{did_you_mean(name, list(reasons))})"
            )
    if not cfg.world.day_cycle:
        raise ConfigError(
            f"{cfg.source / 'world.yaml'}: day_cycle: an economy needs a day cycle (shifts are hours)"
        )


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
    if cfg.social is not None and len(free) < n_aff + cfg.social.population:
        raise ConfigError(
            f"{cfg.source / 'social.yaml'}: population: {cfg.social.population} agents and {n_aff} "
            f"affordances do not fit on the {len(free)} free cells of the world"
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
