"""Error messages for invalid settings: one line per problem, naming the field path, what is
wrong and what is allowed, in the words of a YAML file rather than Python's.

Shared by the level-pack loader and by townlet-train's config loader.
"""

from __future__ import annotations

import difflib
import reprlib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A level pack or setting is invalid; the message says where and what is allowed."""


# A value from a file can be a list of a million items or a string of a megabyte: a message
# shows a bounded preview of it, built without ever formatting the whole value.
_PREVIEW = reprlib.Repr()  # keyword arguments need Python 3.12
_PREVIEW.maxlevel = 3
_PREVIEW.maxtuple = _PREVIEW.maxlist = _PREVIEW.maxdict = _PREVIEW.maxset = _PREVIEW.maxfrozenset = 4
_PREVIEW.maxstring = _PREVIEW.maxother = _PREVIEW.maxlong = 60
MAX_LINE = 400  # characters of one message line, beyond the file name


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to about `limit` characters, in time bounded whatever the value."""
    try:
        text = _PREVIEW.repr(value)
    except Exception:  # e.g. an int too long to print: a message must still come out
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str, limit: int = 60) -> str:
    """A name from a file as a message shows it: cut short, and quoted if it holds a line break
    or the like (a message is one line per problem; a key "\\r" must not split it)."""
    return clip(text if text.isprintable() else repr(text), limit)


# Every character that str.splitlines() breaks a line at.
_LINE_BREAKS = str.maketrans(dict.fromkeys("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def one_line(text: str) -> str:
    """The last guard of "one line per problem", should any text from a file slip through."""
    return text.translate(_LINE_BREAKS)


def kind_of(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), type(value).__name__) + f" {short(value)}"


def did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(clip(word, 100), list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


# --- pydantic errors as one line each ----------------------------------------------------------

MAX_LINES = 6  # more than this and the first few problems are the useful ones
_JARGON = {  # pydantic's words for Python types, in the words of a YAML file
    "a valid tuple": "a list like [a, b]",
    "a valid dictionary or object to extract fields from": "a mapping (key: value)",
    "a valid dictionary": "a mapping (key: value)",
    "a valid boolean": "true or false",
}


def describe_validation_error(path: Path, model: type[BaseModel], exc: ValidationError) -> str:
    """One line per problem: `file: field.path: what is wrong (allowed: ...)`."""
    errors = exc.errors()
    lines = [f"{path}: {one_line(clip(_one(model, err), MAX_LINE))}" for err in errors[:MAX_LINES]]
    if len(errors) > MAX_LINES:
        lines = [*lines[: MAX_LINES - 1], f"{path}: ... and {len(errors) - MAX_LINES + 1} more problems"]
    return "\n".join(lines)


def _one(model: type[BaseModel], err: Any) -> str:
    loc, kind, value = list(err["loc"]), err["type"], err.get("input")
    where, end, constraints = _walk(model, loc)
    where = where or "(top level)"
    if kind == "extra_forbidden":
        owner = _walk(model, loc[:-1])[1]
        allowed = list(owner.model_fields) if _is_model(owner) else []
        return f"{where}: unknown field (allowed: {', '.join(allowed)}{did_you_mean(str(loc[-1]), allowed)})"
    if kind == "missing":
        return f"{where}: required field missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = err["ctx"]["discriminator"].strip("'")
        tags = [str(_tag(m)) for m in _members(end)]
        tag = printable(str(err["ctx"].get("tag")))
        problem = f"unknown {key} '{tag}'" if kind == "union_tag_invalid" else "required field missing"
        return f"{where}.{key}: {problem} (allowed: {', '.join(tags)}{did_you_mean(tag, tags)})"
    name = next((_key(p) for p in reversed(loc) if isinstance(p, str)), "value")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{where}: {short(value)} is out of range (allowed: {_range(constraints, name)})"
    if kind == "finite_number":
        bounded = any(hasattr(c, b) for c in constraints for b in ("ge", "gt", "le", "lt"))
        rule = _range(constraints, name) if bounded else "a finite number"
        return f"{where}: {short(value)} is not a finite number (allowed: {rule})"
    if kind == "literal_error":
        return f"{where}: got {short(value)} (allowed: {err['ctx']['expected']})"
    if kind == "string_pattern_mismatch":
        rule = "letters, digits and _, not starting with a digit"
        return f"{where}: {short(value)} is not a valid name (allowed: {rule})"
    if kind == "value_error":  # our own validators already say what they got
        return f"{where}: {err['msg'].removeprefix('Value error, ')}"
    msg = err["msg"]
    for jargon, plain in _JARGON.items():
        msg = msg.replace(jargon, plain)
    return f"{where}: {msg} (got {short(value)})"


def _key(part: Any) -> str:
    return printable(str(part))


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
            # A tuple's items have a type each; a list's or dict's one type (a YAML key may be
            # any number, negative included, so the index is clamped).
            current, constraints = _strip(args[max(0, min(part, len(args) - 1))] if args else Any)
            continue
        if _is_union(current) and any(_tag(m) == part for m in _members(current)):
            current = next(m for m in _members(current) if _tag(m) == part)
            continue
        path += f".{_key(part)}" if path else _key(part)
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
    low = next((f"{_number(c.ge)} <= " for c in constraints if hasattr(c, "ge")), "")
    low = low or next((f"{_number(c.gt)} < " for c in constraints if hasattr(c, "gt")), "")
    high = next((f" <= {_number(c.le)}" for c in constraints if hasattr(c, "le")), "")
    high = high or next((f" < {_number(c.lt)}" for c in constraints if hasattr(c, "lt")), "")
    return f"{low}{name}{high}"


def _number(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"  # an int bound is shown exactly


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any) -> list[Any]:
    return [_strip(t)[0] for t in typing.get_args(tp)] if _is_union(tp) else [tp]


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _tag(tp: Any) -> Any:
    field = getattr(tp, "model_fields", {}).get("kind")
    return typing.get_args(field.annotation)[0] if field else None
