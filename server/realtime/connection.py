"""One websocket client: a bounded outbox of encoded frames and the task that sends them."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

import orjson
from starlette.websockets import WebSocket

# What a client that fell too far behind gets instead of the frames it could not take.
OUTBOX_LIMIT = 512
_ids = itertools.count(1)


def resync_frame(latest_seq: int) -> str:
    return orjson.dumps(
        {"type": "resync_required", "seq": None, "data": {"seq": latest_seq}}
    ).decode()


def error_frame(code: str, message: str) -> str:
    return orjson.dumps(
        {"type": "error", "seq": None, "data": {"code": code, "message": message}}
    ).decode()


PONG_FRAME = orjson.dumps({"type": "pong", "seq": None, "data": {}}).decode()


class Connection:
    """Frames are queued by the feed (never awaited there) and sent by this connection's task."""

    def __init__(
        self, websocket: WebSocket, *, user_id: int, account_id: int, limit: int = OUTBOX_LIMIT
    ) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.user_id = user_id
        self.account_id = account_id
        # The highest seq queued for (or replayed to) this client: nothing at or below it again.
        self.cursor = 0
        self.limit = limit
        self.overflows = 0
        self._outbox: deque[str] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def push(self, frame: str, seq: int | None = None) -> None:
        """Queue a frame; a client whose outbox is full is told to resync instead."""
        if self._closed:
            return
        if seq is not None:
            if seq <= self.cursor:
                return
            self.cursor = seq
        if len(self._outbox) >= self.limit:
            # Dropping what it could not take keeps memory bounded; the client refetches.
            self._outbox.clear()
            self.overflows += 1
            frame = resync_frame(self.cursor)
        self._outbox.append(frame)
        self._ready.set()

    @property
    def backlog(self) -> int:
        return len(self._outbox)

    async def send_forever(self) -> None:
        """Send queued frames in order until the socket fails or the connection is closed."""
        while not self._closed:
            await self._ready.wait()
            self._ready.clear()
            while self._outbox:
                await self.websocket.send_text(self._outbox.popleft())

    def close(self) -> None:
        self._closed = True
        self._outbox.clear()
        self._ready.set()
