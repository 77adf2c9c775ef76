"""Drive `/ws` of `townlet-env serve` installed with exactly the documented extra.

Run by `nox -s observer-extra` (a clean virtualenv with torch and `townlet-env[observer]`, nothing
else; .ci/run runs it): starts the server, opens a WebSocket with a hand-written handshake (the
standard library only, so the check cannot lean on a client library the extra lacks), logs in
and waits for the hello. Without a WebSocket library in the extra, uvicorn answers the upgrade
with 404 ("No supported WebSocket library detected") and this exits 1.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile

TIMEOUT = 60.0


def frame(text: str) -> bytes:
    """One masked text frame, as a client must send it."""
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81]) + (
        bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(data))
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise SystemExit("error: the server closed the WebSocket")
        data += chunk
    return data


def read_frame(conn: socket.socket) -> str:
    _, second = read_exact(conn, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack(">H", read_exact(conn, 2))[0]
    elif size == 127:
        size = struct.unpack(">Q", read_exact(conn, 8))[0]
    return read_exact(conn, size).decode()


def main() -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWNLET_")}
    audit = os.path.join(tempfile.mkdtemp(), "audit.jsonl")
    cmd = [sys.executable, "-m", "townlet_env.cli", "serve", "--level", "L0_minimal", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--audit-log", audit], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not found:
            print(f"error: serve did not start: {line!r}", file=sys.stderr)
            return 1
        port = int(found.group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            conn.sendall(request.encode())
            reply = b""
            while b"\r\n\r\n" not in reply:
                reply += read_exact(conn, 1)
            status = reply.split(b"\r\n", 1)[0].decode()
            if " 101 " not in f"{status} ":
                print(
                    f"error: /ws answered {status!r}: the [observer] extra lacks a WebSocket library",
                    file=sys.stderr,
                )
                return 1
            conn.sendall(frame(json.dumps({"type": "auth", "token": ""})))
            hello = json.loads(read_frame(conn))
            if hello.get("type") != "hello":
                print(f"error: expected hello, got {hello}", file=sys.stderr)
                return 1
        print(
            f"ok: /ws answered 101 and {hello['type']} (role {hello['role']}, level {hello['level']['name']})"
        )
        return 0
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
