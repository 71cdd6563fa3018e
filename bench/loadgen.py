"""The load generator: a separate process holding many websocket clients.

The driver talks to it over stdin/stdout, one JSON object per line each way:

- `connect` {url, tokens, deflate, concurrency, limit_s}: open one client per token and wait for
  each one's first frame (the server's `hello`); answers how many opened and why others failed.
- `quiet` {seconds, limit_s}: wait until no frame has arrived for `seconds` (presence settles).
- `start` {tag, messages}: count `message.created` frames of run `tag` from now on.
- `progress`: deliveries counted so far.
- `seen`: the message indexes that reached at least one client (so they were committed).
- `stop` {expected}: per client, which of the `expected` message indexes never arrived (lost) or
  arrived more than once (duplicated); the latency histogram; this process's CPU.
- `status`: clients open and closed.  `close`: close them all.  `exit`.

Message texts carry `bench:<tag>:<index, 8 digits>:<time.monotonic_ns() at send, 19 digits>`;
the latency of a delivery is the arrival time (the read that completed the frame) minus that.
CLOCK_MONOTONIC is one clock for every process on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench import stats
from bench.wsclient import WsClient, connect

CREATED = b'{"type":"message.created"'
RESYNC = b'{"type":"resync_required"'
MARKER = b"bench:"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Generator:
    def __init__(self) -> None:
        self.clients: list[WsClient] = []
        self.greeted: dict[int, asyncio.Future[None]] = {}
        self.frames = 0
        self.last_frame = time.monotonic()
        self.tag = b""
        self.counts: list[bytearray] = []
        self.messages = 0
        self.hist: dict[int, int] = {}
        self.max_us = 0
        self.delivered = 0  # message.created frames of the current run, duplicates included
        self.first_ns = 0
        self.last_ns = 0
        self.resyncs = 0
        self.other = 0
        self.stale = 0
        self.sample: bytes | None = None
        self.closing = False
        self._window: tuple[float, float] = (0.0, 0.0)

    # Frames ------------------------------------------------------------------------------------

    def on_message(self, client: WsClient, payload: bytes, now: int) -> None:
        self.frames += 1
        if client.frames == 1:
            future = self.greeted.get(client.index)
            if future is not None and not future.done():
                future.set_result(None)
        if payload.startswith(CREATED):
            i = payload.find(MARKER)
            if i < 0 or payload[i + 6 : i + 11] != self.tag:
                self.stale += 1
                return
            idx = int(payload[i + 12 : i + 20])
            counts = self.counts[client.index]
            self.delivered += 1
            self.last_ns = now
            if idx >= len(counts):
                return
            seen = counts[idx]
            if seen < 255:
                counts[idx] = seen + 1
            if seen == 0:
                us = (now - int(payload[i + 21 : i + 40])) // 1000
                stats.add(self.hist, us)
                if us > self.max_us:
                    self.max_us = us
                if self.sample is None:
                    self.sample = payload
        elif payload.startswith(RESYNC):
            self.resyncs += 1
        else:
            self.other += 1
        self.last_frame = time.monotonic()

    # Commands ----------------------------------------------------------------------------------

    async def connect(
        self,
        url: str,
        tokens: list[str],
        deflate: bool,
        concurrency: int,
        limit_s: float,
        total_s: float = 600.0,
    ) -> dict[str, Any]:
        parts = urlsplit(url)
        host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
        started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)
        errors: Counter[str] = Counter()
        loop = asyncio.get_running_loop()
        base = len(self.clients)
        slots: dict[int, WsClient] = {}

        async def one(index: int, token: str) -> None:
            self.greeted[index] = loop.create_future()
            async with gate:
                try:
                    slots[index] = await connect(
                        host,
                        port,
                        path,
                        token,
                        self.on_message,
                        deflate=deflate,
                        index=index,
                        limit_s=limit_s,
                    )
                    async with asyncio.timeout(limit_s):
                        await self.greeted[index]
                except Exception as exc:
                    errors[f"{exc.__class__.__name__}: {exc}"[:120]] += 1
                    client = slots.pop(index, None)
                    if client is not None:
                        client.abort()

        # Indexes are dense: a client that failed keeps its slot as a placeholder.
        self.counts.extend(bytearray(self.messages) for _ in tokens)
        attempts = [asyncio.ensure_future(one(base + k, t)) for k, t in enumerate(tokens)]
        # The whole batch is bounded too: whatever has not opened by then counts as failed.
        _done, late = await asyncio.wait(attempts, timeout=total_s)
        for attempt in late:
            attempt.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
            errors[f"not open within {total_s:.0f} s"] += len(late)
            for index in range(base, base + len(tokens)):
                client = slots.get(index)
                if client is not None and not self.greeted[index].done():
                    client.abort()
                    del slots[index]
        for index in range(base, base + len(tokens)):
            self.clients.append(slots.get(index) or _Dead(index))  # type: ignore[arg-type]
        opened = len(slots)
        return {
            "opened": opened,
            "failed": len(tokens) - opened,
            "errors": dict(errors.most_common(5)),
            "seconds": round(time.monotonic() - started, 2),
            "deflate": sum(1 for c in slots.values() if c.deflate),
        }

    async def quiet(self, seconds: float, limit_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit_s
        # A bounded poll: frames arrive in protocol callbacks, not through an awaitable.
        while time.monotonic() - self.last_frame < seconds and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        return {"frames": self.frames, "quiet": time.monotonic() - self.last_frame >= seconds}

    def start(self, tag: str, messages: int) -> dict[str, Any]:
        self.tag = tag.encode()
        self.messages = messages
        self.counts = [bytearray(messages) for _ in self.clients]
        self.hist = {}
        self.max_us = 0
        self.delivered = self.resyncs = self.other = self.stale = 0
        self.last_ns = 0
        self.sample = None
        self._window = (time.monotonic(), _cpu())
        return {"ok": True}

    def seen(self) -> list[int]:
        """Message indexes of the current run that reached at least one client."""
        found = bytearray(self.messages)
        for counts in self.counts:
            for idx, count in enumerate(counts):
                if count:
                    found[idx] = 1
        return [idx for idx, flag in enumerate(found) if flag]

    def stop(self, expected: list[int]) -> dict[str, Any]:
        wall = time.monotonic() - self._window[0]
        cpu = _cpu() - self._window[1]
        lost = duplicated = received = 0
        live = 0
        for client, counts in zip(self.clients, self.counts, strict=True):
            if isinstance(client, _Dead):
                continue
            live += 1
            for idx in expected:
                seen = counts[idx] if idx < len(counts) else 0
                if seen == 0:
                    lost += 1
                else:
                    received += 1
                    duplicated += seen - 1
        self.tag = b""
        return {
            "clients": live,
            "expected": live * len(expected),
            "received": received,
            "lost": lost,
            "duplicated": duplicated,
            "delivered_frames": self.delivered,
            "resyncs": self.resyncs,
            "other_frames": self.other,
            "stale_frames": self.stale,
            "hist": self.hist,
            "max_us": self.max_us,
            "last_ns": self.last_ns,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "sample": self.sample.decode() if self.sample else None,
        }

    def status(self) -> dict[str, Any]:
        open_ = sum(1 for c in self.clients if not isinstance(c, _Dead) and not c.closed.done())
        codes = Counter(
            str(c.close_code) for c in self.clients if not isinstance(c, _Dead) and c.closed.done()
        )
        return {"open": open_, "closed": dict(codes), "frames": self.frames}

    async def close(self, limit_s: float = 10.0) -> dict[str, Any]:
        live = [c for c in self.clients if not isinstance(c, _Dead)]
        for client in live:
            client.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                await asyncio.gather(*(c.closed for c in live))
        aborted = 0
        for client in live:
            if not client.closed.done():
                client.abort()
                aborted += 1
        self.clients = []
        self.counts = []
        self.greeted = {}
        return {"closed": len(live), "aborted": aborted}


class _Dead:
    """A client that never opened."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.frames = 0


async def serve() -> None:
    generator = Generator()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(value: dict[str, Any]) -> None:
        sys.stdout.write(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
        sys.stdout.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        command = orjson.loads(line)
        op = command.pop("op")
        try:
            if op == "connect":
                answer(await generator.connect(**command))
            elif op == "quiet":
                answer(await generator.quiet(**command))
            elif op == "start":
                answer(generator.start(**command))
            elif op == "progress":
                answer({"delivered": generator.delivered, "last_ns": generator.last_ns})
            elif op == "seen":
                answer({"seen": generator.seen()})
            elif op == "stop":
                answer(generator.stop(**command))
            elif op == "status":
                answer(generator.status())
            elif op == "close":
                answer(await generator.close())
            elif op == "exit":
                await generator.close(limit_s=5)
                answer({"ok": True})
                break
            else:
                answer({"error": f"unknown op {op}"})
        except Exception as exc:
            answer({"error": f"{exc.__class__.__name__}: {exc}"})


def main() -> None:
    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
