"""How uvicorn serves the app, the same for `python -m server run`, Procfile and tests."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import Coroutine
from typing import Any

import uvicorn
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from server.realtime.service import going_away


class _Inbox:
    """What uvicorn's protocol uses of its `asyncio.Queue` of received messages (`put_nowait`,
    `get`, `empty`) without the Queue's four deques, ~3 KiB per socket from the start."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] = []

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        for waiter in self._waiters:  # each looks again; in practice there is one
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        return self._items.pop(0)


class _Flag:
    """What uvicorn's protocol uses of its `writable` `asyncio.Event`, with no deque (~760 bytes)
    until something waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, holding less while a socket idles: leaner receive
    queue and `writable` flag, and no handshake request or response once the socket is open
    (docs/PERFORMANCE.md, "Idle connections")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The scope has its own copy of the request's headers, and uvicorn does not look at the
        # request again; websockets' parser does not either, but keeps it for the socket's life
        # (a local of its generator): its parsed headers go.
        vars(self).pop("request", None)
        event.headers.clear()

    def send(self, message: ASGISendEvent) -> Coroutine[Any, Any, None]:
        if self.handshake_complete:
            vars(self).pop("response", None)  # only read until the handshake is complete
        return super().send(message)


UVICORN_OPTIONS: dict[str, Any] = {
    "ws": WebSocketProtocol,
    # Client frames are small JSON (`ping`); anything bigger is hostile or a bug.
    "ws_max_size": 64 * 1024,
    # Per-message deflate roughly doubles the CPU of every delivery and costs ~44 KiB of
    # compressor state per socket (docs/PERFORMANCE.md): off unless WS_COMPRESSION=1.
    "ws_per_message_deflate": os.environ.get("WS_COMPRESSION", "0") == "1",
    # Server-side heartbeats: a peer that does not answer a ping within 20 s is dropped.
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
    # Behind a load balancer: trust X-Forwarded-* from it (set FORWARDED_ALLOW_IPS).
    "proxy_headers": True,
    "timeout_graceful_shutdown": 10,
}


# Python's default (700, 10, 10) runs a young-generation collection every 700 new containers:
# several per inbound message once a thousand sockets each get their frames. Measured at 1,000
# agents and 20 messages/s (docs/PERFORMANCE.md), these settings with `freeze_startup_objects`
# took p99 latency from 150-180 ms to 50-60 ms.
GC_THRESHOLDS = (20_000, 20, 10)


def freeze_startup_objects() -> None:
    """Collect once, then exempt everything alive after start-up (modules, mappers, routes: a
    hundred thousand objects and more, for good) from every later collection, so a full one
    scans only what the server made since."""
    gc.collect()
    gc.freeze()


class Server(uvicorn.Server):
    """uvicorn, but websockets hear "going away" (1001) first, so clients move to another node
    at once instead of waiting for their heartbeat to time out; and collections of garbage are
    fewer and shorter once it has started (`GC_THRESHOLDS`, `freeze_startup_objects`)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        gc.set_threshold(*GC_THRESHOLDS)
        freeze_startup_objects()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the old ones are told to leave
        await going_away()
        await super().shutdown(sockets)
