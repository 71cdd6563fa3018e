"""Start-up and shutdown of a node: every part started is stopped, in reverse order, even when
a later part fails to start (no embedded redis-server left behind, no pool left open)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from redis.asyncio import BlockingConnectionPool, Redis

from server.clock import Clock
from server.config import Settings
from server.delivery import OutboundWorker
from server.domain.services import Services
from server.notify.worker import start_email_worker
from server.realtime.service import Realtime
from server.runtime import Runtime
from server.state.db import Database
from server.state.migrate import upgrade
from server.state.redis_server import EmbeddedRedis

# The node's one pool for commands (presence, rate limits, readiness). A caller waits up to 5 s
# for a free connection instead of failing at once: a thousand sockets connecting or closing
# together must queue for Redis, not lose their presence update (docs/PERFORMANCE.md).
REDIS_POOL_SIZE = 100
REDIS_POOL_WAIT = 5.0


def redis_client(url: str) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_POOL_SIZE,
        timeout=REDIS_POOL_WAIT,
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    return Redis.from_pool(pool)


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: Clock) -> AsyncIterator[Runtime]:
    """The node's runtime, with its database migrated, Redis, realtime hub and workers running."""
    async with contextlib.AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        stack.callback(db.dispose)
        await asyncio.to_thread(upgrade, db.write_engine)

        redis_url = settings.redis_url
        if redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            redis_url = embedded.start()
            stack.callback(embedded.stop)
        redis = redis_client(redis_url)
        stack.push_async_callback(redis.aclose)
        http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
        )
        stack.push_async_callback(http.aclose)

        runtime = Runtime(settings, Services.from_settings(settings, clock), db, redis, http)
        runtime.loop = asyncio.get_running_loop()
        runtime.realtime = runtime.publisher = Realtime(runtime, redis_url)
        await runtime.realtime.start()
        stack.push_async_callback(runtime.realtime.stop)

        worker = OutboundWorker(runtime)
        runtime.outbound_wake = worker.wake
        worker_task = asyncio.create_task(worker.run(), name="outbound-worker")
        stack.push_async_callback(_stop_worker, worker, worker_task)
        stack.push_async_callback(start_email_worker(runtime))  # only with SMTP_URL
        yield runtime


async def _stop_worker(worker: OutboundWorker, task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await worker.close()
