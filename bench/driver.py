"""The benchmark run: set up, drive every (target, nodes, N, R) cell, measure idle connections.

One account, N agents sharing one `api` integration, each agent one websocket client held by a
load-generator process; signed inbound webhooks at R messages/s from a sender process; the same
clients and the same frames through the ceiling (bench/ceiling.py). Servers on one CPU, the rest
on the other. Results go to bench/results/<name>.json, .md and .png.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import stats
from bench.procs import (
    REPO_ROOT,
    CeilingNode,
    Child,
    Cores,
    PostgresDatabase,
    Profiler,
    RedisProcess,
    ServerNode,
    child_setup,
    export_tree,
    raise_fd_limit,
    summarise_profile,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PASSWORD = "bench-password-1"
CEILING_CHANNEL = "bench:ceiling"
CALL_TIMEOUT = 600.0


@dataclass
class Config:
    name: str
    nodes: list[int]
    ns: list[int]
    rates: list[int]
    duration: float
    idle: int  # idle connections to hold (and measure) on one node
    ramp: bool  # ramp in batches up to `idle`, stopping on errors, instead of one step
    ramp_seconds: float = 300.0
    generators: int = 1
    deflate: bool = True  # clients offer permessage-deflate, as browsers do
    # Servers (and the ceiling) accept it: WS_COMPRESSION=1. Off, like the server's default.
    compression: bool = False
    contacts: int = 20
    team: int = 25  # users per account of the idle connections
    tabs: int = 2  # idle connections per user (agents keep a couple of tabs open)
    postgres: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    sqlite: bool = False
    ceiling: bool = True
    settle_s: float = 45.0  # at most this long, wait for the servers to go idle between cells
    inflight_s: float = 20.0  # webhooks unanswered this long after the last send have failed
    profile: bool = True  # py-spy on the (first) node during Switchboard cells, if installed
    server_rev: str | None = None  # benchmark `server/` of this git revision, not the work tree


QUICK = Config(
    name="quick",
    nodes=[1],
    ns=[1000],
    rates=[20],
    duration=20,
    idle=2000,
    ramp=False,
    settle_s=10.0,
    inflight_s=10.0,
)
FULL = Config(
    name="full",
    nodes=[1, 2],
    ns=[100, 1000, 5000],
    rates=[5, 20, 50],
    duration=20,
    idle=25000,
    ramp=True,
)


def say(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


# Child processes we talk to -----------------------------------------------------------------


class LoadGen:
    """A bench.loadgen process, driven by JSON lines."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="switchboard-bench-loadgen-"))
        self.log = self.dir / "loadgen.log"

    async def start(self, cpus: set[int]) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("ab"),
            preexec_fn=child_setup(cpus),
            start_new_session=True,
            limit=256 * 1024 * 1024,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def call(self, op: str, wait_s: float = CALL_TIMEOUT, **args: Any) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(orjson.dumps({"op": op, **args}) + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), wait_s)
        if not line:
            raise RuntimeError(f"load generator {self.index} died; see {self.log}")
        answer: dict[str, Any] = orjson.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load generator {self.index}: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self.call("exit", wait_s=20)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 10)
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


