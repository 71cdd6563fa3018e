"""The publish seam: what actions' events go through after their transaction commits."""

from __future__ import annotations

from typing import Protocol

from server.domain.events import PendingEvent


class Publisher(Protocol):
    async def publish(self, events: list[PendingEvent]) -> None: ...


class Unstarted:
    """Until the realtime side starts, nothing may publish: every event would be lost."""

    async def publish(self, events: list[PendingEvent]) -> None:
        raise RuntimeError("events published before the realtime hub started")
