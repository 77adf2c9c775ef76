"""The ASGI app: the page at `/`, its files under `/static`, `/health`, and telemetry at `/ws`.

Each WebSocket connection runs two tasks: one reads the client's messages (auth, then
commands) and one pumps the newest tick from the client's mailbox. Neither is ever awaited by
the simulation, which only writes into mailboxes (see hub.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from townlet_env.observer.hub import Mailbox
from townlet_env.observer.schema import MAX_MESSAGE_BYTES, VERSION
from townlet_env.observer.security import AuditLog, Tokens
from townlet_env.observer.source import CommandError, Source

STATIC = Path(__file__).parent / "static"
AUTH_TIMEOUT_S = 30.0
POLICY_VIOLATION = 1008  # WebSocket close code for a refused login


def _error(reason: str) -> str:
    return json.dumps({"type": "error", "version": VERSION, "reason": reason})


def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(message, None) or (None, why it is refused): size first, so a huge message is not parsed."""
    size = len(text.encode())
    if size > MAX_MESSAGE_BYTES:
        return None, f"message too large: {size} bytes (at most {MAX_MESSAGE_BYTES})"
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at character {exc.pos}"
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return None, "a message must be a JSON object with a string 'type'"
    return msg, None


async def _receive(ws: WebSocket) -> str:
    """The next text message; a binary one becomes text that _parse refuses."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    return text if isinstance(text, str) else "<binary message>"


class Connection:
    def __init__(self, ws: WebSocket, source: Source, tokens: Tokens, audit: AuditLog) -> None:
        self.ws, self.source, self.tokens, self.audit = ws, source, tokens, audit
        self.send_lock = asyncio.Lock()  # replies and ticks share one socket

    async def send(self, text: str) -> None:
        async with self.send_lock:
            await self.ws.send_text(text)

    async def login(self) -> str | None:
        """The role of a client whose first message is a good auth; None after refusing it."""
        try:
            role, reason = self.check_auth(await asyncio.wait_for(_receive(self.ws), AUTH_TIMEOUT_S))
        except TimeoutError:
            role, reason = None, "no auth message in time"
        if role is None:
            await self.send(_error(reason))
            await self.ws.close(POLICY_VIOLATION)
        return role

    def check_auth(self, text: str) -> tuple[str | None, str]:
        msg, problem = _parse(text)
        if msg is None:
            return None, problem or "bad message"
        if msg["type"] != "auth":
            return None, 'the first message must be {"type": "auth", "token": ...}'
        token = msg.get("token", "")
        if not isinstance(token, str):
            return None, "'token' must be a string"
        role = self.tokens.role(token)
        if role is None:
            return None, "wrong token" if token else "a token is required"
        return role, ""

    async def pump(self, box: Mailbox) -> None:
        while True:
            await self.send(await box.get())

    async def serve(self, role: str) -> None:
        while True:
            msg, problem = _parse(await _receive(self.ws))
            if msg is None:
                await self.send(_error(problem or "bad message"))
            elif msg["type"] != "command":
                await self.send(_error(f"unknown message type {msg['type']!r} (expected 'command')"))
            else:
                await self.send(self.command(role, msg))

    def command(self, role: str, msg: dict[str, Any]) -> str:
        if role != "admin":
            reason = "viewers may watch but not command (connect with the admin token)"
            self.audit.record(role, msg, False, reason)
            return _error(reason)
        try:
            detail = self.source.command(msg)
        except CommandError as exc:
            self.audit.record(role, msg, False, str(exc))
            return _error(str(exc))
        self.audit.record(role, msg, True)
        return json.dumps({"type": "ack", "version": VERSION, "command": msg["command"], "detail": detail})


def same_origin(ws: WebSocket) -> bool:
    """Browsers send Origin with every WebSocket: any other web page the user visits could
    otherwise open one to 127.0.0.1 and watch through the user's browser. Clients that are not
    browsers send none, and are let through to the token check."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == ws.headers.get("host", "").lower()


def create_app(source: Source, tokens: Tokens | None = None, audit: AuditLog | None = None) -> Starlette:
    tokens = tokens if tokens is not None else Tokens.from_env()
    audit = audit if audit is not None else AuditLog()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def health(request: Request) -> Response:
        return JSONResponse(source.health())

    async def telemetry(ws: WebSocket) -> None:
        await ws.accept()
        conn = Connection(ws, source, tokens, audit)
        pump: asyncio.Task[None] | None = None
        box: Mailbox | None = None
        try:
            if not same_origin(ws):
                await conn.send(_error("cross-origin connections are refused"))
                await ws.close(POLICY_VIOLATION)
                return
            role = await conn.login()
            if role is None:
                return
            await conn.send(json.dumps(source.hello(role)))
            box = source.hub.subscribe(asyncio.get_running_loop())
            source.subscribe(box)
            pump = asyncio.create_task(conn.pump(box))
            await conn.serve(role)
        except WebSocketDisconnect:
            pass
        finally:
            if box is not None:
                source.hub.unsubscribe(box)
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/health", health),
            WebSocketRoute("/ws", telemetry),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    app.state.source, app.state.audit = source, audit
    return app


def listen(host: str, port: int) -> socket.socket:
    """Bind here rather than in uvicorn: a port in use or a bad host is one clear error."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # listening now: a client that reads the printed address may connect at once
    except (OSError, OverflowError) as exc:
        raise ValueError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    return sock


class ServerThread:
    """uvicorn in a background thread, for a trainer (whose main thread trains) and for tests."""

    def __init__(
        self, app: Starlette, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        import uvicorn

        self.sock = sock if sock is not None else listen(host, port)
        # uvicorn closes connections whose frames exceed ws_max_size; ours are refused politely
        # up to this larger bound (see _parse), so only absurd frames meet uvicorn's limit.
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws_max_size=1 << 20)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="townlet-observer-http", daemon=True)

    def _run(self) -> None:
        # uvicorn exits through sys.exit when it cannot listen; start() reports that instead
        with contextlib.suppress(SystemExit):
            self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        for _ in range(int(timeout / 0.05)):
            if self.server.started or not self.thread.is_alive():
                break
            threading.Event().wait(0.05)
        if not self.server.started:
            raise RuntimeError("the observer server did not start (is the port in use?)")
        return self

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
