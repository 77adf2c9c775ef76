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

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from townlet_env.observer.arguments import CommandError
from townlet_env.observer.hub import Mailbox
from townlet_env.observer.schema import MAX_MESSAGE_BYTES, VERSION
from townlet_env.observer.security import AuditError, AuditLog, HostRules, Tokens
from townlet_env.observer.source_base import Source

STATIC = Path(__file__).parent / "static"
AUTH_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 10.0  # a TCP connection that has not sent a whole request by then is closed
POLICY_VIOLATION = 1008  # WebSocket close code for a refused login
MAX_DEPTH = 8  # no command needs more than two levels; json's parser recurses per level


def _error(reason: str) -> str:
    return json.dumps({"type": "error", "version": VERSION, "reason": reason})


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (iteratively: no recursion to exhaust)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            todo += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(message, None) or (None, why it is refused): size first, so a huge message is not parsed;
    deep nesting (RecursionError in json) and any other decoding failure are refused too."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        return None, f"message too large: {size} bytes (at most {MAX_MESSAGE_BYTES})"
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at character {exc.pos}"
    except (RecursionError, ValueError) as exc:
        return None, f"malformed JSON: {type(exc).__name__}"
    if _depth(msg) > MAX_DEPTH:
        return None, f"malformed JSON: nested deeper than {MAX_DEPTH}"
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
            self.audit.refused(role, msg, reason)
            return _error(reason)
        try:
            # written under the source's lock before the command takes effect: a line that
            # cannot be written undoes the command (see Source.command)
            detail = self.source.command(msg, audit=lambda: self.audit.record(role, msg, True))
        except CommandError as exc:
            self.audit.refused(role, msg, str(exc))
            return _error(str(exc))
        except AuditError as exc:
            return _error(f"command refused: the audit log cannot be written ({exc}); nothing changed")
        return json.dumps({"type": "ack", "version": VERSION, "command": msg["command"], "detail": detail})


class HostGuard:
    """ASGI middleware: every request (the page, /static, /health and /ws alike) must name an
    allowed Host; see HostRules. A refused HTTP request gets 421, a refused WebSocket is closed
    before it is accepted (the handshake answers 403)."""

    def __init__(self, app: Any, rules: HostRules) -> None:
        self.app, self.rules = app, rules

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if not self.rules.allows(headers.get("host")):
                if scope["type"] == "http":
                    reply = JSONResponse({"error": "this Host is not served here (see --allow-host)"}, 421)
                    await reply(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": POLICY_VIOLATION})
                return
        await self.app(scope, receive, send)


def create_app(
    source: Source,
    tokens: Tokens | None = None,
    audit: AuditLog | None = None,
    hosts: HostRules | None = None,
) -> Any:
    """The observer's ASGI app. `hosts` defaults to a server bound to 127.0.0.1."""
    tokens = tokens if tokens is not None else Tokens.from_env()
    audit = audit if audit is not None else AuditLog()
    hosts = hosts if hosts is not None else HostRules()

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
            if not hosts.allows_origin(ws.headers.get("origin")):
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
    return HostGuard(app, hosts)


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


def server_config(app: Any) -> Any:
    """uvicorn's settings for the observer: WebSocket frames over 1 MiB are closed by uvicorn
    (ours are refused politely up to that bound, see _parse), and connections that send no
    request are closed after IDLE_TIMEOUT_S."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", ws_max_size=1 << 20, http=idle_timeout_protocol())


def idle_timeout_protocol() -> type:
    """uvicorn's HTTP protocol with a deadline on the first request: uvicorn times out idle
    keep-alive connections only after a response, so a client that connects and sends nothing
    (or a header a byte a minute) would hold its connection for ever."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class IdleTimeout(AutoHTTPProtocol):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.loop.call_later(IDLE_TIMEOUT_S, self._close_if_no_request, transport)

        def _close_if_no_request(self, transport: Any) -> None:
            # after an upgrade the transport belongs to the WebSocket protocol: leave it be
            if self.cycle is None and transport.get_protocol() is self and not transport.is_closing():
                transport.close()

    return IdleTimeout


class ServerThread:
    """uvicorn in a background thread, for a trainer (whose main thread trains) and for tests."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        import uvicorn

        self.sock = sock if sock is not None else listen(host, port)
        self.server = uvicorn.Server(server_config(app))
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
