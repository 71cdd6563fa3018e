"""This node's realtime hub: the publish path, one Redis subscription per account, the feeds.

Events are delivered to this node's sockets straight after commit, and published to Redis
pub/sub (through `broadcaster`, with our own backend) for the other nodes. Pub/sub is
at-most-once, so each feed also compares its position with the event log every second and on
every Redis reconnect, and reads what it missed from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import TYPE_CHECKING

from broadcaster import Broadcast

from server.domain.access import audience_map
from server.domain.events import PendingEvent
from server.realtime import wire
from server.realtime.backend import GAP_CHANNEL, ResilientRedisBackend
from server.realtime.feed import AccountFeed, CatchUp
from server.state import event_queries

if TYPE_CHECKING:
    from server.runtime import Runtime

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
# A feed with no sockets left stays subscribed this long, so reconnect storms don't churn.
IDLE_GRACE = 30.0


class Hub:
    def __init__(self, runtime: Runtime, redis_url: str) -> None:
        self.runtime = runtime
        self.prefix = runtime.settings.redis_prefix
        self.node_id = secrets.token_hex(6)
        self.backend = ResilientRedisBackend(redis_url)
        self.broadcast = Broadcast(backend=self.backend)
        self.feeds: dict[int, AccountFeed] = {}
        self._listeners: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._observed: dict[int, int] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.broadcast.connect()
        gap_ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen_for_gaps(gap_ready), name="hub-gaps"),
            asyncio.create_task(self._check_forever(), name="hub-check"),
        ]
        await gap_ready.wait()

    async def stop(self) -> None:
        for task in [*self._tasks, *self._listeners.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._listeners.values(), return_exceptions=True)
        for feed in self.feeds.values():
            await feed.stop()
        self.feeds.clear()
        with contextlib.suppress(Exception):
            await self.broadcast.disconnect()

    # Publishing ------------------------------------------------------------------------------

    async def publish(self, events: list[PendingEvent]) -> None:
        """After commit: deliver here at once, then tell the other nodes, in one pub/sub
        message per account (a transaction's events travel together)."""
        now = time.time()
        by_account: dict[int, list[PendingEvent]] = {}
        for event in events:
            by_account.setdefault(event.account_id, []).append(event)
            feed = self.feeds.get(event.account_id)
            if feed is not None:
                feed.submit(wire.from_pending(event, now))
        for account_id, batch in by_account.items():
            try:
                await self.broadcast.publish(
                    wire.channel_for(self.prefix, account_id), wire.encode(batch, self.node_id, now)
                )
            except Exception as exc:  # the log still has it; other nodes catch up from there
                log.warning(
                    "publishing %s to redis failed: %s",
                    ", ".join(sorted({e.type for e in batch})),
                    exc.__class__.__name__,
                )

    # Feeds -----------------------------------------------------------------------------------

    async def feed_for(self, account_id: int) -> AccountFeed:
        """The account's feed, subscribing this node to its channel once (under a lock)."""
        feed = self.feeds.get(account_id)
        if feed is not None:
            return feed
        async with self._locks.setdefault(account_id, asyncio.Lock()):
            feed = self.feeds.get(account_id)
            if feed is not None:
                return feed
            ready = asyncio.Event()
            listener = asyncio.create_task(
                self._listen(account_id, ready), name=f"hub-listen-{account_id}"
            )
            await ready.wait()
            # Subscribed first, position read second: nothing published in between is missed.
            seqs = await self.runtime.read(
                lambda s: event_queries.event_seqs(s, account_ids=[account_id])
            )
            audience = await self.runtime.read(lambda s: audience_map(s, account_id=account_id))
            feed = AccountFeed(
                self.runtime, account_id, last_seq=seqs[account_id][0], audience=audience
            )
            feed.start()
            self.feeds[account_id] = feed
            self._listeners[account_id] = listener
            return feed

    def release_later(self, feed: AccountFeed) -> None:
        """Drop the subscription once the feed has had no sockets for a while."""
        if not feed.connections:
            asyncio.get_running_loop().call_later(
                IDLE_GRACE, self._release_if_idle, feed.account_id
            )

    def _release_if_idle(self, account_id: int) -> None:
        feed = self.feeds.get(account_id)
        if feed is None or feed.connections:
            return
        del self.feeds[account_id]
        listener = self._listeners.pop(account_id, None)
        if listener is not None:
            listener.cancel()
        task = asyncio.create_task(feed.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _listen(self, account_id: int, ready: asyncio.Event) -> None:
        async with self.broadcast.subscribe(
            wire.channel_for(self.prefix, account_id)
        ) as subscriber:
            ready.set()
            async for event in subscriber:  # type: ignore[union-attr]
                if event is None or wire.origin_of(event.message) == self.node_id:
                    continue  # our own: delivered here at commit already
                try:
                    items = wire.decode(account_id, event.message)
                except ValueError:
                    log.warning("ignoring a foreign message on %s", event.channel)
                    continue
                feed = self.feeds.get(account_id)
                if feed is not None:
                    for item in items:
                        feed.submit(item)

    async def _listen_for_gaps(self, ready: asyncio.Event) -> None:
        async with self.broadcast.subscribe(GAP_CHANNEL) as subscriber:
            ready.set()
            async for _ in subscriber:  # type: ignore[union-attr]
                await self._check(immediately=True)

    # The safety net --------------------------------------------------------------------------

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                await self._check(immediately=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event log check failed: %s", exc.__class__.__name__)

    async def _check(self, *, immediately: bool) -> None:
        """Catch feeds up with the log. Normally only to what was already there a check ago,
        since events committed a moment ago are usually still on their way through pub/sub."""
        if not self.feeds:
            return
        account_ids = list(self.feeds)
        seqs = await self.runtime.read(
            lambda s: event_queries.event_seqs(s, account_ids=account_ids)
        )
        for account_id, (latest, _pruned) in seqs.items():
            feed = self.feeds.get(account_id)
            if feed is None:
                continue
            target = latest if immediately else min(latest, self._observed.get(account_id, 0))
            if target > feed.last_seq:
                feed.submit(CatchUp(target))
            self._observed[account_id] = latest
