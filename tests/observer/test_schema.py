"""docs/telemetry.md is the schema in code, and the schema checker really checks."""

from __future__ import annotations

from pathlib import Path

from townlet_env.observer import check_message, render_markdown
from townlet_env.observer.replay import ReplaySource
from townlet_env.observer.schema import COMMANDS
from townlet_env.observer.source import LiveSource

ROOT = Path(__file__).resolve().parents[2]


def test_docs_telemetry_is_generated_from_the_schema() -> None:
    text = (ROOT / "docs" / "telemetry.md").read_text(encoding="utf-8")
    assert text == render_markdown(), (
        "docs/telemetry.md is stale: PYTHONPATH=packages/townlet-env/src "
        "python -m townlet_env.observer.schema > docs/telemetry.md"
    )


def test_every_command_is_documented() -> None:
    offered = {*LiveSource.commands, *LiveSource.economy_commands, *ReplaySource.commands}
    assert offered == set(COMMANDS)


def test_the_checker_finds_missing_unknown_and_mistyped_fields() -> None:
    good = {"type": "error", "version": 2, "reason": "no"}
    assert check_message(good) == []
    assert check_message({"type": "error", "version": 2}) == ["error: missing field 'reason'"]
    assert check_message({**good, "extra": 1}) == ["error: unknown field 'extra'"]
    assert check_message({**good, "version": True}) == ["error.version: expected int, got bool"]
    assert check_message({**good, "version": 1}) == ["error.version: expected 2, got 1"]
    assert check_message({"type": "gossip"})[0].startswith("not a known message")
    tick = {
        "type": "tick",
        "version": 2,
        "tick": 1,
        "paused": False,
        "speed": 0.0,
        "controlled": None,
        "towns": [{"town": 0}],
        "events": [{"kind": "death", "tick": 1, "town": 0, "slot": "x"}],
        "training": None,
        "dropped": 0,
    }
    problems = check_message(tick)
    assert "tick.towns[0]: missing field 'clock'" in problems
    assert "tick.events[0].slot: expected int, got str" in problems
