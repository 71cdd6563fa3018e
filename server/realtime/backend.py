"""A Redis pub/sub backend for `broadcaster` that survives Redis going away.

broadcaster 0.3.1's own Redis backend loses messages: with redis-py 8 its listener starts
before the first subscription is registered and never delivers it, and when Redis drops its
listener task dies silently. This one owns its read loop: it reads only while subscribed,
reconnects with backoff, resubscribes every channel, and then announces the outage on
`GAP_CHANNEL` so that the hub replays what it may have missed from the event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

GAP_CHANNEL = "switchboard:gap"
MAX_BACKOFF = 5.0


class ResilientRedisBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._publisher = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._subscriber = Redis.from_url(url, socket_connect_timeout=5, health_check_interval=10)
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.connected = False

    async def connect(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="redis-pubsub-reader")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._close_pubsub()
        await self._publisher.aclose()
        await self._subscriber.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self._subscribed.set()
        if self._pubsub is not None and self.connected:
            try:
                await self._pubsub.subscribe(channel)
            except (RedisError, OSError):
                log.warning("subscribe to %s failed; the reconnect loop will retry", channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self._pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._publisher.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def _read_forever(self) -> None:
        backoff = 0.1
        had_connection = False
        while True:
            await self._subscribed.wait()
            try:
                self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(*self._channels)
                self.connected = True
                if had_connection:
                    # Whatever was published while we were away is gone from pub/sub.
                    await self._queue.put(Event(GAP_CHANNEL, "reconnected"))
                had_connection = True
                backoff = 0.1
                await self._pump(self._pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning(
                        "redis pub/sub connection lost (%s); reconnecting", exc.__class__.__name__
                    )
                    await self._queue.put(Event(GAP_CHANNEL, "disconnected"))
            except Exception:
                log.exception("redis pub/sub reader failed; restarting it")
            self.connected = False
            await self._close_pubsub()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _pump(self, pubsub: PubSub) -> None:
        while True:
            if not self._channels:
                self._subscribed.clear()
                await self._subscribed.wait()
                continue
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            channel, data = message["channel"], message["data"]
            await self._queue.put(
                Event(
                    channel.decode() if isinstance(channel, bytes) else str(channel),
                    data.decode() if isinstance(data, bytes) else str(data),
                )
            )
