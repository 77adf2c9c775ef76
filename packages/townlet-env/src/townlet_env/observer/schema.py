"""The telemetry schema: one table that the server's messages, the page and docs/telemetry.md share.

The schema lives in code, not only in prose, so that a test can check every message the server
sends against it and check that docs/telemetry.md is exactly `render_markdown()`: the document
cannot drift from what goes over the wire.

A field spec is `(type, description)` with type one of "int", "float", "bool", "str", "list",
"object", "null|object", "int|null"; "?" after a name marks an optional field.
"""

from __future__ import annotations

from typing import Any

VERSION = 2  # 2: the town's life (ties, queues, jobs, events), exits with a reason, the timeline
MAX_MESSAGE_BYTES = 4096  # largest message a client may send; the server's are not capped

_COMMON = {"type": ("str", "the message type"), "version": ("int", f"always {VERSION}")}

SERVER_MESSAGES: dict[str, dict[str, tuple[str, str]]] = {
    "hello": {
        **_COMMON,
        "role": ("str", "`viewer` or `admin`: what this connection may do"),
        "source": ("str", "`live` (stepped by the server), `trainer` (a training run) or `replay`"),
        "level": ("object", "the level: see the `level` table below"),
        "num_towns": ("int", "towns in the running batch"),
        "agents_per_town": ("int", "agent slots per town; slot `s` lives in town `s // agents_per_town`"),
        "watched": ("list", "indices of the towns whose ticks are sent"),
        "commands": ("list", "the commands this source accepts (an admin's console shows these)"),
        "ticks?": ("int", "length of the recording: only from a `replay` source"),
    },
    "tick": {
        **_COMMON,
        "tick": ("int", "ticks the source has advanced (a replay: its position in the recording)"),
        "paused": ("bool", "whether the source is paused"),
        "speed": ("float", "target ticks per second; 0 means as fast as possible"),
        "controlled": ("int|null", "the slot whose actions come from a console, or null"),
        "towns": ("list", "one `town` object per watched town: see below"),
        "events": (
            "list",
            "`event` objects of the last 32 ticks (at most 64, oldest first), repeated in every tick "
            "message so that skipped ticks lose none: keep those newer than the last tick you read",
        ),
        "timeline": ("object", "the markers of the run so far (a replay: of the whole recording): see below"),
        "training": ("null|object", "training figures when attached to a trainer: see below"),
        "dropped": ("int", "tick messages this client missed because it read slower than they came"),
    },
    "ack": {
        **_COMMON,
        "command": ("str", "the command that was accepted"),
        "detail": ("object", 'what it set, e.g. `{"speed": 30.0}`'),
    },
    "error": {**_COMMON, "reason": ("str", "why the message was refused; nothing changed")},
}

