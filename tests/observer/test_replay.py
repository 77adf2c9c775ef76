"""`serve --recording`: a recording played back through the observer, with seek."""

from __future__ import annotations

from pathlib import Path

import pytest

from townlet_env.cli import main
from townlet_env.recording import Replayer

from .conftest import ADMIN, Live


def positions(msg: dict) -> list:
    return [(a["x"], a["y"], a["meters"]) for t in msg["towns"] for a in t["agents"]]


def test_a_replay_steps_seeks_and_holds_at_the_end(replay: Live, recording: Path) -> None:
    admin = replay.client(ADMIN)
    hello = admin.recv()
    assert hello["source"] == "replay" and hello["ticks"] == 60 and "seek" in hello["commands"]
    assert "control" not in hello["commands"]
    assert admin.until("tick")["tick"] == 0
    admin.command("step", n=20)
    at20 = admin.until("tick", lambda m: m["tick"] == 20)
    admin.command("seek", tick=5)
    at5 = admin.until("tick", lambda m: m["tick"] == 5)
    admin.command("seek", tick=20)
    again = admin.until("tick", lambda m: m["tick"] == 20)
    assert positions(again) == positions(at20) != positions(at5)
    # the same state as the Replayer's own at tick 5
    reference = Replayer(recording)
    reference.seek(5)
    view = reference.town.view([0, 1])
    assert [(a["x"], a["y"]) for t in at5["towns"] for a in t["agents"]] == [
        tuple(p) for p in view.position.flatten(0, 1).tolist()
    ]
    assert admin.command("seek", tick=61)["type"] == "error"
    admin.command("resume")
    end = admin.until("tick", lambda m: m["tick"] == 60 and m["paused"])
    assert end["paused"] and replay.source.tick == 60


def test_serve_refuses_a_broken_recording(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken.townlet"
    broken.write_bytes(b"not a recording")
    assert main(["serve", "--port", "0", "--recording", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
