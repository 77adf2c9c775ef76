"""Fan-out of tick messages to clients, latest-wins.

The simulation thread calls `Hub.publish` and must never wait for a client: each client has a
one-message slot (`Mailbox`). Publishing overwrites the slot and counts the message it
replaced as dropped; the client's sender task on the event loop takes whatever is newest when
the socket is ready again. A client that stops reading therefore costs the simulation one
dictionary write per tick and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Mailbox:
    """The newest unsent message for one client, and how many were overwritten unsent."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready = asyncio.Event()  # only touched on the loop's thread
        self._pending: str | None = None
        self._flagged = False  # a wake-up is already queued on the loop: do not queue another
        self.published = 0
        self.dropped = 0
        self.sent = 0

    def put(self, text: str) -> None:
        """From any thread; never blocks on the client."""
        with self._lock:
            self.published += 1
            if self._pending is not None:
                self.dropped += 1
            self._pending = text
            wake = not self._flagged
            self._flagged = True
        if wake:
            # a closed loop means the server is going down: nobody is left to wake
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> str:
        """The newest message, with this client's drop count spliced in (see schema `dropped`)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                text, self._pending, self._flagged = self._pending, None, False
                dropped = self.dropped
            if text is not None:
                self.sent += 1
                # every published message is a JSON object: close it with this client's count
                return f'{text[:-1]},"dropped":{dropped}}}'

    def take_nowait(self) -> str | None:
        """The pending message, if any (for tests and shutdown)."""
        with self._lock:
            text, self._pending, self._flagged = self._pending, None, False
        return text


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boxes: set[Mailbox] = set()
        self.published = 0

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Mailbox:
        box = Mailbox(loop)
        with self._lock:
            self._boxes.add(box)
        return box

    def unsubscribe(self, box: Mailbox) -> None:
        with self._lock:
            self._boxes.discard(box)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._boxes)

    def publish(self, text: str) -> None:
        """`text` is one JSON object without its `dropped` field."""
        with self._lock:
            boxes = list(self._boxes)
            self.published += 1
        for box in boxes:
            box.put(text)
