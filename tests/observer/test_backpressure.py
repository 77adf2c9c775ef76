"""A slow or stalled client never slows the town: frames are latest-wins, and drops are counted.

No assertion is about time. The town runs a fixed 1,000 ticks flat out; with a client that
never reads it must still finish all of them (a blocking design would hang until the bounded
wait gives up), and every client's published = sent + dropped (+ at most one pending).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
from collections.abc import Callable

from townlet_env.observer import Hub

from .conftest import ADMIN, TIMEOUT, Live

TICKS = 1000


def test_a_mailbox_keeps_only_the_newest_message() -> None:
    loop = asyncio.new_event_loop()
    try:
        hub = Hub()
        box = hub.subscribe(loop)
        for tick in range(TICKS):
            hub.publish(json.dumps({"type": "tick", "tick": tick}))
        assert (box.published, box.dropped) == (TICKS, TICKS - 1)
        newest = loop.run_until_complete(box.get())
        assert json.loads(newest) == {"type": "tick", "tick": TICKS - 1, "dropped": TICKS - 1}
        hub.unsubscribe(box)
        hub.publish('{"type":"tick"}')
        assert box.published == TICKS and hub.published == TICKS + 1
    finally:
        loop.close()


def stalled_client(port: int) -> socket.socket:
    """A WebSocket client that logs in and then never reads: a tiny receive window, so the
    server's socket fills after a few frames."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(1)
    assert reply.startswith(b"HTTP/1.1 101"), reply
    payload = json.dumps({"type": "auth", "token": ADMIN}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


def wait_for(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(TIMEOUT / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


def run_to_end(live: Live) -> None:
    live.source.start()
    assert live.source.finished.wait(TIMEOUT), "the town did not finish its ticks"


def test_a_stalled_client_does_not_slow_the_town(make_live: Callable[..., Live]) -> None:
    # 16 watched towns of 4 agents: ~20 KB a frame, 1,000 frames far more than socket buffers hold
    alone = make_live(towns=16, agents=4, max_ticks=TICKS, watched=list(range(16)))
    run_to_end(alone)
    assert alone.source.tick == TICKS and alone.source.hub.published == TICKS + 1  # tick 0 too

    live = make_live(towns=16, agents=4, max_ticks=TICKS, watched=list(range(16)))
    reader = live.client(ADMIN)
    assert reader.recv()["type"] == "hello"
    wait_for(lambda: live.source.hub.clients == 1)
    (mine,) = live.source.hub._boxes
    stalled = stalled_client(live.server.port)
    wait_for(lambda: live.source.hub.clients == 2)
    (stuck,) = live.source.hub._boxes - {mine}
    run_to_end(live)
    assert live.source.tick == alone.source.tick == TICKS

    last = reader.until("tick", lambda m: m["tick"] == TICKS)
    assert last["dropped"] == mine.dropped
    # every frame of the reading client either arrived or was counted as dropped
    assert mine.published == TICKS + 1 and mine.sent + mine.dropped == TICKS + 1
    # the stalled one got a few frames into its socket, and the rest were overwritten, not queued
    assert stuck.published == TICKS + 1
    assert stuck.dropped > 0 and stuck.sent + stuck.dropped + 1 >= TICKS + 1 >= stuck.sent + stuck.dropped
    stalled.close()
