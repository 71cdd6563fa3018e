"""The running server's parts, shared by handlers and background workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import httpx
from anyio import CapacityLimiter, to_thread
from redis.asyncio import Redis
from sqlmodel import Session

from server.config import Settings
from server.domain.events import PendingEvent, seal
from server.domain.integrations import IntegrationSecrets
from server.domain.services import Services
from server.metrics import Metrics
from server.providers.base import Provider
from server.providers.registry import build_providers
from server.realtime.publisher import Publisher, Unstarted
from server.security.ratelimit import RateLimiter

if TYPE_CHECKING:
    from server.realtime.service import Realtime
from server.state.db import Database
from server.state.ttl_cache import TtlCache

T = TypeVar("T")
INTEGRATION_SECRETS_TTL = 2.0  # seconds


class Runtime:
    """Settings, database, Redis and the publish seam; `read`/`write` run DB work off the loop."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        db: Database,
        redis: Redis,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.db = db
        self.redis = redis
        self.publisher: Publisher = Unstarted()
        self.realtime: Realtime
        self.metrics = Metrics()
        # Abuse limits (signup, login, webhooks), counted in Redis for all nodes together.
        self.limits = RateLimiter(
            redis, prefix=settings.redis_prefix, clock=services.now, metrics=self.metrics
        )
        # One pooled HTTP client for every call to providers' APIs.
        self.http = http
        self.providers: dict[str, Provider] = build_providers(settings, http)
        # Each webhook's integration and decrypted settings, kept a moment: at 20 messages/s
        # reading them costs more than storing the message. A change made here drops the copy;
        # other nodes' copies expire (a webhook failing its check is checked again, read anew).
        self.integration_secrets: TtlCache[int, IntegrationSecrets] = TtlCache(
            ttl=INTEGRATION_SECRETS_TTL, size=10_000
        )
        # Bounded like the connection pool, so threads never queue on a pool checkout.
        self._limiter = CapacityLimiter(30)
        # Set by the outbound worker at start: tells it a reply was just committed.
        self.outbound_wake: Callable[[], None] = lambda: None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def read(self, work: Callable[[Session], T]) -> T:
        return await to_thread.run_sync(self.db.read, work, limiter=self._limiter)

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction, then publish the events it recorded (after commit)."""

        def work_then_seal(session: Session) -> tuple[T, list[PendingEvent]]:
            result = work(session)
            return result, seal(session)

        result, events = await to_thread.run_sync(
            self.db.write, work_then_seal, limiter=self._limiter
        )
        if events:
            await self.publisher.publish(events)
            for event in events:
                self.metrics.events_published.labels(event.type).inc()
        return result
