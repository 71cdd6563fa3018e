"""Request rate limits shared by every node through Redis: a sliding-window counter.

Each (limit, subject) pair counts requests in fixed windows of `period` seconds, one Redis key per
window. A request is allowed while the sliding estimate

    previous window's count * (the part of the previous window still inside the sliding one)
    + this window's count + 1

stays within the limit (Cloudflare's approximation: no burst of twice the limit at a window
edge, two small keys per subject). A Lua script reads both counters and counts the request only
if it is allowed, atomically, so nodes racing for the last slot never both get it, and refused
requests do not push the wait further out: `Retry-After` is exact for a client that waits it.

Windows follow the server's clock (the test clock in the suite); keys expire after two windows.
If Redis does not answer, requests are allowed (fail open) and a warning is logged: limits are
a defence against floods, not something REST may depend on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.config import Rate
from server.errors import RateLimited
from server.metrics import Metrics

log = logging.getLogger(__name__)

# KEYS: this window's counter, the previous window's. ARGV: limit, weight of the previous window,
# expiry in ms. Returns {allowed (0/1), this window's count, the previous window's count}.
_HIT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * tonumber(ARGV[2]) + current + 1 > tonumber(ARGV[1]) then
  return {0, current, previous}
end
current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, current, previous}
"""

REDIS_TIMEOUT = 0.5  # seconds a check may wait for Redis before failing open
OUTAGE_BACKOFF = 5.0  # after a failure, skip Redis (allow) this long instead of waiting each time
WARN_EVERY = 60.0  # at most one outage warning per this many seconds


def estimate(rate: Rate, *, elapsed: float, current: int, previous: int) -> float:
    """Requests in the sliding window that ends `elapsed` seconds into the current window."""
    return previous * (1 - elapsed / rate.period) + current


def retry_after(rate: Rate, *, elapsed: float, current: int, previous: int) -> int:
    """Whole seconds until one more request fits, for a subject refused `elapsed` seconds into
    the current window with these counts (refused requests are not counted)."""
    period = rate.period
    if current + 1 <= rate.count and previous > 0:
        # Later in this window: previous * (1 - e/period) + current + 1 <= count.
        wait = period * (1 - (rate.count - current - 1) / previous) - elapsed
    else:
        # In the next window, this one's count becomes the previous one, fading out.
        fade = period * (1 - (rate.count - 1) / current) if current > 0 else 0.0
        wait = (period - elapsed) + max(fade, 0.0)
    return max(1, math.ceil(wait - 1e-9))


def client_subject(host: str | None) -> str:
    """The rate-limit subject of a client address: the IP, or its /64 for IPv6 (one subscriber
    usually holds a whole /64, so counting single IPv6 addresses would be no limit at all)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter:
    """Counts requests in Redis under `<prefix>:ratelimit:`; raises `RateLimited` over a limit."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:ratelimit"
        self.clock = clock
        self.metrics = metrics
        self._hit = redis.register_script(_HIT)
        self._skip_until = 0.0
        self._warned_at = -math.inf

    def key(self, name: str, subject: str, window: int) -> str:
        # The hash tag keeps a subject's two windows in one slot of a Redis Cluster.
        return f"{self.prefix}:{{{name}:{subject}}}:{window}"

    async def check(self, name: str, subject: str, rate: Rate | None) -> None:
        """Count one request of `subject` against the limit `name`; 429 when it is over."""
        if rate is None or time.monotonic() < self._skip_until:
            return
        now = self.clock().timestamp()
        window, offset = divmod(now, rate.period)
        keys = [self.key(name, subject, int(window)), self.key(name, subject, int(window) - 1)]
        weight = 1 - offset / rate.period
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                allowed, current, previous = await self._hit(
                    keys=keys, args=[rate.count, repr(weight), rate.period * 2000]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._unavailable(exc)
            return
        if allowed:
            return
        if self.metrics is not None:
            self.metrics.rate_limited.labels(name).inc()
        raise RateLimited(
            retry_after(rate, elapsed=offset, current=int(current), previous=int(previous)),
            "Too many requests; try again later.",
        )

    def _unavailable(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._skip_until = now + OUTAGE_BACKOFF
        if self.metrics is not None:
            self.metrics.rate_limit_unavailable.inc()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "rate limits are not enforced: Redis does not answer (%s); allowing requests",
                exc.__class__.__name__,
            )
