"""The server over real sockets: health, hello, commands, and every refusal.

A refusal must say why and change nothing: after each one the test checks that the source's
state (tick, pause, watched towns, control) is what it was.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from townlet_env.observer import MAX_MESSAGE_BYTES, Tokens
from townlet_env.observer.schema import VERSION

from .conftest import ADMIN, VIEWER, Live


def snapshot(live: Live) -> tuple:
    s = live.source
    return (s.tick, s.paused, s.speed, tuple(s.watched), s.controlled, s._steps_left)


def test_health_and_page(live: Live) -> None:
    with urllib.request.urlopen(f"{live.http}/health", timeout=30) as reply:
        health = json.load(reply)
    assert health["status"] == "ok" and health["version"] == VERSION and health["source"] == "live"
    with urllib.request.urlopen(f"{live.http}/", timeout=30) as reply:
        page = reply.read().decode()
    assert '<canvas id="map"' in page and "/static/observer.js" in page
    with urllib.request.urlopen(f"{live.http}/static/observer.js", timeout=30) as reply:
        assert b"WebSocket" in reply.read()


def test_hello_then_ticks_follow_the_schema(live: Live) -> None:
    admin = live.client(ADMIN)
    hello = admin.recv()
    assert hello["type"] == "hello" and hello["role"] == "admin"
    level = hello["level"]
    assert level["meters"][:3] == ["energy", "hygiene", "satiation"]
    assert len(level["thresholds"]) == len(level["meters"])
    assert "INTERACT" in level["actions"] and hello["watched"] == [0, 1, 2, 3]
    first = admin.until("tick")  # the latest tick is handed over at once, even while paused
    assert first["tick"] == 0 and len(first["towns"]) == 4
    assert admin.command("step", n=3)["detail"] == {"paused": True, "steps": 3}
    # latest-wins may skip ticks 1 and 2 for this client, never the newest
    tick = admin.until("tick", lambda m: m["tick"] == 3)
    assert tick["paused"] and live.source.tick == 3
    assert [len(t["agents"]) for t in tick["towns"]] == [2, 2, 2, 2]
    viewer = live.client(VIEWER)
    assert viewer.recv()["role"] == "viewer"
    assert viewer.until("tick")["tick"] == 3


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        ({"type": "auth"}, "a token is required"),
        ({"type": "auth", "token": ""}, "a token is required"),
        ({"type": "auth", "token": "guess"}, "wrong token"),
        ({"type": "auth", "token": 7}, "'token' must be a string"),
        ({"type": "command", "command": "pause"}, "first message must be"),
        ("{not json", "malformed JSON"),
        ("x" * (MAX_MESSAGE_BYTES + 1), "message too large"),
    ],
)
def test_a_bad_login_is_refused_and_closed(live: Live, first: object, reason: str) -> None:
    before = snapshot(live)
    client = live.client(None)
    client.send(first)
    msg = client.recv()
    assert msg["type"] == "error" and reason in msg["reason"]
    with pytest.raises(Exception, match="1008"):
        client.recv()
    assert snapshot(live) == before


def test_without_a_viewer_token_anyone_may_watch_and_no_one_may_command_without_admin(make_live) -> None:
    live = make_live(tokens=Tokens(admin=None, viewer=None))
    live.source.paused = True
    live.source.start()
    anyone = live.client("")
    assert anyone.recv()["role"] == "viewer"
    refused = anyone.command("pause")
    assert refused["type"] == "error" and "viewers may watch" in refused["reason"]
    # with no admin token set, no token at all makes an admin: a guessed one is refused
    guess = live.client("admin")
    assert guess.recv()["reason"] == "wrong token"


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ({"type": "command", "command": "explode"}, "unknown command 'explode'"),
        ({"type": "command"}, "unknown command None"),
        ({"type": "chat", "text": "hi"}, "unknown message type 'chat'"),
        ([1, 2], "must be a JSON object"),
        ("{broken", "malformed JSON"),
        ("y" * (MAX_MESSAGE_BYTES + 1), "message too large"),
        ({"type": "command", "command": "step", "n": 0}, "'n' must be a whole number in [1, 1000]"),
        ({"type": "command", "command": "step", "n": True}, "'n' must be a whole number"),
        ({"type": "command", "command": "speed", "value": -1}, "'value' must be in [0, 1000]"),
        ({"type": "command", "command": "speed", "value": "fast"}, "'value' must be a number"),
        ({"type": "command", "command": "difficulty", "value": 11}, "'value' must be in [0, 10]"),
        ({"type": "command", "command": "watch", "towns": [9]}, "'towns' must be a list of 1-16"),
        ({"type": "command", "command": "watch", "towns": []}, "'towns' must be a list of 1-16"),
        ({"type": "command", "command": "control", "slot": 8}, "'slot' must be a whole number in [0, 7]"),
        ({"type": "command", "command": "release"}, "no slot is under console control"),
        ({"type": "command", "command": "action", "action": "UP"}, "take a slot with 'control'"),
    ],
)
def test_a_bad_admin_message_is_refused_and_changes_nothing(live: Live, msg: object, reason: str) -> None:
    admin = live.client(ADMIN)
    admin.until("tick")
    before = snapshot(live)
    admin.send(msg)
    answer = admin.until("error")
    assert reason in answer["reason"]
    assert snapshot(live) == before
    # the connection stays usable after a refusal
    assert admin.command("pause")["type"] == "ack"


def test_a_viewer_command_is_refused_and_audited(live: Live) -> None:
    viewer = live.client(VIEWER)
    viewer.until("tick")
    before = snapshot(live)
    answer = viewer.command("resume")
    assert answer["type"] == "error" and "viewers may watch but not command" in answer["reason"]
    assert snapshot(live) == before
    lines = [json.loads(line) for line in live.audit.read_text().splitlines()]
    assert lines[-1]["role"] == "viewer" and lines[-1]["accepted"] is False


def test_admin_commands_act_and_are_audited(live: Live) -> None:
    admin = live.client(ADMIN)
    admin.until("tick")
    assert admin.command("watch", towns=[2, 1])["detail"] == {"watched": [2, 1]}
    assert admin.command("control", slot=5)["detail"] == {"controlled": 5}
    assert admin.command("action", action="INTERACT")["detail"] == {"action": 4}
    assert admin.command("difficulty", value=2.5)["detail"] == {"difficulty": 2.5}
    assert admin.command("speed", value=0)["detail"] == {"speed": 0.0}
    admin.command("step", n=1)
    tick = admin.until("tick", lambda m: m["tick"] == 1)
    assert [t["town"] for t in tick["towns"]] == [2, 1] and tick["controlled"] == 5
    agent = next(a for t in tick["towns"] for a in t["agents"] if a["slot"] == 5)
    assert agent["action"] in (4, 5)  # INTERACT, or WAIT where INTERACT was not legal
    assert live.source.town.difficulty.tolist() == [2.5] * 8
    admin.command("step", n=1)
    tick = admin.until("tick", lambda m: m["tick"] == 2)
    # no console action for this tick: the controlled slot waits
    assert next(a for t in tick["towns"] for a in t["agents"] if a["slot"] == 5)["action"] == 5
    assert admin.command("release")["detail"] == {"controlled": None}
    lines = [json.loads(line) for line in live.audit.read_text().splitlines()]
    commands = [line["command"]["command"] for line in lines]
    assert commands == ["watch", "control", "action", "difficulty", "speed", "step", "step", "release"]
    assert all(line["role"] == "admin" and line["accepted"] and "time" in line for line in lines)


def test_resume_and_pause(live: Live) -> None:
    admin = live.client(ADMIN)
    admin.until("tick")
    assert admin.command("resume")["detail"] == {"paused": False}
    admin.until("tick", lambda m: m["tick"] >= 20)
    admin.command("pause")
    # a tick under way when the pause came still finishes: the first paused tick is where it stopped
    paused_at = admin.until("tick", lambda m: m["paused"])["tick"]
    assert live.source.tick == paused_at
    admin.command("step", n=2)
    admin.until("tick", lambda m: m["tick"] == paused_at + 2 and m["paused"])
    assert live.source.tick == paused_at + 2


def test_events_survive_skipped_ticks(live: Live) -> None:
    """Deaths and newcomers show up in the events even for a client that reads only now and then."""
    admin = live.client(ADMIN)
    admin.until("tick")
    admin.command("difficulty", value=10)
    admin.command("step", n=150)
    seen: list[dict] = []
    last = 0
    while last < 150:
        msg = admin.until("tick")
        seen += [e for e in msg["events"] if e["tick"] > last]
        last = msg["tick"]
    kinds = {e["kind"] for e in seen}
    assert {"death", "newcomer"} <= kinds, kinds
    ticks = [e["tick"] for e in seen]
    assert ticks == sorted(ticks) and len(ticks) == len(
        {(e["tick"], e["kind"], e["town"], e.get("slot")) for e in seen}
    )
    # every death is followed by a newcomer in the same slot (autoreset), or by the run's end
    for death in (e for e in seen if e["kind"] == "death"):
        later = [e for e in seen if e.get("slot") == death["slot"] and e["tick"] >= death["tick"]]
        assert any(e["kind"] == "newcomer" for e in later) or death["tick"] > 140


def test_a_cross_origin_browser_connection_is_refused(live: Live) -> None:
    from websockets.sync.client import connect

    from .conftest import TIMEOUT, Client

    with connect(live.url, origin="http://evil.example", open_timeout=TIMEOUT) as ws:
        # refused before any auth: the server speaks first and closes
        assert Client(ws).recv()["reason"] == "cross-origin connections are refused"
    port = live.server.port
    with connect(live.url, origin=f"http://127.0.0.1:{port}", open_timeout=TIMEOUT) as ws:
        client = Client(ws)
        client.send({"type": "auth", "token": VIEWER})
        assert client.recv()["type"] == "hello"
