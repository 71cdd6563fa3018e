"""The traffic source: `count` messages at `rate` per second, open loop, as a separate process.

Mode `http` posts signed inbound webhooks of the `api` channel (round-robin over the targets,
e.g. the nodes of a cluster). Mode `redis` publishes, for the ceiling, what a Switchboard node
would publish for the same message: the wire header and a real `message.created` frame (a
template captured from the Switchboard run, with the marker rewritten), so payloads are the same
size. Every text starts with the marker `bench:<tag>:<index>:<monotonic ns>` stamped right before
the request is made. Configuration is one JSON object in argv[1]; the result one JSON line.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import resource
import sys
import time
from collections import Counter
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from bench import stats

FILLER = "Hi, is the blue sofa still in stock? We would like two, delivered before Friday."
MAX_IN_FLIGHT = 512


def marker(tag: str, index: int, ns: int) -> str:
    return f"bench:{tag}:{index:08d}:{ns:019d}"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Http:
    def __init__(self, config: dict[str, Any]) -> None:
        self.targets: list[str] = config["targets"]
        self.secret = config["secret"].encode()
        self.contacts = int(config["contacts"])
        self.client = httpx.AsyncClient(
            timeout=30,
            trust_env=False,
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64),
        )

    async def send(self, tag: str, index: int) -> int:
        contact = index % self.contacts
        body = orjson.dumps(
            {
                "message_id": f"{tag}-{index}",
                "contact": {"id": f"bench-contact-{contact}", "name": f"Customer {contact}"},
                "text": f"{marker(tag, index, time.monotonic_ns())} {FILLER}",
            }
        )
        signature = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        response = await self.client.post(
            self.targets[index % len(self.targets)],
            content=body,
            headers={"Content-Type": "application/json", "X-Signature-256": signature},
        )
        return response.status_code

    async def close(self) -> None:
        await self.client.aclose()


class Publish:
    def __init__(self, config: dict[str, Any]) -> None:
        self.redis = Redis.from_url(config["redis_url"])
        self.channel = config["channel"]
        self.header = config["header"]
        self.template: str = config["template"]
        self.template_marker: str = config["template_marker"]

    async def send(self, tag: str, index: int) -> int:
        frame = self.template.replace(self.template_marker, marker(tag, index, time.monotonic_ns()))
        await self.redis.publish(self.channel, f"{self.header}\n{frame}")
        return 200

    async def close(self) -> None:
        await self.redis.aclose()


async def run(config: dict[str, Any]) -> dict[str, Any]:
    tag: str = config["tag"]
    count = int(config["count"])
    rate = float(config["rate"])
    source: Http | Publish = Http(config) if config["mode"] == "http" else Publish(config)
    statuses: Counter[str] = Counter()
    ok: list[int] = []
    response_us: list[float] = []
    behind_us = 0.0
    in_flight: set[asyncio.Task[None]] = set()
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(index: int) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                status = await source.send(tag, index)
            except Exception as exc:
                statuses[exc.__class__.__name__] += 1
                return
            response_us.append((time.perf_counter() - started) * 1e6)
            statuses[str(status)] += 1
            if status == 200:
                ok.append(index)

    start = max(float(config.get("start_at", 0.0)), time.monotonic() + 0.01)
    await asyncio.sleep(start - time.monotonic())
    cpu0 = _cpu()
    first_ns = time.monotonic_ns()
    for index in range(count):
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind_us = max(behind_us, -delay * 1e6)
        task = asyncio.create_task(one(index))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    sent_s = time.monotonic() - start
    if in_flight:
        await asyncio.wait(in_flight, timeout=float(config.get("timeout", 60)))
    unfinished = len(in_flight)
    for task in list(in_flight):
        task.cancel()
    await source.close()
    return {
        "sent": count,
        "ok": sorted(ok),
        "statuses": dict(statuses),
        "unfinished": unfinished,
        "response": stats.summary_ms(response_us),
        "behind_schedule_ms": round(behind_us / 1000, 3),
        "send_seconds": round(sent_s, 3),
        "first_ns": first_ns,
        "cpu_s": round(_cpu() - cpu0, 3),
    }


def main() -> None:
    config = orjson.loads(sys.argv[1])
    try:
        import uvloop

        result = uvloop.run(run(config))
    except ImportError:
        result = asyncio.run(run(config))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
