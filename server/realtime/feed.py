"""One account's events on this node: in seq order, none lost, none twice, each to whom may see it.

Events arrive from the committing node itself, from Redis pub/sub, and from the event log when
a gap shows (a seq skipped, Redis reconnected, or the periodic check finds the log ahead). One
task per account handles them in order; on a gap it reads the missing events from the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Container
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.domain.access import audience_map
from server.realtime.connection import Connection
from server.realtime.frames import PersonalFrames
from server.realtime.wire import WireEvent
from server.state import event_queries

if TYPE_CHECKING:
    from server.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Read the log up to `target` (the log is ahead of what this node delivered)."""

    target: int


class AccountFeed:
    def __init__(
        self,
        runtime: Runtime,
        account_id: int,
        *,
        last_seq: int,
        audience: dict[int, frozenset[int]],
    ) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.last_seq = last_seq
        self._audience = audience
        self.connections: dict[int, Connection] = {}
        self._by_user: dict[int, dict[int, Connection]] = {}
        # Per integration, the sockets here that may see its conversations: worked out at its
        # first event since a socket came or went or the audience changed, not per event.
        self._viewing: dict[int, list[Connection]] = {}
        self._inbox: asyncio.Queue[WireEvent | CatchUp] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @property
    def audience(self) -> dict[int, frozenset[int]]:
        """Per integration, the users with shared access to it."""
        return self._audience

    @audience.setter
    def audience(self, audience: dict[int, frozenset[int]]) -> None:
        self._audience = audience
        self._viewing.clear()

    # Connections -----------------------------------------------------------------------------

    def attach(self, connection: Connection, since: int | None) -> int:
        """Start feeding `connection`; returns the seq up to which the log must replay to it."""
        boundary = self.last_seq
        connection.cursor = max(boundary, since or 0)
        self.connections[connection.id] = connection
        self._by_user.setdefault(connection.user_id, {})[connection.id] = connection
        self._viewing.clear()
        return boundary

    def detach(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        self._viewing.clear()
        mine = self._by_user.get(connection.user_id)
        if mine is not None:
            mine.pop(connection.id, None)
            if not mine:
                del self._by_user[connection.user_id]

    def _viewers(self, event: WireEvent) -> Container[int] | None:
        """Who may see `event`, None meaning every user of the account: conversation events go
        to users with shared access, personal ones to their user."""
        if event.user_id is not None:
            return (event.user_id,)
        if event.integration_id is not None:
            return self.audience.get(event.integration_id, frozenset())
        return None

    def may_see(self, user_id: int, event: WireEvent) -> bool:
        viewers = self._viewers(event)
        return viewers is None or user_id in viewers

    # Events ----------------------------------------------------------------------------------

    def submit(self, item: WireEvent | CatchUp) -> None:
        self._inbox.put_nowait(item)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"feed-{self.account_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, CatchUp):
                    await self._catch_up(item.target)
                elif item.seq is None:
                    self._deliver(item)
                elif item.seq == self.last_seq + 1:
                    await self._deliver_next(item)
                elif item.seq > self.last_seq:
                    await self._catch_up(item.seq)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The log stays the truth: the periodic check will catch up once the DB answers.
                log.exception("feed %s could not process an event", self.account_id)

    async def _deliver_next(self, event: WireEvent) -> None:
        assert event.seq is not None
        if event.type.startswith("integration."):
            # Who sees what changed. Reload first: if that fails, the event stays undelivered.
            await self.reload_audience()
        self.last_seq = event.seq
        self._deliver(event)

    async def _catch_up(self, target: int) -> None:
        if target <= self.last_seq:
            return
        after = self.last_seq
        rows = await self.runtime.read(
            lambda s: event_queries.events_between(
                s, account_id=self.account_id, after=after, upto=target
            )
        )
        for row in rows:
            if row.seq > self.last_seq:
                await self._deliver_next(
                    WireEvent(
                        self.account_id, row.seq, row.integration_id, None, row.frame, row.type
                    )
                )
        self.last_seq = max(self.last_seq, target)

    def _deliver(self, event: WireEvent) -> None:
        if event.recipients:
            delivered = self._deliver_personal(event)
        else:
            frame, seq = event.frame, event.seq
            targets = self._audience_of(event)
            for connection in targets:
                connection.push(frame, seq)
            delivered = len(targets)
        metrics = self.runtime.metrics
        metrics.events_delivered.inc(delivered)
        if event.published_at and delivered:
            metrics.delivery_seconds.observe(max(time.time() - event.published_at, 0.0))

    def _audience_of(self, event: WireEvent) -> Collection[Connection]:
        """The sockets here that may see `event`."""
        if event.user_id is not None:
            # One user's event: their sockets only, not a scan of everyone's.
            return list(self._by_user.get(event.user_id, {}).values())
        integration_id = event.integration_id
        if integration_id is None:
            return list(self.connections.values())
        viewing = self._viewing.get(integration_id)
        if viewing is None:
            viewers = self._audience.get(integration_id, frozenset())
            viewing = [c for c in self.connections.values() if c.user_id in viewers]
            self._viewing[integration_id] = viewing
        return viewing

    def _deliver_personal(self, event: WireEvent) -> int:
        """Each recipient's own frame (e.g. their notification's id) to their sockets here."""
        frames = PersonalFrames(event.frame)
        by_user = self._by_user
        delivered = 0
        for user_id, item_id in event.recipients:
            sockets = by_user.get(user_id)
            if sockets:
                for connection in sockets.values():  # pushing never attaches or detaches
                    connection.push_personal(frames, item_id)
                delivered += len(sockets)
        return delivered

    async def reload_audience(self) -> None:
        self.audience = await self.runtime.read(
            lambda s: audience_map(s, account_id=self.account_id)
        )
