"""The one YAML reader for settings files: level packs and training configs.

A settings file comes from a user, who may have made a mistake or may be hostile. Reading one
must end quickly, in a value or in one `ConfigError` line that names the file:

* **Size**: at most `MAX_BYTES` are read; a larger file is refused without reading the rest.
* **Depth**: at most `MAX_DEPTH` values nested inside one another (the parser recurses once per
  level, so 10,000 nested `[` would otherwise end in a RecursionError).
* **Values**: at most `MAX_VALUES` scalars, lists and mappings, counted with every alias
  expanded. A "billion laughs" document (aliases of aliases, a few hundred bytes that stand for
  a billion values) is refused while it is parsed, before anything expands it.
* **One spelling per type** (YAML 1.2's core schema instead of PyYAML's YAML 1.1): booleans are
  `true`/`false` only (`yes`, `no`, `on`, `off` are strings, so a meter called `no` stays a
  name and `day_cycle: yes` is an error, not a guess); `1e-3` is a float, as a reader expects
  (YAML 1.1 makes it a string); `010` is ten, not octal; no dates, no sexagesimal `1:30`.
* **Each key once** per mapping: plain YAML keeps the last of two, a silently ignored setting.

The limits are far above what a real file needs: the biggest built-in pack file is about 2.5 kB,
about 300 values and 4 levels deep; a 64 x 64 world walled everywhere is about 45 kB and 12,300
values.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import yaml

from townlet_env.config.messages import ConfigError, clip, kind_of, one_line, short

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_VALUES = 50_000


def read_yaml_mapping(path: Path, fields: Iterable[str]) -> dict[Any, Any]:
    """The top-level mapping of a settings file whose allowed keys are `fields`."""
    data = read_yaml(path)
    listed = ", ".join(fields)
    if data is None:
        raise ConfigError(f"{path}: empty file (expected a mapping with the fields: {listed})")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping (key: value) at the top level with the fields: {listed}; "
            f"got {kind_of(data)}"
        )
    return data


def read_yaml(path: Path) -> Any:
    """The value of a one-document YAML file, within the limits above."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        size = path.stat().st_size
        shown = f"{size:,} bytes" if size > MAX_BYTES else f"more than {MAX_BYTES:,} bytes"
        raise ConfigError(f"{path}: {shown} is too large for a settings file (limit: {MAX_BYTES:,} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    loader = None
    try:
        loader = BoundedLoader(text)  # its reader refuses control characters straight away
        return loader.get_single_data()
    except RefusedDocument as exc:
        raise ConfigError(f"{path}: {_one_line(exc)}") from None
    except yaml.reader.ReaderError as exc:  # it knows an offset, not a line
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        problem = f"character #x{exc.character:04x} is not allowed in YAML (a binary file?)"
        raise ConfigError(f"{path}: not valid YAML: line {line}, column {column}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_one_line(exc)}") from None
    except ValueError as exc:  # a constructor's own, e.g. for an explicit `!!float x`
        raise ConfigError(f"{path}: not valid YAML: {clip(str(exc), 200)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _one_line(exc: yaml.YAMLError) -> str:
    """Where the parser gave up and why, on one line (PyYAML's own text spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem is None:
        return clip(" ".join(str(exc).split()), 300)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    context = getattr(exc, "context", None)
    return where + one_line(clip(f"{problem}" + (f" ({context})" if context else ""), 300))


class RefusedDocument(yaml.MarkedYAMLError):
    """Well-formed YAML that this reader will not expand: too deep, too big, or self-referring."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with the limits and the YAML 1.2 core schema described above."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {}  # filled below, not inherited

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open = 0  # values being composed around the current one
        self._values = 0  # values composed so far, each alias counted as all it stands for
        self._deepest = 0  # deepest level reached below the value being composed
        self._anchored: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels) of an anchor

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._anchored:  # its anchor is still open: the alias is inside it
                problem = f"alias *{clip(str(event.anchor), 40)} is used inside the value it names"
                raise RefusedDocument(None, None, problem, event.start_mark)
            values, levels = self._anchored[id(node)]
            self._count(values, self._open + levels, event.start_mark)
            return node
        self._count(1, self._open + 1, event.start_mark)
        first, outer_deepest = self._values, self._deepest
        self._deepest = self._open = self._open + 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open -= 1
        if event.anchor is not None:
            self._anchored[id(node)] = (self._values - first + 1, self._deepest - self._open)
        self._deepest = max(outer_deepest, self._deepest)
        return node

    def _count(self, values: int, depth: int, mark: yaml.Mark) -> None:
        self._values += values
        self._deepest = max(self._deepest, depth)
        if depth > MAX_DEPTH:
            problem = f"values nested more than {MAX_DEPTH} deep (limit: {MAX_DEPTH} levels)"
            raise RefusedDocument(None, None, problem, mark)
        if self._values > MAX_VALUES:
            problem = f"more than {MAX_VALUES:,} values, aliases expanded (limit: {MAX_VALUES:,})"
            raise RefusedDocument(None, None, problem, mark)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: the base class merges it, explicit keys winning
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # the base class reports unhashable keys in its own words
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {short(key)} (each key may appear once)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml12_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
        base = {"0o": 8, "0x": 16}.get(digits[:2], 10)
        try:  # base 10 keeps leading zeros decimal: 010 is ten
            return sign * int(digits[2:] if base != 10 else digits, base)
        except ValueError:  # also Python's cap of 4,300 digits
            problem = f"{short(text)} is not an integer (or has more than 4,300 digits)"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml12_int)

# The YAML 1.2 core schema's tags for plain scalars (https://yaml.org/spec/1.2.2/#1032-tag-resolution),
# each with the characters such a scalar can start with ("" is the empty scalar, a null).
_CORE_SCHEMA = [
    ("null", r"~|null|Null|NULL|", [*"~nN", ""]),
    ("bool", r"true|True|TRUE|false|False|FALSE", [*"tTfF"]),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", [*"-+0123456789"]),
    (
        "float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN",
        [*"-+.0123456789"],
    ),
    ("merge", r"<<", ["<"]),  # `<<: *defaults`, which a pack may use to share settings
]
for _name, _pattern, _first in _CORE_SCHEMA:
    BoundedLoader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_name}", re.compile(rf"^(?:{_pattern})$"), _first
    )
