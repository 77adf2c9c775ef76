"""The observer's trust boundary under hostile clients (issue 23, findings 10 to 13), over real
sockets: DNS rebinding (Host and Origin against an allow-list, /health included), serving beyond
loopback, audit-log flooding, symlinks and failures, messages that break parsers, and
connections that never send a request."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from townlet_env.core import Town
from townlet_env.observer import LiveSource, Tokens, random_policy
from townlet_env.observer.security import (
    REFUSED_BURST,
    REFUSED_CAP,
    REFUSED_PER_SECOND,
    AuditError,
    AuditLog,
    HostRules,
)
from townlet_env.observer.server import IDLE_TIMEOUT_S, ServerThread, create_app

from .conftest import ADMIN, TIMEOUT, VIEWER, Client, Live


def get(live: Live, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", live.server.port, timeout=TIMEOUT)
    conn.request("GET", path, headers={"Host": host})
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    return reply.status, body


def test_rebinding_names_are_refused_on_every_route(live: Live) -> None:
    port = live.server.port
    for path in ("/health", "/", "/static/observer.js"):
        assert get(live, path, f"attacker.example:{port}")[0] == 421, path
        assert get(live, path, f"127.0.0.1:{port}")[0] == 200, path
        assert get(live, path, f"localhost:{port}")[0] == 200, path
    # the page of a rebinding attacker sends Host and Origin both naming itself
    assert handshake(live, f"attacker.example:{port}", f"http://attacker.example:{port}").startswith(
        "HTTP/1.1 403"
    )
    assert handshake(live, f"127.0.0.1:{port}", None).startswith("HTTP/1.1 101")


def handshake(live: Live, host: str, origin: str | None) -> str:
    """The status line a raw WebSocket upgrade request gets (a client library sets its own Host)."""
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=TIMEOUT) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return conn.recv(4096).decode("latin-1").splitlines()[0]


def test_origin_is_checked_against_the_allow_list_not_the_host(live: Live) -> None:
    port = live.server.port
    bad = {"Origin": f"http://attacker.example:{port}"}
    with connect(live.url, additional_headers=bad, open_timeout=TIMEOUT) as ws:
        reply = json.loads(ws.recv(timeout=TIMEOUT))
        assert reply["type"] == "error" and "cross-origin" in reply["reason"]
    good = {"Origin": f"http://localhost:{port}"}
    with connect(live.url, additional_headers=good, open_timeout=TIMEOUT) as ws:
        client = Client(ws)
        client.send({"type": "auth", "token": VIEWER})
        assert client.recv()["type"] == "hello"


def test_host_rules() -> None:
    local = HostRules("127.0.0.1", ["townlet.lan"])
    assert local.allows("127.0.0.1:8765") and local.allows("LOCALHOST") and local.allows("[::1]:80")
    assert local.allows("townlet.lan:8765") and not local.allows("evil.lan:8765")
    assert not local.allows("10.0.0.5:8765") and not local.allows(None) and not local.allows("")
    everywhere = HostRules("0.0.0.0")
    assert everywhere.allows("10.0.0.5:8765") and not everywhere.allows("rebind.example:8765")
    assert local.allows_origin(None) and local.allows_origin("http://localhost:1")
    assert (
        not local.allows_origin("null")
        and not local.allows_origin("file://")
        and not local.allows_origin("http://evil.lan")
    )


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TOWNLET_VIEWER_TOKEN": ""}
    cmd = [sys.executable, "-m", "townlet_env.cli", "serve", "--port", "0", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**base, **(env or {})}
    )


def test_serving_beyond_loopback_needs_a_viewer_token_or_insecure(tmp_path: Path) -> None:
    audit = ["--audit-log", str(tmp_path / "a.jsonl")]
    refused = serve("--host", "0.0.0.0", *audit)
    _, err = refused.communicate(timeout=TIMEOUT)
    assert refused.returncode == 2 and err.count("\n") == 1 and "TOWNLET_VIEWER_TOKEN is not set" in err
    for extra, env, says in (
        (["--insecure"], {}, "watch: anyone (no TOWNLET_VIEWER_TOKEN)"),
        ([], {"TOWNLET_VIEWER_TOKEN": "v"}, "watch: with the viewer token"),
    ):
        proc = serve("--host", "0.0.0.0", *audit, *extra, env=env)
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            exposed = proc.stdout.readline()
            assert "exposed to every network 0.0.0.0 is on" in exposed and says in exposed, exposed
        finally:
            proc.terminate()
            proc.wait(TIMEOUT)


def test_refused_commands_cannot_flood_the_audit_log(live: Live) -> None:
    viewer = live.client(VIEWER)
    viewer.until("tick")
    started = time.monotonic()
    for _ in range(10 * REFUSED_BURST):
        viewer.send({"type": "command", "command": "pause", "pad": "x" * 3000})
    viewer.command("resume")  # every refusal is answered, logged or not
    refill = (time.monotonic() - started) * REFUSED_PER_SECOND
    lines = live.audit.read_text().splitlines()
    assert REFUSED_BURST <= len(lines) <= REFUSED_BURST + refill + 1  # the burst, then the steady rate
    assert json.loads(lines[-1]).get("suppressed_before", 0) > 0 or len(lines) == REFUSED_BURST
    assert all(json.loads(line)["accepted"] is False for line in lines)


def test_the_refused_log_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    monkeypatch.setattr("townlet_env.observer.security.REFUSED_PER_SECOND", 1e9)
    for _ in range(REFUSED_CAP + 500):
        log.refused("viewer", {"type": "command", "command": "pause"}, "no")
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(lines) == REFUSED_CAP and "cap_reached" in lines[-1] and log.suppressed == 500


def test_the_audit_log_never_follows_a_symlink_and_is_private(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    planted = tmp_path / "audit.jsonl"
    planted.symlink_to(target)
    with pytest.raises(AuditError, match="cannot open the audit log"):
        AuditLog(planted)
    assert target.read_text() == "precious\n"
    log = AuditLog(tmp_path / "private" / "audit.jsonl")
    log.record("admin", {"command": "pause"}, True)
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(log.path.parent).st_mode) == 0o700


def test_the_default_audit_log_is_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from townlet_env.observer.security import default_audit_path

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_audit_path() == tmp_path / "state" / "townlet" / "observer-audit.jsonl"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_audit_path() == tmp_path / "home" / ".local" / "state" / "townlet" / "observer-audit.jsonl"


def test_a_command_that_cannot_be_audited_is_refused_and_undone(small_fs: Path, filled: Any) -> None:
    town = Town("L1_full_observability", 4)
    town.reset(seed=0)
    source = LiveSource(town, random_policy(0), speed=0.0)
    source.paused = True
    audit = AuditLog(small_fs / "audit.jsonl")  # on a real filesystem that is about to be full
    server = ServerThread(create_app(source, Tokens(ADMIN, VIEWER), audit)).start()
    source.start()
    try:
        with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=TIMEOUT) as ws:
            admin = Client(ws)
            admin.send({"type": "auth", "token": ADMIN})
            admin.until("tick")
            filled(small_fs, leave=0)  # the log is empty: no page of it left to write into
            before = (source.speed, source.paused, list(source.watched), source._steps_left)
            answer = admin.command("speed", value=123)
            assert answer["type"] == "error" and "audit log cannot be written" in answer["reason"]
            assert "No space left on device" in answer["reason"]
            assert admin.command("step", n=3)["type"] == "error"
            assert (source.speed, source.paused, list(source.watched), source._steps_left) == before
            assert source.tick == 0  # the refused step never ran
        assert (small_fs / "audit.jsonl").read_text() == ""
    finally:
        source.stop()
        source.join(TIMEOUT)
        server.stop()


@pytest.mark.parametrize(
    "text",
    [
        "[" * 4000,
        '{"type": "auth", "token": ' + "[" * 3000 + "]" * 3000 + "}",
        '{"type": "auth", "token": "\\ud800"}',
        '{"type": "auth", "token": "\\udfff\\ud800x"}',
    ],
)
def test_parser_breakers_get_the_error_reply(live: Live, text: str) -> None:
    client = live.client(None)
    client.send(text)
    reply = client.recv()
    assert reply["type"] == "error"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 4000,
        '{"type": "command", "command": "\\ud800"}',
        '{"type": "command", "command": "speed", "value": [[[[[[[[[[1]]]]]]]]]]}',
    ],
)
def test_parser_breakers_after_login_keep_the_connection(live: Live, text: str) -> None:
    admin = live.client(ADMIN)
    admin.until("tick")
    admin.send(text)
    while (reply := admin.recv())["type"] == "tick":
        pass
    assert reply["type"] == "error"
    assert admin.command("pause")["type"] == "ack"


def test_request_less_connections_are_closed(live: Live) -> None:
    idle = [socket.create_connection(("127.0.0.1", live.server.port), timeout=TIMEOUT) for _ in range(20)]
    slow = socket.create_connection(("127.0.0.1", live.server.port), timeout=TIMEOUT)
    slow.sendall(b"GET /health HTTP/1.1\r\n")  # a header that never ends
    time.sleep(IDLE_TIMEOUT_S + 3)
    for conn in [*idle, slow]:
        assert conn.recv(1024) == b"", "the server must close a connection that sent no request"
        conn.close()
    assert get(live, "/health", "127.0.0.1")[0] == 200


MESSAGES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    message=st.one_of(
        st.dictionaries(
            st.sampled_from(["type", "command", "value", "n", "towns", "slot", "action", "tick", "token"]),
            MESSAGES,
            max_size=5,
        ).map(lambda m: {"type": "command", **m}),
        MESSAGES,
    ).map(json.dumps)
    | st.text(max_size=300)
    | st.text(alphabet='[]{}"\\:,0123456789', max_size=5000)
)
def test_fuzzed_messages_get_an_answer_and_leave_the_server_up(live: Live, message: str) -> None:
    admin = live.client(ADMIN)
    admin.until("tick")
    admin.send(message)
    while (reply := admin.recv())["type"] == "tick":
        pass
    assert reply["type"] in ("ack", "error")
    assert admin.command("pause")["type"] == "ack"
    admin.close()
