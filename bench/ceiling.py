"""The ceiling: the least a Python process can do to fan Redis pub/sub messages out to websockets.

A bare `websockets` (asyncio API) server on uvloop, like the server's own stack. It accepts
clients on `/ws` (any bearer token: no database, no auth), greets each with a `hello` frame,
subscribes to one Redis channel and sends every message on it — a Switchboard wire message of
one event, whose last line is the frame — to every client with `websockets.broadcast` (one
encoding per client, no task, no queue). Like Switchboard's bounded outbox, a client with over
1 MiB unsent misses frames (counted) instead of growing memory without bound.
permessage-deflate is negotiated exactly as uvicorn's websockets-sansio protocol does (12-bit
windows, memLevel 5), unless `--no-deflate`.
GET /healthz answers 200 once the subscription is live.

    python -m bench.ceiling --port 9000 --redis-url redis://127.0.0.1:6379/0 --channel bench
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from http import HTTPStatus

import orjson
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response

BACKLOG_LIMIT = 1024 * 1024
HELLO = orjson.dumps(
    {"type": "hello", "seq": 0, "data": {"user": {"id": 0, "name": "ceiling"}}}
).decode()


class Ceiling:
    def __init__(self, redis_url: str, channel: str) -> None:
        self.redis = Redis.from_url(redis_url)
        self.channel = channel
        self.clients: set[ServerConnection] = set()
        self.ready = asyncio.Event()
        self.forwarded = 0
        self.skipped = 0

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            status = HTTPStatus.OK if self.ready.is_set() else HTTPStatus.SERVICE_UNAVAILABLE
            return connection.respond(status, f"{self.forwarded} {self.skipped}\n")
        if request.path.split("?")[0] != "/ws":
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return connection.respond(HTTPStatus.FORBIDDEN, "no token\n")
        return None

    async def handler(self, websocket: ServerConnection) -> None:
        await websocket.send(HELLO)
        self.clients.add(websocket)
        try:
            await websocket.wait_closed()
        finally:
            self.clients.discard(websocket)

    async def relay(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)
        self.ready.set()
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            _header, _, frame = message["data"].rpartition(b"\n")  # one event: its frame is last
            ready = [c for c in self.clients if c.transport.get_write_buffer_size() < BACKLOG_LIMIT]
            self.skipped += len(self.clients) - len(ready)
            broadcast(ready, frame, text=True)
            self.forwarded += 1


async def main(args: argparse.Namespace) -> None:
    ceiling = Ceiling(args.redis_url, args.channel)
    extensions = (
        []
        if args.no_deflate
        else [
            ServerPerMessageDeflateFactory(
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        ]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = asyncio.create_task(ceiling.relay())
    async with serve(
        ceiling.handler,
        "127.0.0.1",
        args.port,
        process_request=ceiling.process_request,
        compression=None,
        extensions=extensions,
        max_size=64 * 1024,
        ping_interval=20,
        ping_timeout=20,
        backlog=4096,
    ):
        await stop.wait()
    relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relay
    await ceiling.redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--no-deflate", action="store_true")
    try:
        import uvloop

        uvloop.run(main(parser.parse_args()))
    except ImportError:
        asyncio.run(main(parser.parse_args()))