NESTED: dict[str, dict[str, tuple[str, str]]] = {
    "level": {
        "name": ("str", "level name"),
        "width": ("int", "grid width in cells"),
        "height": ("int", "grid height in cells"),
        "walls": ("list", "`[x, y]` of every wall cell"),
        "meters": ("list", "meter names, in the order of every `meters` list"),
        "thresholds": ("list", "per meter, the lowest level at which it starts a cascade (null: none)"),
        "terminal": ("list", "per meter, whether reaching 0 kills the agent"),
        "affordances": ("list", "affordance names (each one is its own type), in index order"),
        "actions": ("list", "action names, in index order"),
        "day_cycle": ("bool", "whether hours matter (24 ticks a day)"),
        "max_steps": ("int", "ticks before a town is regenerated"),
        "social": (
            "bool",
            "whether agents have ties and queue (L4, L5): towns then carry `ties` and `queues`",
        ),
        "economy": (
            "null|object",
            "jobs, events and exits (L5): see the `economy` table below; null elsewhere",
        ),
    },
    "economy": {
        "employers": ("list", "`employer` objects; a `job`'s `employer` indexes this list"),
        "events": ("list", "`catalogue_event` objects; an active event's `event` indexes this list"),
        "exit_reasons": ("list", "exit reason names by code (0: `none`)"),
        "grace": ("int", "ticks after a shift starts within which an arrival is on time"),
        "absences_to_fire": ("int", "missed shifts within the window that get an agent fired"),
    },
    "employer": {
        "place": ("int", "the affordance where its employees work"),
        "shift": ("list", "`[start, end)` hours of the daily shift"),
        "wage": ("float", "money per tick on site during the shift"),
    },
    "catalogue_event": {
        "name": ("str", "the event's name (what `trigger_event` takes)"),
        "kind": ("str", "`price_spike`, `outage` or `gathering`"),
        "targets": ("list", "the affordances it acts on"),
    },
    "town": {
        "town": ("int", "town index"),
        "clock": ("int", "ticks since the town was (re)generated"),
        "hour": ("int", "hour of day, 0-23 (0 without a day cycle)"),
        "affordances": ("list", "per affordance, `[x, y]` (negative: not placed in this town)"),
        "occupancy": ("list", "per affordance, how many living agents stand on it"),
        "agents": ("list", "one `agent` object per slot of the town"),
        "ties?": ("object", "(social levels) the ties between its agents: see the `ties` table"),
        "queues?": ("list", "(social levels) per affordance, the slots queued on it, next served first"),
        "events?": ("list", "(economy levels) `active_event` objects of the events active now"),
    },
    "ties": {
        "trust": ("list", "`trust[a][b]`: agent a's trust toward agent b (agents in slot order), -1..1"),
        "familiarity": ("list", "the same for familiarity, 0..1"),
        "rivalry": ("list", "the same for rivalry, 0..1"),
    },
    "active_event": {
        "event": ("int", "index into `level.economy.events`"),
        "left": ("int", "ticks until it ends"),
        "value": ("float", "its drawn multiplier (price or chat gains)"),
    },
    "agent": {
        "slot": ("int", "agent slot (global index)"),
        "x": ("int", "column"),
        "y": ("int", "row"),
        "alive": ("bool", "alive now"),
        "meters": ("list", "meter values in [0, 1], in the level's meter order"),
        "affordance": ("int", "affordance underfoot (-1: none)"),
        "progress": ("int", "ticks done of the current multi-tick use"),
        "life": ("int", "ticks lived"),
        "action": ("int|null", "the action that ran on the last tick (null: not known)"),
        "queue?": ("int", "(social levels) queued agents served before it (-1: not queued)"),
        "job?": ("object", "(economy levels) its job now: see the `job` table"),
    },
    "job": {
        "employer": ("int", "index into `level.economy.employers`"),
        "shift": (
            "str",
            "`fired` (until re-hired), between shifts `off` or `absent` (missed the last one), in its "
            "shift `due` (within the grace), `overdue` (past it, not arrived), `on_time` or `late`",
        ),
        "on_site": ("bool", "standing on its employer's place (paid there during the shift)"),
        "absences": ("int", "missed shifts within the window"),
        "firings": ("int", "times fired"),
    },
    "event": {
        "kind": (
            "str",
            "`death`, `exit` (economy levels: an agent left, see `reason`), `use`, `newcomer`, "
            "`event_start`, `event_end` or `regeneration`",
        ),
        "tick": ("int", "the tick it happened on"),
        "town": ("int", "town index"),
        "slot?": ("int", "agent slot (not for `regeneration` and the `event_*` kinds)"),
        "affordance?": ("int", "affordance index (only for `use`)"),
        "reason?": ("str", "why the agent left, a name of `level.economy.exit_reasons` (only for `exit`)"),
        "event?": ("int", "index into `level.economy.events` (only for `event_start` and `event_end`)"),
    },
    "timeline": {
        "end": ("int", "the tick the timeline runs to: the recording's length, or the current tick"),
        "known": ("int", "ticks whose markers are known (a replay finds them in a first pass)"),
        "markers": (
            "list",
            "`event` objects of the kinds `death`, `exit`, `event_start`, `event_end` and `regeneration` "
            "of the watched towns, by tick: at most 256, those nearest the current tick",
        ),
    },
    "training": {
        "agent_steps": ("int", "agent-steps trained so far"),
        "episodes": ("int", "episodes ended so far"),
        "survival": ("float|null", "mean length of the last 200 episodes"),
        "stage": ("float", "mean curriculum stage"),
        "epsilon": ("float", "exploration epsilon"),
        "loss": ("float|null", "latest TD loss (null before learning starts)"),
    },
}

COMMANDS: dict[str, str] = {
    "pause": "stop stepping",
    "resume": "step again at the current speed",
    "step": '`{"n": 1..1000}`: pause, then advance exactly n ticks',
    "speed": '`{"value": 0..1000}`: target ticks per second (0: as fast as possible)',
    "difficulty": '`{"value": 0..10}`: multiply every slot\'s base drain',
    "watch": '`{"towns": [i, ...]}`: 1-16 town indices whose ticks are sent to everyone',
    "control": '`{"slot": s}`: the console now chooses slot s\'s actions (WAIT when none is given)',
    "release": "hand the controlled slot back to the policy",
    "action": '`{"action": a}`: index or name of the next action of the controlled slot',
    "seek": '`{"tick": t}`: (replay only) jump to the state after t ticks of the recording',
    "trigger_event": (
        '`{"event": name, "town": t, "duration"?: 1..10000, "value"?: 0..2}`: (live, economy levels) '
        "start a catalogue event now in town t (default: its longest duration, its highest multiplier)"
    ),
    "cancel_event": '`{"event": name, "town": t}`: (live, economy levels) end that event now in town t',
}

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _fits(value: Any, spec: str) -> bool:
    for kind in spec.split("|"):
        types = _PY_TYPES[kind]
        # bool is an int to Python, never to the schema
        if isinstance(value, types) and not (kind in ("int", "float") and isinstance(value, bool)):
            return True
    return False


