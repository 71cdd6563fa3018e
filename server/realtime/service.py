"""The realtime side of a node: hub, presence and its notifier, and their background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlmodel import col, update

from server.domain.events import PendingEvent
from server.realtime.connection import Connection, Corked
from server.realtime.hub import Hub
from server.realtime.presence import REFRESH_INTERVAL, SWEEP_INTERVAL, PresenceStore
from server.realtime.presence_notifier import PresenceNotifier
from server.state import event_queries
from server.state.models import User

if TYPE_CHECKING:
    from server.runtime import Runtime

log = logging.getLogger(__name__)

# The contract: at least the last 1,000 events of an account, and at least the last hour of them.
RETAIN_EVENTS = 1000
RETAIN_FOR = timedelta(hours=1)
PRUNE_INTERVAL = 60.0


# The realtime sides running in this process (one per app; tests run several).
_RUNNING: weakref.WeakSet[Realtime] = weakref.WeakSet()
GOING_AWAY = 1001


GOING_AWAY_WAIT = 5.0


async def going_away() -> None:
    """Close every websocket of this process with 1001, e.g. before a graceful shutdown."""
    sockets = [
        connection.websocket
        for realtime in list(_RUNNING)
        for feed in list(realtime.hub.feeds.values())
        for connection in list(feed.connections.values())
    ]
    if not sockets:
        return

    async def close(websocket: Any) -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=GOING_AWAY, reason="server shutting down")

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(close(ws) for ws in sockets)), GOING_AWAY_WAIT)


class Realtime:
    """The runtime's publisher: events after commit go through here to every node's sockets."""

    def __init__(self, runtime: Runtime, redis_url: str) -> None:
        self.runtime = runtime
        self.hub = Hub(runtime, redis_url)
        self.presence = PresenceStore(runtime.redis, prefix=runtime.settings.redis_prefix)
        self.notifier = PresenceNotifier(runtime, self.presence, self.hub)
        # Direct-mode sockets' frames of one loop turn, written together at its end.
        self.corked = Corked()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        _RUNNING.add(self)
        await self.hub.start()
        self.runtime.metrics.websocket_connections.set_function(
            lambda: sum(len(feed.connections) for feed in list(self.hub.feeds.values()))
        )
        self._loops = [
            asyncio.create_task(
                self._every(REFRESH_INTERVAL, self._refresh), name="presence-refresh"
            ),
            asyncio.create_task(self._every(SWEEP_INTERVAL, self._sweep), name="presence-sweep"),
            asyncio.create_task(
                self._every(PRUNE_INTERVAL, self._prune), name="event-log-retention"
            ),
        ]

    async def stop(self) -> None:
        _RUNNING.discard(self)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.notifier.close()
        await self.hub.stop()

    async def publish(self, events: list[PendingEvent]) -> None:
        durable = []
        for event in events:
            if event.type == "presence.updated" and event.seq is None:
                # An availability change: coalesced with presence transitions, not sent as is.
                await self._availability_changed(event)
            else:
                durable.append(event)
        if durable:
            await self.hub.publish(durable)

    async def _availability_changed(self, event: PendingEvent) -> None:
        users = orjson.loads(event.frame)["data"]["users"]
        try:
            for user in users:
                await self.presence.set_available(event.account_id, user["id"], user["available"])
            await self.notifier.changed(event.account_id, [u["id"] for u in users])
        except Exception as exc:  # Redis down: the database has the truth; clients refetch later
            log.warning("availability change not broadcast: %s", exc.__class__.__name__)

    # Connections -----------------------------------------------------------------------------

    async def connected(self, connection: Connection) -> None:
        try:
            if await self.presence.connect(
                connection.account_id, connection.user_id, str(connection.id) + self.hub.node_id
            ):
                await self.notifier.changed(connection.account_id, [connection.user_id])
        except Exception as exc:
            log.warning("presence not recorded: %s", exc.__class__.__name__)

    async def disconnected(self, connection: Connection) -> None:
        try:
            if await self.presence.disconnect(
                connection.account_id, connection.user_id, str(connection.id) + self.hub.node_id
            ):
                await self._went_offline(connection.account_id, [connection.user_id])
        except Exception as exc:
            log.warning("presence not cleared (it will expire): %s", exc.__class__.__name__)

    async def _went_offline(self, account_id: int, user_ids: list[int]) -> None:
        now = self.runtime.services.now()
        await self.runtime.write(
            lambda s: s.exec(
                update(User).where(col(User.id).in_(user_ids)).values(last_seen_at=now)
            )
        )
        await self.notifier.changed(account_id, user_ids)

    # Loops -----------------------------------------------------------------------------------

    async def _every(self, interval: float, work: object) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()  # type: ignore[operator]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "%s failed: %s", getattr(work, "__name__", work), exc.__class__.__name__
                )

    async def _refresh(self) -> None:
        live = [
            (c.account_id, c.user_id, str(c.id) + self.hub.node_id)
            for feed in list(self.hub.feeds.values())
            for c in list(feed.connections.values())
        ]
        await self.presence.refresh(live)

    async def _sweep(self) -> None:
        for account_id, user_ids in (await self.presence.sweep()).items():
            await self._went_offline(account_id, user_ids)

    async def _prune(self) -> None:
        cutoff = self.runtime.services.now() - RETAIN_FOR
        await self.runtime.write(
            lambda s: event_queries.prune_events(s, created_before=cutoff, keep_last=RETAIN_EVENTS)
        )

    async def online(self, account_id: int) -> set[int]:
        """Users online anywhere; empty when Redis does not answer (REST keeps working)."""
        with contextlib.suppress(Exception):
            return await self.presence.online(account_id)
        return set()
