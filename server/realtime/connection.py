"""One websocket client: the frames the feed pushes to it, and how they reach the socket.

Two ways. Direct (the usual one, under uvicorn's websockets-sansio protocol without
permessage-deflate): `push` writes the encoded frame to the socket's transport at once, no task
and no await, so a delivery costs one `transport.write` instead of five await layers and a task
switch. Queued (anything else, e.g. `WS_COMPRESSION=1`): frames wait in a bounded outbox that
this connection's task sends through the ASGI `send`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket
from websockets.protocol import State

from server.realtime.frames import PersonalFrames, encoded, resync_frame, ws_text_frame

if TYPE_CHECKING:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol as _SansIO,
    )
except ImportError:  # another server or uvicorn version: the queued path only
    _SansIO = None  # type: ignore[assignment,misc]

# What a client that fell too far behind gets instead of the frames it could not take.
OUTBOX_LIMIT = 512
# The direct path's equivalent: bytes waiting in the socket's transport (beyond what the kernel
# took). 512 KiB is ~30 large messages or thousands of small events: a client this far behind
# is not catching up by itself, and each socket costs at most this much memory.
WRITE_BUFFER_LIMIT = 512 * 1024
_ids = itertools.count(1)


def direct_protocol(send: object) -> WebSocketsSansIOProtocol | None:
    """The uvicorn protocol behind an ASGI `send`, if frames can be written to its transport
    directly: websockets-sansio, handshake done, socket open, and no extension negotiated (a
    permessage-deflate frame needs the compressor's state, so those keep the queued path)."""
    protocol = getattr(send, "__self__", None)
    if _SansIO is None or not isinstance(protocol, _SansIO):
        return None
    if not protocol.handshake_complete or protocol.conn.extensions:
        return None
    if protocol.close_sent or protocol.conn.state is not State.OPEN:
        return None
    return protocol


class Corked:
    """Direct-mode frames pushed during one turn of the event loop, written at its end: one
    write (one syscall) per socket however many frames it got in that turn, e.g. a message and
    the notification about it. One per node (per event loop)."""

    def __init__(self, call_soon: Callable[[Callable[[], None]], object] | None = None) -> None:
        self._call_soon = call_soon  # by default, the running loop's
        self._dirty: list[Connection] = []

    def add(self, connection: Connection) -> None:
        if not self._dirty:
            (self._call_soon or asyncio.get_running_loop().call_soon)(self.flush)
        self._dirty.append(connection)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()


class Connection:
    """Frames are pushed by the feed (never awaited there). Until `go_live` they are queued and,
    in queued mode, sent by `send_forever`; in direct mode `push` encodes them and the node's
    `Corked` writes them at the end of the loop's turn."""

    __slots__ = (
        "_closed",
        "_corked",
        "_outbox",
        "_overflowed",
        "_pending",
        "_protocol",
        "_ready",
        "account_id",
        "cursor",
        "id",
        "limit",
        "overflows",
        "user_id",
        "websocket",
    )

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
        # Made when first needed: an idle socket in direct mode never needs either (a deque is
        # ~760 bytes even when empty).
        self._outbox: deque[str] | None = None
        self._ready: asyncio.Event | None = None  # queued mode's sender waits on it
        self._closed = False
        self._protocol: WebSocketsSansIOProtocol | None = None
        self._corked: Corked | None = None
        # Direct mode: the encoded frames (or their pieces), written in one piece at turn's end.
        self._pending: list[bytes] | None = None
        # Direct mode: frames are dropped (the client was told to resync) until the transport's
        # buffer has drained.
        self._overflowed = False

    @property
    def direct(self) -> bool:
        return self._protocol is not None

    def push(self, frame: str, seq: int | None = None) -> None:
        """Send or queue a frame; a client too far behind is told to resync instead."""
        if self._closed:
            return
        if seq is not None:
            if seq <= self.cursor:
                return
            self.cursor = seq
        if self._corked is not None:
            if self._pending is None:
                self._pending = []
                self._corked.add(self)
            self._pending.append(encoded(frame))
            return
        self._enqueue(frame)

    def push_personal(self, frames: PersonalFrames, item_id: int) -> None:
        """`push(frames.text(item_id))`, without encoding the whole frame for this socket."""
        if self._closed:
            return
        if self._corked is not None:
            pending = self._pending
            if pending is None:
                pending = self._pending = []
                self._corked.add(self)
            pending.extend(frames.pieces(item_id))
            return
        self._enqueue(frames.text(item_id))

    def _enqueue(self, frame: str) -> None:
        """Queued mode: into the bounded outbox, for `send_forever`."""
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        elif len(outbox) >= self.limit:
            # Dropping what it could not take keeps memory bounded; the client refetches.
            outbox.clear()
            self.overflows += 1
            frame = resync_frame(self.cursor)
        outbox.append(frame)
        if self._ready is not None:
            self._ready.set()

    def go_live(self, protocol: WebSocketsSansIOProtocol, corked: Corked) -> None:
        """Switch to direct writes, after the greeting: what was pushed meanwhile goes first."""
        self._protocol, self._corked = protocol, corked
        if self._outbox:
            self._pending = [ws_text_frame(frame) for frame in self._outbox]
        self._outbox = None
        self.flush()

    def flush(self) -> None:
        """Direct mode: write what was pushed since the last flush, in one piece."""
        frames, self._pending = self._pending, None
        protocol = self._protocol
        if not frames or protocol is None or self._closed:
            return
        transport = protocol.transport
        # Closing or gone: as a failed send would, the frames are lost with the socket. Once the
        # connection leaves OPEN uvicorn has either sent its close frame (`close_sent`) or, in
        # the very call that read the client's close frame or a protocol error, closed the
        # transport: these two checks cover it, without a property call per socket and turn.
        if protocol.close_sent or transport.is_closing():
            return
        buffered = transport.get_write_buffer_size()
        if self._overflowed:
            if buffered:
                return
            # The resync frame has left our buffer before anything after it: every frame dropped
            # since was pushed before the client could read it, so its REST refetch has them.
            self._overflowed = False
        elif buffered > WRITE_BUFFER_LIMIT:
            # Dropping what it cannot take keeps memory bounded; the client refetches.
            self._overflowed = True
            self.overflows += 1
            transport.write(ws_text_frame(resync_frame(self.cursor)))
            return
        transport.write(b"".join(frames))  # a single piece is written as it is, not copied

    @property
    def backlog(self) -> int:
        """What waits for this client: frames queued, or (direct mode) bytes in the transport."""
        if self._protocol is not None:
            return self._protocol.transport.get_write_buffer_size()
        return len(self._outbox or ())

    async def send_forever(self) -> None:
        """Queued mode: send queued frames in order until the socket fails or it is closed."""
        ready = self._ready = asyncio.Event()
        while not self._closed:
            while self._outbox:
                await self.websocket.send_text(self._outbox.popleft())
            await ready.wait()
            ready.clear()

    def close(self) -> None:
        self._closed = True
        self._outbox = self._pending = None
        if self._ready is not None:
            self._ready.set()