def check_fields(obj: Any, fields: dict[str, tuple[str, str]], where: str) -> list[str]:
    """Problems of one object against a field table: missing, unknown or mistyped fields."""
    if not isinstance(obj, dict):
        return [f"{where}: expected an object, got {type(obj).__name__}"]
    problems = []
    names = {name.rstrip("?"): name.endswith("?") for name in fields}
    for name, spec in fields.items():
        key = name.rstrip("?")
        if key not in obj:
            if not names[key]:
                problems.append(f"{where}: missing field '{key}'")
        elif not _fits(obj[key], spec[0]):
            problems.append(f"{where}.{key}: expected {spec[0]}, got {type(obj[key]).__name__}")
    problems += [f"{where}: unknown field '{key}'" for key in obj if key not in names]
    return problems


def check_message(msg: Any) -> list[str]:
    """Every problem of a server message against the schema, nested objects included."""
    if not isinstance(msg, dict) or msg.get("type") not in SERVER_MESSAGES:
        return [f"not a known message: {str(msg)[:80]}"]
    kind = msg["type"]
    problems = check_fields(msg, SERVER_MESSAGES[kind], kind)
    version = msg.get("version", VERSION)
    if _fits(version, "int") and version != VERSION:  # a mistyped one is reported above
        problems.append(f"{kind}.version: expected {VERSION}, got {str(msg['version'])[:20]}")
    if kind == "hello" and isinstance(msg.get("level"), dict):
        problems += _check_level(msg["level"])
    if kind == "tick":
        for i, town in enumerate(msg.get("towns") or []):
            problems += _check_town(town, f"tick.towns[{i}]")
        for i, event in enumerate(msg.get("events") or []):
            problems += check_fields(event, NESTED["event"], f"tick.events[{i}]")
        timeline = msg.get("timeline")
        if isinstance(timeline, dict):
            problems += check_fields(timeline, NESTED["timeline"], "tick.timeline")
            for i, marker in enumerate(_items(timeline.get("markers"))):
                problems += check_fields(marker, NESTED["event"], f"tick.timeline.markers[{i}]")
        if isinstance(msg.get("training"), dict):
            problems += check_fields(msg["training"], NESTED["training"], "tick.training")
    return problems


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _check_level(level: dict[str, Any]) -> list[str]:
    problems = check_fields(level, NESTED["level"], "hello.level")
    economy = level.get("economy")
    if isinstance(economy, dict):
        problems += check_fields(economy, NESTED["economy"], "hello.level.economy")
        for i, employer in enumerate(_items(economy.get("employers"))):
            problems += check_fields(employer, NESTED["employer"], f"hello.level.economy.employers[{i}]")
        for i, event in enumerate(_items(economy.get("events"))):
            problems += check_fields(event, NESTED["catalogue_event"], f"hello.level.economy.events[{i}]")
    return problems


def _check_town(town: Any, where: str) -> list[str]:
    problems = check_fields(town, NESTED["town"], where)
    if not isinstance(town, dict):
        return problems
    for j, agent in enumerate(_items(town.get("agents"))):
        problems += check_fields(agent, NESTED["agent"], f"{where}.agents[{j}]")
        if isinstance(agent, dict) and "job" in agent:
            problems += check_fields(agent["job"], NESTED["job"], f"{where}.agents[{j}].job")
    if "ties" in town:
        problems += check_fields(town["ties"], NESTED["ties"], f"{where}.ties")
    for j, event in enumerate(_items(town.get("events"))):
        problems += check_fields(event, NESTED["active_event"], f"{where}.events[{j}]")
    return problems


def _table(fields: dict[str, tuple[str, str]]) -> list[str]:
    rows = ["| field | type | meaning |", "| --- | --- | --- |"]
    for name, (kind, text) in fields.items():
        optional = " (optional)" if name.endswith("?") else ""
        rows.append(f"| `{name.rstrip('?')}`{optional} | {kind} | {text} |")
    return rows


def render_markdown() -> str:
    """docs/telemetry.md, generated: `python -m townlet_env.observer.schema > docs/telemetry.md`."""
    out = [
        "# Observer telemetry",
        "",
        "<!-- generated by `python -m townlet_env.observer.schema`; tests/observer checks it -->",
        "",
        "The observer server (`townlet-env serve`, `townlet-train train --observe`) streams JSON text",
        "messages over the WebSocket at `/ws`. Every message is one object with a `type` field; the",
        f'server\'s carry `"version": {VERSION}`, which changes whenever a field changes meaning or goes.',
        "",
        'A client\'s first message must be `{"type": "auth", "token": "..."}` (see',
        "[observer.md](observer.md) for roles and tokens). The server answers `hello`, then sends",
        "`tick` messages, newest first: a client that reads slowly gets the latest tick and a",
        "`dropped` count, never a backlog. Client messages larger than",
        f"{MAX_MESSAGE_BYTES} bytes are refused.",
        "",
    ]
    for kind, fields in SERVER_MESSAGES.items():
        out += [f"## `{kind}`", "", *_table(fields), ""]
    for kind, fields in NESTED.items():
        out += [f"### `{kind}` object", "", *_table(fields), ""]
    out += [
        "## Commands (admin only)",
        "",
        '`{"type": "command", "command": NAME, ...}`; the answer is `ack` or `error`.',
        "",
        "| command | arguments and effect |",
        "| --- | --- |",
        *[f"| `{name}` | {text} |" for name, text in COMMANDS.items()],
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
