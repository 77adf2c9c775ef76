"""`serve --recording`: a recording played back through the observer, with seek."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from townlet_env.cli import main
from townlet_env.observer import AuditLog, Tokens
from townlet_env.observer.replay import ReplaySource
from townlet_env.observer.server import ServerThread, create_app
from townlet_env.recording import Replayer

from .conftest import ADMIN, TIMEOUT, VIEWER, Live


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "run.townlet"
    argv = ["record", "--level", "L1_full_observability", "--towns", "2", "--agents-per-town", "2"]
    assert main([*argv, "--ticks", "60", "--seed", "3", "-o", str(path)]) == 0
    return path


@pytest.fixture
def replay(recording: Path, tmp_path: Path) -> Iterator[Live]:
    import contextlib

    source = ReplaySource(recording, speed=0.0)
    source.paused = True
    app = create_app(source, Tokens(ADMIN, VIEWER), AuditLog(tmp_path / "audit.jsonl"))
    live = Live(source, ServerThread(app).start(), tmp_path / "audit.jsonl", contextlib.ExitStack())
    source.start()
    yield live
    live.clients.close()
    source.stop()
    source.join(TIMEOUT)
    live.server.stop()


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
