"""The email worker: sends due notification email from the outbox, retrying with backoff.

Runs on every node when SMTP_URL is set. Digests are claimed with a lease before sending, so
two nodes never send the same email; a node that dies mid-send leaves the lease to expire and
another node sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from server.domain import email_outbox
from server.notify.compose import compose
from server.notify.smtp import SendFailed, SmtpServer
from server.runtime import Runtime

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 60.0


class EmailWorker:
    def __init__(
        self,
        runtime: Runtime,
        smtp: SmtpServer,
        *,
        poll_interval: float = 1.0,
        base_delay: float = 5.0,
        max_delay: float = 300.0,
    ) -> None:
        self.runtime = runtime
        self.smtp = smtp
        self.poll_interval = poll_interval
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pruned_at = 0.0

    def retry_delay(self, attempt: int) -> timedelta:
        seconds = min(self.base_delay * 2 ** min(max(attempt - 1, 0), 20), self.max_delay)
        return timedelta(seconds=seconds * random.uniform(0.8, 1.2))

    async def run(self) -> None:
        while True:
            try:
                await self._sweep()
                await self._prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("email sweep failed")
            await asyncio.sleep(self.poll_interval)

    async def _sweep(self) -> None:
        services = self.runtime.services
        ids = await self.runtime.read(lambda s: email_outbox.due_ids(s, services, limit=50))
        for digest_id in ids:
            if digest_id not in self._inflight:
                self._inflight.add(digest_id)
                task = asyncio.create_task(self._send(digest_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_INTERVAL:
            return
        services = self.runtime.services
        await self.runtime.write(lambda s: email_outbox.prune(s, services))
        self._pruned_at = time.monotonic()

    async def _send(self, digest_id: int) -> None:
        services, settings = self.runtime.services, self.runtime.settings
        claimed = None
        try:
            claimed = await self.runtime.write(
                lambda s: email_outbox.claim(s, services, digest_id=digest_id)
            )
            if claimed is None:
                return
            message = compose(claimed, public_url=settings.public_url, sender=settings.email_from)
            through = claimed.through_seq
            try:
                await self.smtp.send(message)
            except SendFailed as exc:
                await self._failed(
                    digest_id,
                    str(exc),
                    attempt=claimed.attempt,
                    through_seq=through,
                    permanent=exc.permanent,
                    counted=not exc.unreachable,
                )
                return
            await self.runtime.write(
                lambda s: email_outbox.record_sent(
                    s, services, digest_id=digest_id, through_seq=through
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("sending notification email %s failed", digest_id)
            await self._failed(
                digest_id,
                f"internal error: {exc.__class__.__name__}",
                attempt=claimed.attempt if claimed else email_outbox.MAX_ATTEMPTS,
                through_seq=claimed.through_seq if claimed else None,
                # A claim that failed was rolled back: this attempt has not been counted yet.
                count_attempt=claimed is None,
            )
        finally:
            self._inflight.discard(digest_id)

    async def _failed(
        self,
        digest_id: int,
        error: str,
        *,
        attempt: int,
        through_seq: int | None,
        permanent: bool = False,
        counted: bool = True,
        count_attempt: bool = False,
    ) -> None:
        services = self.runtime.services
        delay = self.retry_delay(attempt)
        try:
            retrying = await self.runtime.write(
                lambda s: email_outbox.record_failure(
                    s,
                    services,
                    digest_id=digest_id,
                    error=error,
                    retry_in=delay,
                    through_seq=through_seq,
                    permanent=permanent,
                    counted=counted,
                    count_attempt=count_attempt,
                )
            )
        except Exception:
            log.exception("recording the failure of notification email %s failed", digest_id)
            return
        if retrying:
            log.warning("notification email %s not sent (%s); retrying", digest_id, error)
        else:
            log.error("notification email %s dropped: %s", digest_id, error)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def start_email_worker(runtime: Runtime) -> Callable[[], Awaitable[None]]:
    """Start sending notification email if SMTP_URL is set; returns the function that stops it."""
    if not runtime.settings.smtp_url:

        async def nothing_to_stop() -> None:
            return None

        return nothing_to_stop
    worker = EmailWorker(runtime, SmtpServer.from_url(runtime.settings.smtp_url))
    task = asyncio.create_task(worker.run(), name="email-worker")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()

    return stop
