"""`GET /ws`: the live inbox. Hello, replay of what the client missed, then live events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import orjson
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.domain.views import user_view
from server.errors import Unauthenticated
from server.handlers.auth import authenticate
from server.handlers.http import runtime
from server.handlers.rawsend import HANDOFF, RAW_SEND
from server.logs import request_id
from server.realtime.connection import Connection, direct_protocol
from server.realtime.feed import AccountFeed
from server.realtime.frames import PONG_FRAME, error_frame, resync_frame
from server.realtime.wire import WireEvent
from server.state import event_queries
from server.state.models import User

if TYPE_CHECKING:
    from server.realtime.service import Realtime

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013


def _since(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("since")
    if raw is None or raw == "":
        return None
    value = int(raw)  # ValueError for garbage: answered with an error frame
    if value < 0:
        raise ValueError("since must not be negative")
    return value


async def websocket_endpoint(websocket: WebSocket) -> None:
    scope = websocket.scope
    # Taken out of the scope at once: left there, it ties uvicorn's protocol into a cycle.
    raw_send = scope.pop(RAW_SEND, None)
    rt = runtime(websocket)
    origin = websocket.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in rt.settings.allowed_origins:
        await websocket.close(code=CLOSE_FORBIDDEN)  # before accept: the handshake is refused (403)
        return
    try:
        actor = await authenticate(websocket)
    except Unauthenticated:
        await websocket.close(code=CLOSE_UNAUTHENTICATED)
        return
    await websocket.accept()
    try:
        since = _since(websocket)
    except ValueError:
        await websocket.send_text(
            error_frame("bad_request", "`since` must be a non-negative integer.")
        )
        await websocket.close(code=4400)
        return

    realtime = rt.realtime
    connection = Connection(websocket, user_id=actor.user_id, account_id=actor.account_id)
    feed = await realtime.hub.feed_for(actor.account_id)
    boundary = feed.attach(connection, since)
    live = _live(websocket, realtime, feed, connection, since, boundary, raw_send, request_id.get())
    if HANDOFF in scope:
        scope[HANDOFF] = live  # RawSendMiddleware runs it once this stack has returned
    else:
        await live


async def _live(
    websocket: WebSocket,
    realtime: Realtime,
    feed: AccountFeed,
    connection: Connection,
    since: int | None,
    boundary: int,
    raw_send: object,
    rid: str | None,
) -> None:
    """The socket's life once it is attached to its feed: the greeting, then live events until
    it closes. Everything it needs is passed in: it usually runs after the routing and
    middleware frames that accepted the socket have returned (see RawSendMiddleware), so that
    an idle socket keeps only this frame and the few under it."""
    request_id.set(rid)  # ObserveMiddleware's, reset when its frame returned
    sender: asyncio.Task[None] | None = None
    try:
        await _greet(websocket, feed, connection, since, boundary)
        protocol = direct_protocol(raw_send)
        if protocol is not None:
            # Live events pushed during the greeting follow it; then `push` writes them itself,
            # and this task reads the client's frames (no sender, no receiver task).
            connection.go_live(protocol, realtime.corked)
            await realtime.connected(connection)
            with contextlib.suppress(Exception):  # as the queued path's receiver task
                await _receive(websocket, connection)
        else:
            await realtime.connected(connection)
            sender = asyncio.create_task(connection.send_forever())
            receiver = asyncio.create_task(_receive(websocket, connection))
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    except (OperationalError, PoolTimeout) as exc:  # the greeting's reads
        log.warning("database unavailable: %s", exc.__class__.__name__)
        with contextlib.suppress(Exception):
            await websocket.close(code=CLOSE_TRY_AGAIN_LATER)
    finally:
        feed.detach(connection)
        connection.close()
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        realtime.hub.release_later(feed)
        await realtime.disconnected(connection)


async def _greet(
    websocket: WebSocket,
    feed: AccountFeed,
    connection: Connection,
    since: int | None,
    boundary: int,
) -> None:
    """The hello frame, then (with `since`) every retained event after it that the user may see."""
    rt = runtime(websocket)
    account_id, user_id = connection.account_id, connection.user_id
    user = await rt.read(lambda s: s.get(User, user_id))
    assert user is not None
    hello = {"type": "hello", "seq": boundary, "data": {"user": user_view(user, online=True)}}
    await websocket.send_text(orjson.dumps(hello).decode())
    if since is None:
        return
    seqs = await rt.read(lambda s: event_queries.event_seqs(s, account_ids=[account_id]))
    latest, pruned_through = seqs[account_id]
    if since < pruned_through or since > latest:
        # Too old to replay, or from another timeline: the client refetches over REST.
        connection.cursor = boundary
        await websocket.send_text(resync_frame(boundary))
        return
    if since >= boundary:
        return
    rows = await rt.read(
        lambda s: event_queries.events_between(s, account_id=account_id, after=since, upto=boundary)
    )
    for row in rows:
        event = WireEvent(account_id, row.seq, row.integration_id, None, row.frame, row.type)
        if feed.may_see(user_id, event):
            await websocket.send_text(row.frame)


class FrameBudget:
    """Client frames per second: a token bucket. A client whose excess frames keep coming (too
    many dropped within a window) is disconnected; one that only bursts now and then is not."""

    WINDOW = 10.0
    __slots__ = ("burst", "dropped", "rate", "refilled", "tokens", "tolerance", "window_start")

    def __init__(self, *, rate: float = 20.0, burst: int = 60, tolerance: int = 200) -> None:
        self.rate, self.burst, self.tolerance = rate, burst, tolerance
        self.tokens = float(burst)
        self.refilled = time.monotonic()
        self.window_start = self.refilled
        self.dropped = 0  # within the current window

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if now - self.window_start > self.WINDOW:
            self.window_start, self.dropped = now, 0
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.dropped >= self.tolerance


async def _receive(websocket: WebSocket, connection: Connection) -> None:
    """Client frames: `ping` gets `pong`; anything else an error frame. The socket stays open,
    unless the client floods it (then 1008, policy violation)."""
    budget = FrameBudget()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if not budget.allow():
            if budget.exhausted:
                await websocket.close(code=CLOSE_POLICY, reason="too many frames")
                return
            if budget.dropped == 1:
                connection.push(error_frame("rate_limited", "Too many frames; some were dropped."))
            continue
        _answer(connection, message.get("text"))


def _answer(connection: Connection, text: str | None) -> None:
    if text is None:
        connection.push(error_frame("unsupported_frame", "Binary frames are not supported."))
        return
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        connection.push(error_frame("bad_request", "Frames must be JSON objects."))
        return
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "ping":
        connection.push(PONG_FRAME)
    else:
        connection.push(
            error_frame("unknown_type", "Unknown frame type; only `ping` is understood.")
        )
