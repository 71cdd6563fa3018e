"""`presence.updated`: coalesced per account across all nodes, at most one frame a second.

Nodes add the users whose `online` or `available` changed to a Redis set per account; whichever
node takes the account's one-second flush lock empties the set into a single frame. A team of N
reconnecting after a deploy costs each client a few frames, not N.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlmodel import col, select

from server.domain.events import PendingEvent, encode_frame
from server.domain.views import user_view
from server.realtime.presence import PresenceStore
from server.state.models import User

if TYPE_CHECKING:
    from server.realtime.hub import Hub
    from server.runtime import Runtime

log = logging.getLogger(__name__)
WINDOW = 1.0


class PresenceNotifier:
    def __init__(self, runtime: Runtime, store: PresenceStore, hub: Hub) -> None:
        self.runtime = runtime
        self.store = store
        self.hub = hub
        self._scheduled: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def changed(self, account_id: int, user_ids: list[int]) -> None:
        """Note a transition; a frame listing it goes out within about a second."""
        if not user_ids:
            return
        await self.store.redis.sadd(
            self.store.key(account_id, "changed"), *[str(u) for u in user_ids]
        )
        if account_id not in self._scheduled:
            self._scheduled.add(account_id)
            task = asyncio.create_task(self._flush_soon(account_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush_soon(self, account_id: int) -> None:
        try:
            while True:
                await asyncio.sleep(WINDOW)
                if await self._flush(account_id):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("presence flush for account %s failed", account_id)
        finally:
            self._scheduled.discard(account_id)

    async def _flush(self, account_id: int) -> bool:
        """Send the pending changes if this node holds the flush lock; True when nothing is left."""
        redis = self.store.redis
        if not await redis.set(
            self.store.key(account_id, "flush"), "1", nx=True, px=int(WINDOW * 1000)
        ):
            return not await redis.exists(self.store.key(account_id, "changed"))
        raw = await redis.spop(self.store.key(account_id, "changed"), 10_000)
        user_ids = sorted({int(u) for u in raw or []})
        if not user_ids:
            return True
        online = await self.store.online(account_id)
        users = await self.runtime.read(
            lambda s: list(s.exec(select(User).where(col(User.id).in_(user_ids))).all())
        )
        views = [user_view(u, online=u.id in online) for u in users if u.account_id == account_id]
        frame = encode_frame("presence.updated", None, {"users": views})
        await self.hub.publish([PendingEvent(account_id, "presence.updated", None, frame)])
        return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
