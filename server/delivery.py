"""The outbound worker: sends queued replies through their providers, retrying with backoff.

Jobs live in the database (written with the reply, in its transaction), so a crash or a provider
outage loses nothing. A job is claimed with a lease before sending, so two nodes never send it
at once; a node that dies mid-send leaves the lease to expire and another node retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from server.domain import delivery
from server.providers.base import SendError, SendResult
from server.runtime import Runtime

log = logging.getLogger(__name__)

# Waits between attempts to record a successful send, well within the 60 s lease.
RECORD_SENT_RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class OutboundWorker:
    def __init__(
        self, runtime: Runtime, *, poll_interval: float = 1.0, base_delay: float = 2.0
    ) -> None:
        self.runtime = runtime
        self.poll_interval = poll_interval
        self.base_delay = base_delay
        self._wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for work now (a reply was just committed)."""
        self._wake.set()

    def retry_delay(self, attempt: int) -> timedelta:
        seconds = min(self.base_delay * 2 ** (attempt - 1), 300.0)
        return timedelta(seconds=seconds * random.uniform(0.8, 1.2))

    async def run(self) -> None:
        while True:
            try:
                await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbound sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            self._wake.clear()

    async def _sweep(self) -> None:
        services = self.runtime.services
        job_ids = await self.runtime.read(lambda s: delivery.due_job_ids(s, services, limit=50))
        self.runtime.metrics.outbound_backlog.set(await self.runtime.read(delivery.backlog))
        for job_id in job_ids:
            if job_id not in self._inflight:
                self._inflight.add(job_id)
                task = asyncio.create_task(self._deliver(job_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job_id: int) -> None:
        services = self.runtime.services
        claimed = None
        try:
            claimed = await self.runtime.write(lambda s: delivery.claim(s, services, job_id=job_id))
            if claimed is None:
                return
            provider = self.runtime.providers[claimed.provider]
            try:
                result = await provider.send(
                    claimed.message, public=claimed.public, secrets=claimed.secrets
                )
            except SendError as exc:
                error, transient = str(exc), exc.transient
                delay = self.retry_delay(claimed.attempt)
                await self.runtime.write(
                    lambda s: delivery.record_failure(
                        s, services, job_id=job_id, error=error, transient=transient, retry_in=delay
                    )
                )
                return
            await self._record_sent(job_id, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug or a broken setting, not the provider's answer: retried like an outage, so
            # that it ends as "failed" after the last attempt instead of looping for ever.
            log.exception("delivering outbound job %s failed", job_id)
            error = f"internal error: {exc.__class__.__name__}"
            # A claim that failed was rolled back: this attempt has not been counted yet.
            await self._record_failure(job_id, error, count_attempt=claimed is None)
        finally:
            self._inflight.discard(job_id)

    async def _record_sent(self, job_id: int, result: SendResult) -> None:
        """The provider took the reply: keep trying to record that through a short database
        outage (within the job's lease), since sending it again is the worse outcome."""
        services = self.runtime.services
        for delay in RECORD_SENT_RETRIES:
            try:
                await self.runtime.write(
                    lambda s: delivery.record_sent(s, services, job_id=job_id, result=result)
                )
                return
            except (OperationalError, PoolTimeout):
                log.warning("recording sent job %s failed; retrying in %s s", job_id, delay)
                await asyncio.sleep(delay)
        await self.runtime.write(
            lambda s: delivery.record_sent(s, services, job_id=job_id, result=result)
        )

    async def _record_failure(self, job_id: int, error: str, *, count_attempt: bool) -> None:
        services = self.runtime.services
        delay = self.retry_delay(delivery.MAX_ATTEMPTS)
        try:
            await self.runtime.write(
                lambda s: delivery.record_failure(
                    s,
                    services,
                    job_id=job_id,
                    error=error,
                    transient=True,
                    retry_in=delay,
                    count_attempt=count_attempt,
                )
            )
        except Exception:
            log.exception("recording the failure of outbound job %s failed", job_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
