"""The publish seam. Actions' events arrive here after their transaction commits."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from server.domain.events import PendingEvent

Listener = Callable[[PendingEvent], Awaitable[None]]


class Publisher(Protocol):
    async def publish(self, events: list[PendingEvent]) -> None: ...


class LocalPublisher:
    """Hands events to this process's listeners and remembers the latest ones (for inspection)."""

    def __init__(self, *, remember: int = 1000) -> None:
        self.recent: deque[PendingEvent] = deque(maxlen=remember)
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(self, events: list[PendingEvent]) -> None:
        for event in events:
            self.recent.append(event)
            for listener in self._listeners:
                await listener(event)