async def run_sender(config: dict[str, Any], cpus: set[int], start_at: float) -> dict[str, Any]:
    """bench.sender with `config`; it starts sending at time.monotonic() == start_at."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.sender",
        orjson.dumps({**config, "start_at": start_at}).decode(),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=child_setup(cpus),
        start_new_session=True,
    )
    try:
        limit = float(config["count"]) / float(config["rate"]) + 120
        out, err = await asyncio.wait_for(process.communicate(), limit)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"sender failed ({process.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return result


# The account under test ---------------------------------------------------------------------


@dataclass
class Account:
    admin_token: str
    integration_id: int
    secret: str
    agents: list[tuple[int, str]]  # (user id, API token)


async def _post(client: httpx.AsyncClient, path: str, token: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for attempt in range(5):
        response = await client.post(path, json=body, headers=headers)
        if response.status_code in (200, 201):
            return response.json()
        if response.status_code < 500 or attempt == 4:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
        await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def create_users(
    client: httpx.AsyncClient, admin_token: str, prefix: str, count: int
) -> list[tuple[int, str]]:
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> tuple[int, str]:
        async with gate:
            body = {
                "name": f"Agent {prefix}{i}",
                "email": f"{prefix}{i}@bench.test",
                "password": PASSWORD,
                "role": "agent",
            }
            answer = await _post(client, "/api/v1/users", admin_token, body)
            return int(answer["user"]["id"]), str(answer["token"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def signup(client: httpx.AsyncClient, prefix: str) -> tuple[int, str]:
    body = {
        "company_name": f"Bench {prefix}",
        "name": f"Admin {prefix}",
        "email": f"admin-{prefix}@bench.test",
        "password": PASSWORD,
    }
    answer = await _post(client, "/api/v1/signup", None, body)
    return int(answer["user"]["id"]), str(answer["token"])


async def create_account(base_url: str, agents: int, label: str) -> Account:
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=60) as client:
        _admin_id, admin_token = await signup(client, label)
        users = await create_users(client, admin_token, f"{label}-agent", agents)
        secret = secrets.token_urlsafe(24)
        integration = await _post(
            client,
            "/api/v1/integrations",
            admin_token,
            {
                "provider": "api",
                "name": "Bench channel",
                "config": {"webhook_secret": secret},
                "shared_with": [user_id for user_id, _ in users],
            },
        )
    return Account(admin_token, int(integration["id"]), secret, users)


async def create_teams(base_url: str, users: int, team: int) -> list[str]:
    """Tokens of `users` users in accounts of `team` users each (an admin and agents)."""
    tokens: list[str] = []
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=60) as client:

        async def one(k: int, size: int) -> list[str]:
            async with gate:
                _, admin = await signup(client, f"idle{k}")
                return [admin] + [
                    t for _, t in await create_users(client, admin, f"i{k}-", size - 1)
                ]

        sizes = [min(team, users - start) for start in range(0, users, team)]
        for chunk in await asyncio.gather(*(one(k, s) for k, s in enumerate(sizes))):
            tokens.extend(chunk)
    return tokens


# The run ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.cores = Cores()
        self.children: list[Child] = []
        self.gens: list[LoadGen] = []
        self.db: PostgresDatabase | None = None
        self.redis: RedisProcess | None = None
        self.env: dict[str, str] = {}
        self.accounts: dict[int, Account] = {}
        self.cells: list[dict[str, Any]] = []
        self.idle: list[dict[str, Any]] = []
        self.samples: dict[tuple[int, int], str] = {}
        self._tags = 0
        self._settled_at = 0.0
        self.meta: dict[str, Any] = {}
        self.tree = REPO_ROOT

    # Set-up and tear-down ---------------------------------------------------------------------

    async def setup(self) -> None:
        fds = raise_fd_limit(65536)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, self.cores.clients)
        say(f"CPUs: {self.cores.describe()}; file descriptors: {fds}")
        self.redis = RedisProcess(self.cores.clients)
        self.children.append(self.redis)
        if self.config.sqlite:
            if max(self.config.nodes) > 1:
                raise SystemExit("--sqlite runs one node only")
            database_url = f"sqlite:///{self.redis.dir / 'bench.db'}"
        else:
            self.db = PostgresDatabase(self.config.postgres)
            database_url = self.db.url
        self.env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis.url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "PASSWORD_HASH_PROFILE": "fast",
            "REDIS_PREFIX": f"bench{secrets.token_hex(3)}",
            # The load generator is one client address and floods webhooks on purpose: limits
            # that never refuse, but still cost their Redis round trip as in production.
            "RATE_LIMIT_SIGNUP": "1000000/minute",
            "RATE_LIMIT_LOGIN": "1000000/minute",
            "RATE_LIMIT_WEBHOOK": "1000000/minute",
            "WS_COMPRESSION": "1" if self.config.compression else "0",
        }
        for index in range(self.config.generators):
            gen = LoadGen(index)
            await gen.start(self.cores.clients)
            self.gens.append(gen)
        self.meta = machine_info(self.cores, fds, self.config)
        self.meta["database"] = "sqlite" if self.config.sqlite else "postgresql"
        if self.config.server_rev:
            self.tree, commit = export_tree(self.config.server_rev)
            self.meta["server"] = f"server/ of {self.config.server_rev} ({commit})"
        else:
            self.meta["server"] = f"work tree at {self.meta['commit']}"

    async def teardown(self) -> None:
        for gen in self.gens:
            with contextlib.suppress(Exception):
                await gen.stop()
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.cleanup()
        if self.db is not None:
            self.db.drop()
        if self.tree != REPO_ROOT:
            shutil.rmtree(self.tree, ignore_errors=True)

    def start_node(self, name: str) -> ServerNode:
        node = ServerNode(name, self.env, self.cores.server, tree=self.tree)
        self.children.append(node)
        return node

    def stop(self, child: Child) -> None:
        child.cleanup()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    # Clients ------------------------------------------------------------------------------------

    async def connect(self, urls: list[str], tokens: list[str]) -> dict[str, Any]:
        """Client k goes to urls[k % len(urls)], held by generator k % G."""
        plans: list[list[tuple[str, str]]] = [[] for _ in self.gens]
        for k, token in enumerate(tokens):
            plans[k % len(self.gens)].append((urls[k % len(urls)], token))
        answers = await asyncio.gather(
            *(self._connect_one(gen, plan) for gen, plan in zip(self.gens, plans, strict=True))
        )
        merged: dict[str, Any] = {"opened": 0, "failed": 0, "errors": {}, "seconds": 0.0}
        for answer in answers:
            merged["opened"] += answer["opened"]
            merged["failed"] += answer["failed"]
            merged["errors"].update(answer["errors"])
            merged["seconds"] = max(merged["seconds"], answer["seconds"])
        return merged

    async def _connect_one(self, gen: LoadGen, plan: list[tuple[str, str]]) -> dict[str, Any]:
        total: dict[str, Any] = {"opened": 0, "failed": 0, "errors": {}, "seconds": 0.0}
        for url in sorted({u for u, _ in plan}):
            answer = await gen.call(
                "connect",
                url=url,
                tokens=[t for u, t in plan if u == url],
                deflate=self.config.deflate,
                concurrency=200,
                limit_s=60.0,
                total_s=180.0,
            )
            for key in ("opened", "failed", "seconds"):
                total[key] += answer[key]
            total["errors"].update(answer["errors"])
        return total

    async def settle(self, nodes: list[Child]) -> float:
        """Wait (bounded) until the servers are nearly idle: a saturated cell leaves a backlog of
        webhooks still being processed, which would be billed to the next cell. Returns the
        servers' CPU % over the last second waited."""
        deadline = time.monotonic() + self.config.settle_s
        while True:
            before = sum(node.cpu() for node in nodes)
            await asyncio.sleep(1.0)
            busy = 100 * (sum(node.cpu() for node in nodes) - before)
            if busy < 20 or time.monotonic() > deadline:
                self._settled_at = busy
                return busy

    async def quiet(self, seconds: float = 1.5, limit_s: float = 60.0) -> None:
        await asyncio.gather(
            *(g.call("quiet", seconds=seconds, limit_s=limit_s) for g in self.gens)
        )

    async def close_clients(self) -> None:
        await asyncio.gather(*(g.call("close") for g in self.gens))

    # One measured cell --------------------------------------------------------------------------

    def _tag(self, kind: str) -> str:
        self._tags += 1
        return f"{kind}{self._tags:04d}"

    async def warm_up(self, account: Account, targets: list[str]) -> None:
        """One message per contact: conversations exist, code paths and pools are warm."""
        config = self._http_config(account, targets, self._tag("w"), self.config.contacts, 20)
        await run_sender(config, self.cores.clients, time.monotonic() + 0.5)
        await self.quiet(1.0, 10)

    def _http_config(
        self, account: Account, targets: list[str], tag: str, count: int, rate: float
    ) -> dict[str, Any]:
        return {
            "mode": "http",
            "targets": targets,
            "secret": account.secret,
            "contacts": self.config.contacts,
            "tag": tag,
            "count": count,
            "rate": rate,
        }

    async def cell(
        self,
        *,
        target: str,
        nodes: list[Child],
        n: int,
        rate: int,
        sender: dict[str, Any],
    ) -> dict[str, Any]:
        tag = sender["tag"]
        count = int(rate * self.config.duration)
        # Bounded: in-flight requests get `inflight_s` seconds after the last send, then count
        # as failed (their messages still count if any client receives them).
        sender = {**sender, "count": count, "rate": rate, "timeout": self.config.inflight_s}
        say(
            f"{target} x{len(nodes)} N={n} R={rate}: {count} messages over {self.config.duration} s"
        )
        await asyncio.gather(*(g.call("start", tag=tag, messages=count) for g in self.gens))
        start_at = time.monotonic() + 1.0
        sending = asyncio.create_task(run_sender(sender, self.cores.clients, start_at))
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu0 = [node.cpu() for node in nodes]
        redis0 = self.redis.cpu() if self.redis else 0.0
        gen_cpu0 = [_proc_cpu(g.pid) for g in self.gens]
        t0 = time.monotonic()
        profiler = None
        if self.config.profile and target == "switchboard":
            out = RESULTS_DIR / f"{self.config.name}-profile-{len(nodes)}x{n}-{rate}.txt"
            RESULTS_DIR.mkdir(exist_ok=True)
            profiler = Profiler(nodes[0].pid, self.config.duration, out, self.cores.clients)
        sent = await sending
        # Drain: until every expected delivery arrived, or nothing more arrives for 3 s.
        expected_total = len(sent["ok"]) * n
        drain_deadline = time.monotonic() + 10.0
        last, last_change = -1, time.monotonic()
        while time.monotonic() < drain_deadline:
            progress = await asyncio.gather(*(g.call("progress") for g in self.gens))
            delivered = sum(p["delivered"] for p in progress)
            if delivered >= expected_total:
                break
            if delivered != last:
                last, last_change = delivered, time.monotonic()
            elif time.monotonic() - last_change > 3.0:
                break
            await asyncio.sleep(0.2)
        wall = time.monotonic() - t0
        server_cpu = sum(node.cpu() - c for node, c in zip(nodes, cpu0, strict=True))
        redis_cpu = (self.redis.cpu() - redis0) if self.redis else 0.0
        gen_cpu = [_proc_cpu(g.pid) - c for g, c in zip(self.gens, gen_cpu0, strict=True)]
        # Committed: answered 200, or (the answer timed out) delivered to someone anyway.
        seen = await asyncio.gather(*(g.call("seen") for g in self.gens))
        expected = sorted(set(sent["ok"]).union(*(s["seen"] for s in seen)))
        reports = await asyncio.gather(*(g.call("stop", expected=expected) for g in self.gens))
        cell = self._summarise(
            target, nodes, n, rate, sent, reports, wall, server_cpu, redis_cpu, gen_cpu, expected
        )
        if profiler is not None:
            raw = await asyncio.to_thread(profiler.wait)
            if raw is not None:
                cell["profile"] = {"file": raw.name, **summarise_profile(raw)}
        return cell

    def _summarise(
        self,
        target: str,
        nodes: list[Child],
        n: int,
        rate: int,
        sent: dict[str, Any],
        reports: list[dict[str, Any]],
        wall: float,
        server_cpu: float,
        redis_cpu: float,
        gen_cpu: list[float],
        expected: list[int],
    ) -> dict[str, Any]:
        hist = stats.merge(r["hist"] for r in reports)
        frames = sum(r["delivered_frames"] for r in reports)
        every = frames + sum(r["other_frames"] for r in reports)
        received = sum(r["received"] for r in reports)
        last_ns = max((r["last_ns"] for r in reports), default=0)
        span = (last_ns - sent["first_ns"]) / 1e9 if last_ns else 0.0
        sample = next((r["sample"] for r in reports if r["sample"]), None)
        if sample and target == "switchboard":
            self.samples.setdefault((n, rate), sample)

        def ms(q: float) -> float | None:
            p = stats.percentile(hist, q)
            return None if p is None else round(p / 1000, 2)

        cell = {
            "target": target,
            "nodes": len(nodes),
            "n": n,
            "rate": rate,
            "clients": sum(r["clients"] for r in reports),
            "messages_sent": sent["sent"],
            "messages_ok": len(sent["ok"]),
            "messages_committed": len(expected),
            "sender_statuses": sent["statuses"],
            "expected": sum(r["expected"] for r in reports),
            "received": received,
            "lost": sum(r["lost"] for r in reports),
            "duplicated": sum(r["duplicated"] for r in reports),
            "resyncs": sum(r["resyncs"] for r in reports),
            # Frames of other kinds during the window (presence, notifications, ...).
            "other_frames": sum(r["other_frames"] for r in reports),
            "p50_ms": ms(50),
            "p95_ms": ms(95),
            "p99_ms": ms(99),
            "max_ms": round(max(r["max_us"] for r in reports) / 1000, 2) if hist else None,
            "deliveries_per_s": round(received / span, 1) if span > 0 else None,
            "window_s": round(wall, 2),
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_pct": round(100 * server_cpu / wall, 1),
            # CPU % of the servers just before the cell (a backlog of the previous one).
            "server_cpu_pct_before": round(self._settled_at, 1),
            "us_per_delivery": round(1e6 * server_cpu / frames, 2) if frames else None,
            # Per frame of any kind: each agent also gets a notification.created per message.
            "us_per_frame": round(1e6 * server_cpu / every, 2) if every else None,
            "redis_cpu_pct": round(100 * redis_cpu / wall, 1),
            "generator_cpu_pct": [round(100 * c / wall, 1) for c in gen_cpu],
            "sender_cpu_pct": round(100 * sent["cpu_s"] / wall, 1),
            "sender_behind_ms": sent["behind_schedule_ms"],
            "response": sent["response"],
        }
        cell["generator_saturated"] = max(cell["generator_cpu_pct"]) > 90
        cell["server_saturated"] = cell["server_cpu_pct"] > 90 * len(self.cores.server)
        say(
            f"  -> lost {cell['lost']}, dup {cell['duplicated']}, p99 {cell['p99_ms']} ms, "
            f"{cell['us_per_delivery']} us/delivery, server {cell['server_cpu_pct']}% CPU, "
            f"generator {cell['generator_cpu_pct']}% CPU, webhook p99 {sent['response']['p99_ms']}"
        )
        self.cells.append(cell)
        return cell

    # Phases -------------------------------------------------------------------------------------

    async def run(self) -> None:
        config = self.config
        await self.setup()
        first = self.start_node("node1")
        for n in config.ns:
            say(f"creating an account of {n} agents sharing one integration")
            started = time.monotonic()
            self.accounts[n] = await create_account(first.url, n, f"n{n}")
            say(f"  created in {time.monotonic() - started:.1f} s")
        idle_tokens = await self.idle_users(first.url)
        for count in config.nodes:
            nodes: list[ServerNode] = [first]
            for k in range(2, count + 1):
                nodes.append(self.start_node(f"node{k}"))
            await self.switchboard(nodes)
            for node in nodes[1:]:
                self.stop(node)
        self.stop(first)
        if config.ceiling:
            await self.ceiling()
        await self.idle_phase(idle_tokens)

    async def switchboard(self, nodes: list[ServerNode]) -> None:
        urls = [node.ws_url for node in nodes]
        for n in self.config.ns:
            account = self.accounts[n]
            hooks = [f"{node.url}/webhooks/api/{account.integration_id}" for node in nodes]
            tokens = [token for _, token in account.agents]
            answer = await self.connect(urls, tokens)
            say(
                f"connected {answer['opened']}/{n} agents in {answer['seconds']} s",
                answer["errors"] or "",
            )
            await self.quiet(1.5, 120)
            await self.warm_up(account, hooks)
            for rate in self.config.rates:
                await self.settle(list(nodes))
                sender = self._http_config(account, hooks, self._tag("r"), 0, rate)
                await self.cell(
                    target="switchboard", nodes=list(nodes), n=n, rate=rate, sender=sender
                )
                await self.quiet(1.0, 10)
            await self.close_clients()
            await asyncio.sleep(1.0)

    async def ceiling(self) -> None:
        assert self.redis is not None
        node = CeilingNode(
            self.redis.url, CEILING_CHANNEL, deflate=self.config.compression, cpus=self.cores.server
        )
        self.children.append(node)
        fallback = next(iter(self.samples.values()), None) or synthetic_frame()
        for n in self.config.ns:
            account = self.accounts[n]
            tokens = [token for _, token in account.agents]
            answer = await self.connect([node.ws_url], tokens)
            say(f"ceiling: connected {answer['opened']}/{n} in {answer['seconds']} s")
            await self.quiet(1.0, 60)
            for rate in self.config.rates:
                await self.settle([node])
                template = self.samples.get((n, rate), fallback)
                sender = {
                    "mode": "redis",
                    "redis_url": self.redis.url,
                    "channel": CEILING_CHANNEL,
                    "header": f"sb2|ceiling|0\n1|{account.integration_id}||message.created|",
                    "template": template,
                    "template_marker": template_marker(template),
                    "tag": self._tag("c"),
                }
                await self.cell(target="ceiling", nodes=[node], n=n, rate=rate, sender=sender)
                await self.quiet(1.0, 10)
            await self.close_clients()
            await asyncio.sleep(1.0)
        self.stop(node)

    async def idle_users(self, url: str) -> list[str]:
        """Tokens for the idle connections: `tabs` each for users in accounts of `team`."""
        config = self.config
        users = config.idle
        if config.ramp:
            # Past the server's file-descriptor limit every further attempt fails anyway.
            users = min(users, int(self.meta["fd_limit"]) + 1000)
        say(f"idle connections: {users}, {config.tabs} per user, in accounts of {config.team}")
        started = time.monotonic()
        people = await create_teams(url, -(-users // config.tabs), config.team)
        say(f"  created in {time.monotonic() - started:.1f} s")
        return [token for token in people for _ in range(config.tabs)][:users]

    async def idle_phase(self, tokens: list[str]) -> None:
        config = self.config
        # A fresh process for each measurement: its RSS grows only with what we connect.
        node = self.start_node("idle")
        self.idle.append(await self.hold_idle("switchboard", node, tokens))
        self.stop(node)
        if config.ceiling and self.redis is not None:
            ceiling = CeilingNode(
                self.redis.url, CEILING_CHANNEL, deflate=config.compression, cpus=self.cores.server
            )
            self.children.append(ceiling)
            self.idle.append(await self.hold_idle("ceiling", ceiling, tokens))
            self.stop(ceiling)

    async def hold_idle(
        self, target: str, node: ServerNode | CeilingNode, tokens: list[str]
    ) -> dict[str, Any]:
        """Connect `tokens` (in batches when ramping) and diff the server's RSS."""
        warm = min(100, len(tokens) // 10)
        await self.connect([node.ws_url], tokens[:warm])
        await self.quiet(2.0, 30)
        base_rss = node.rss()
        held = warm
        batch = 1000 if self.config.ramp else len(tokens) - warm
        deadline = time.monotonic() + self.config.ramp_seconds
        stopped_by = "target reached"
        steps = []
        while held < len(tokens):
            if time.monotonic() > deadline:
                stopped_by = "time limit"
                break
            chunk = tokens[held : held + batch]
            answer = await self.connect([node.ws_url], chunk)
            held += answer["opened"]
            steps.append({"held": held, "rss": node.rss(), "seconds": answer["seconds"]})
            if answer["failed"]:
                stopped_by = f"{answer['failed']} failed: {answer['errors']}"
                say(f"  {target}: stopping the ramp at {held}: {stopped_by}")
                break
            if self.config.ramp:
                say(f"  {target}: {held} idle connections, RSS {node.rss() / 2**20:.0f} MiB")
        await self.quiet(3.0, 120)
        await asyncio.sleep(2.0)
        status = await asyncio.gather(*(g.call("status") for g in self.gens))
        still_open = sum(s["open"] for s in status)
        rss = node.rss()
        added = max(still_open - warm, 1)
        result = {
            "target": target,
            "connections": still_open,
            "attempted": len(tokens),
            "stopped_by": stopped_by,
            "base_rss_mib": round(base_rss / 2**20, 1),
            "rss_mib": round(rss / 2**20, 1),
            "kib_per_conn": round((rss - base_rss) / added / 1024, 1),
            "steps": steps,
            "alive": node.alive(),
        }
        say(
            f"  {target}: {still_open} idle connections held, {result['kib_per_conn']} KiB each "
            f"(RSS {result['base_rss_mib']} -> {result['rss_mib']} MiB)"
        )
        await self.close_clients()
        return result


def _proc_cpu(pid: int) -> float:
    from bench.procs import cpu_seconds

    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def template_marker(frame: str) -> str:
    start = frame.index("bench:")
    return frame[start : start + 40]


def synthetic_frame() -> str:
    """A message.created frame shaped like the server's, for a ceiling run without a sample."""
    from bench.sender import FILLER, marker

    text = f"{marker('x0000', 0, 0)} {FILLER}"
    contact = {"id": 1, "name": "Customer 1", "handle": "bench-contact-1"}
    message = {
        "id": 1,
        "conversation_id": 1,
        "direction": "inbound",
        "text": text,
        "sender": {"type": "contact", "id": 1, "name": "Customer 1"},
        "status": "received",
        "error": None,
        "external_id": "x0000-0",
        "attachments": [],
        "created_at": "2026-11-26T09:00:00.000000Z",
    }
    conversation = {
        "id": 1,
        "integration_id": 1,
        "provider": "api",
        "contact": contact,
        "status": "open",
        "assignee_id": None,
        "last_message": message,
        "last_message_at": "2026-11-26T09:00:00.000000Z",
        "links": [],
        "version": 1,
        "created_at": "2026-11-26T09:00:00.000000Z",
        "updated_at": "2026-11-26T09:00:00.000000Z",
    }
    data = {"message": message, "conversation": conversation}
    return orjson.dumps({"type": "message.created", "seq": 1, "data": data}).decode()


def machine_info(cores: Cores, fds: int, config: Config) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    commit = "unknown"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "server"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if dirty:
            commit += " + uncommitted changes in server/"
    versions = {}
    for package in ("uvicorn", "websockets", "starlette", "redis", "sqlalchemy", "psycopg"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {
        "name": config.name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
        "pinning": cores.describe(),
        "fd_limit": fds,
        "load_average_at_start": os.getloadavg(),
        "permessage_deflate": config.deflate and config.compression,
        "clients_offer_deflate": config.deflate,
        "duration_s": config.duration,
        "contacts": config.contacts,
        "generators": config.generators,
    }


def headline(bench: Bench) -> dict[str, Any]:
    """The quick run's key figures (the last line printed)."""
    config = bench.config
    # The targets' point (1,000 agents, 20 messages/s) when the run has it.
    n = 1000 if 1000 in config.ns else config.ns[0]
    rate = 20 if 20 in config.rates else config.rates[0]

    def find(target: str) -> dict[str, Any]:
        for cell in bench.cells:
            if (cell["target"], cell["nodes"], cell["n"], cell["rate"]) == (target, 1, n, rate):
                return cell
        return {}

    sb, ceiling = find("switchboard"), find("ceiling")
    idle = next((i for i in bench.idle if i["target"] == "switchboard"), {})
    return {
        "n": n,
        "rate": rate,
        "lost": sb.get("lost"),
        "duplicated": sb.get("duplicated"),
        "p99_ms": sb.get("p99_ms"),
        "us_per_delivery": sb.get("us_per_delivery"),
        "ceiling_us_per_delivery": ceiling.get("us_per_delivery"),
        "kib_per_conn": idle.get("kib_per_conn"),
        "max_idle_connections": idle.get("connections"),
    }


async def execute(config: Config) -> dict[str, Any]:
    from bench import report

    bench = Bench(config)
    started = time.monotonic()
    try:
        await bench.run()
    finally:
        await bench.teardown()
    bench.meta["seconds"] = round(time.monotonic() - started, 1)
    bench.meta["load_average_at_end"] = os.getloadavg()
    results = {"meta": bench.meta, "cells": bench.cells, "idle": bench.idle}
    results["headline"] = headline(bench)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{config.name}.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    table = report.markdown(results)
    (RESULTS_DIR / f"{config.name}.md").write_text(table)
    plot = report.plot(results, RESULTS_DIR / f"{config.name}.png")
    print(table)
    if plot:
        say(f"plot: {plot}")
    say(f"results: {RESULTS_DIR / (config.name + '.json')} ({bench.meta['seconds']} s)")
    return results
