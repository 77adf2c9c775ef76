"""A live observer server on a free 127.0.0.1 port, and a small WebSocket client for it.

The server runs in a thread (uvicorn), the town in another (LiveSource), exactly as under
`townlet-env serve`; tests talk to it over real sockets.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the observer extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the observer extra (starlette, uvicorn) is not installed")
pytest.importorskip("websockets", reason="the observer-test extra (websockets) is not installed")

from websockets.sync.client import ClientConnection, connect

from townlet_env.cli import main
from townlet_env.core import Town
from townlet_env.observer import AuditLog, LiveSource, Tokens, check_message
from townlet_env.observer.cli import make_policy
from townlet_env.observer.replay import ReplaySource
from townlet_env.observer.server import ServerThread, create_app

ADMIN, VIEWER = "admin-secret", "viewer-secret"
TIMEOUT = 60.0  # a bound on waits so that a hang fails the test; no assertion is about time


@dataclass
class Live:
    source: LiveSource
    server: ServerThread
    audit: Path
    clients: contextlib.ExitStack

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def client(self, token: str | None) -> Client:
        ws = self.clients.enter_context(connect(self.url, open_timeout=TIMEOUT, max_size=None))
        client = Client(ws)
        if token is not None:
            client.send({"type": "auth", "token": token})
        return client


class Client:
    """A synchronous client that checks every message it receives against the schema."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def send(self, msg: Any) -> None:
        self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    def recv(self) -> dict[str, Any]:
        msg = json.loads(self.ws.recv(timeout=TIMEOUT))
        assert check_message(msg) == [], msg
        return msg

    def until(self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda m: True) -> dict[str, Any]:
        while True:
            msg = self.recv()
            if msg["type"] == kind and where(msg):
                return msg

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        """Send a command and return its answer (ack or error), skipping ticks in between."""
        self.send({"type": "command", "command": name, **args})
        while True:
            msg = self.recv()
            if msg["type"] in ("ack", "error"):
                return msg

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    started: list[Live] = []

    def make(
        tokens: Tokens | None = None,
        towns: int = 4,
        agents: int = 2,
        speed: float = 0.0,
        level: str = "L1_full_observability",
        policy: str = "random",
        **kw: Any,
    ) -> Live:
        town = Town(level, towns * agents, agents)
        town.reset(seed=0)
        source = LiveSource(town, make_policy(policy, town, 0), speed=speed, **kw)
        audit = tmp_path / f"audit{len(started)}.jsonl"
        app = create_app(source, tokens or Tokens(ADMIN, VIEWER), AuditLog(audit))
        live = Live(source, ServerThread(app).start(), audit, contextlib.ExitStack())
        started.append(live)
        return live

    yield make
    for live in started:
        live.clients.close()
        live.source.stop()
        live.source.join(TIMEOUT)
        live.server.stop()


@pytest.fixture
def live(make_live: Callable[..., Live]) -> Live:
    """A paused town: ticks come only from `step`, so tests know exactly which tick is which."""
    server = make_live()
    server.source.paused = True
    server.source.start()
    return server


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "run.townlet"
    argv = ["record", "--level", "L1_full_observability", "--towns", "2", "--agents-per-town", "2"]
    assert main([*argv, "--ticks", "60", "--seed", "3", "-o", str(path)]) == 0
    return path


@pytest.fixture
def replay(recording: Path, tmp_path: Path) -> Iterator[Live]:
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
