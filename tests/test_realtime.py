"""End to end: `GET /ws` on real server processes sharing one PostgreSQL database and one Redis.

Every test makes its own account, so the nodes can be shared. The Redis-restart test gets its own
Redis and nodes; the SIGKILL test its own node to kill.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import websockets

from server.security.signatures import sign_sha256
from tests.nodes import (
    Frame,
    RedisServer,
    ServerProcess,
    WsClient,
    handshake_outcome,
    logs_on_failure,
    node_env,
    open_ws,
)
from tests.support import (
    Api,
    create_pg_database,
    drop_pg_database,
    free_port,
    postgres_available,
)

pytestmark = pytest.mark.postgres

PUBLIC_URL = "http://switchboard.test:8080"
PUBLIC_ORIGIN = "http://switchboard.test:8080"
CONV_MSG = ("conversation.", "message.")
MiB = 1024 * 1024


# Fixtures --------------------------------------------------------------------------------------


@dataclass
class Cluster:
    pg_url: str
    redis: RedisServer
    secret_key: str
    a: ServerProcess
    b: ServerProcess
    api_a: Api
    api_b: Api

    def env(self) -> dict[str, str]:
        return node_env(
            database_url=self.pg_url,
            redis_url=self.redis.url,
            secret_key=self.secret_key,
            public_url=PUBLIC_URL,
        )


def api_for(node: ServerProcess) -> Api:
    return Api(node)  # type: ignore[arg-type]  # Api only needs `.url`


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    assert postgres_available(), "PostgreSQL does not answer: these tests need it"
    url = create_pg_database("switchboard_rt")
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def cluster(pg_url: str, redis_server: RedisServer) -> Iterator[Cluster]:
    secret = f"realtime-secret-{uuid.uuid4().hex}"
    env = node_env(
        database_url=pg_url, redis_url=redis_server.url, secret_key=secret, public_url=PUBLIC_URL
    )
    a = ServerProcess(env, free_port(), name="node-a")  # migrates the schema first
    try:
        b = ServerProcess(env, free_port(), name="node-b")
    except BaseException:
        a.stop()
        a.cleanup()
        raise
    c = Cluster(pg_url, redis_server, secret, a, b, api_for(a), api_for(b))
    yield c
    c.api_a.close()
    c.api_b.close()
    for node in (a, b):
        node.stop()
        node.cleanup()


# Helpers ---------------------------------------------------------------------------------------


def sql(pg_url: str, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        return list(conn.execute(query, params).fetchall())


def latest_seq(pg_url: str, account_id: int) -> int:
    return int(sql(pg_url, "SELECT event_seq FROM accounts WHERE id = %s", (account_id,))[0][0])


def visible_events(
    pg_url: str, account_id: int, user_id: int, *, after: int = 0
) -> list[tuple[int, str]]:
    """(seq, type) of the account's logged events after `after` that the user may see."""
    rows = sql(
        pg_url,
        """
        SELECT e.seq, e.type FROM events e
        WHERE e.account_id = %s AND e.seq > %s AND (
            e.integration_id IS NULL
            OR e.integration_id IN (SELECT id FROM integrations WHERE installed_by = %s)
            OR e.integration_id IN (SELECT integration_id FROM integration_access
                                    WHERE user_id = %s))
        ORDER BY e.seq
        """,
        (account_id, after, user_id, user_id),
    )
    return [(int(seq), str(type_)) for seq, type_ in rows]


def visible_seqs(
    pg_url: str,
    account_id: int,
    user_id: int,
    *,
    after: int = 0,
    types: tuple[str, ...] | None = None,
) -> list[int]:
    return [
        seq
        for seq, type_ in visible_events(pg_url, account_id, user_id, after=after)
        if types is None or type_.startswith(types)
    ]


def seqs_of(frames: list[Frame], types: tuple[str, ...] | None = None) -> list[int]:
    return [
        int(f["seq"])
        for f in frames
        if f.get("seq") is not None
        and f.get("type") != "hello"
        and (types is None or str(f["type"]).startswith(types))
    ]


def has_all(expected: list[int]) -> Callable[[list[Frame]], bool]:
    wanted = set(expected)
    return lambda frames: wanted <= set(seqs_of(frames))


def of_type(type_: str, **data: Any) -> Callable[[Frame], bool]:
    """Frames of `type_` whose data has these values; `message__text` looks into `message`."""

    def match(frame: Frame) -> bool:
        if frame.get("type") != type_:
            return False
        return all(_lookup(frame["data"], key) == value for key, value in data.items())

    return match


def _lookup(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("__"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def presence_of(user_id: int, **fields: Any) -> Callable[[Frame], bool]:
    """A `presence.updated` frame listing `user_id` with these field values."""

    def match(frame: Frame) -> bool:
        if frame.get("type") != "presence.updated":
            return False
        return any(
            u["id"] == user_id and all(u.get(k) == v for k, v in fields.items())
            for u in frame["data"]["users"]
        )

    return match


def assert_in_order_once(received: list[int], expected: list[int], who: str) -> None:
    assert len(received) == len(set(received)), f"{who} got duplicates: {received}"
    assert received == sorted(received), f"{who} got events out of order: {received}"
    assert received == expected, (
        f"{who}: missing {sorted(set(expected) - set(received))}, "
        f"unexpected {sorted(set(received) - set(expected))}"
    )


def inbound_ok(api: Api, integration: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    r = api.inbound(integration["id"], integration["secret"], **kwargs)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def users_online(api: Api, token: str) -> dict[int, bool]:
    users = ok(api.get("/api/v1/users", token))["items"]
    return {u["id"]: u["online"] for u in users}


async def poll(
    predicate: Callable[[], Any],
    timeout: float,  # noqa: ASYNC109  (a deadline for a loop of awaits)
    interval: float = 0.25,
) -> Any:
    """Poll a blocking `predicate` (run in a thread) until truthy; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def hello_of(client: WsClient) -> Frame:
    frame: Frame = await client.wait_for_frames(lambda fs: fs[0] if fs else None, 10)
    assert frame["type"] == "hello", frame
    return frame


async def connect(node: ServerProcess, token: str, name: str, **kwargs: Any) -> WsClient:
    client = await WsClient.connect(node.ws_url, token, name=name, **kwargs)
    await hello_of(client)
    return client


async def close_all(*clients: WsClient) -> None:
    await asyncio.gather(*(c.close() for c in clients))


# Handshake, hello, ping and errors -------------------------------------------------------------


def test_hello_ping_error_frames_and_handshake_rules(cluster: Cluster) -> None:
    team = cluster.api_a.signup()
    team.install()
    admin = team.admin

    async def main() -> None:
        client = await WsClient.connect(cluster.b.ws_url, admin.token, name="admin@b")
        hello = await hello_of(client)
        assert hello["seq"] == latest_seq(cluster.pg_url, team.account_id) == 1
        user = hello["data"]["user"]
        assert (user["id"], user["email"], user["role"]) == (admin.id, admin.email, "admin")
        assert set(user) >= {"id", "name", "email", "role", "available", "online", "last_seen_at"}

        await client.send_json({"type": "ping"})
        await client.wait_for(of_type("pong"))

        for bad in (b"\x00\x01binary", "this is not json", '{"type": "subscribe"}', "[1, 2]"):
            start = len(client.frames)
            await client.send(bad)
            error = await client.wait_for_new(of_type("error"), start=start)
            assert isinstance(error["data"]["code"], str) and error["data"]["code"]
            assert isinstance(error["data"]["message"], str)
            start = len(client.frames)
            await client.send_json({"type": "ping"})
            await client.wait_for_new(of_type("pong"), start=start)
        assert not client.closed.is_set()
        await client.close()

        url = cluster.b.ws_url
        assert await handshake_outcome(url) in {"status 403", "close 4401"}
        assert await handshake_outcome(url, "not-a-token") in {"status 403", "close 4401"}
        assert await handshake_outcome(url, admin.token, origin="https://evil.example") in {
            "status 403",
            "close 4403",
        }
        assert await handshake_outcome(url, admin.token, origin=PUBLIC_ORIGIN) == "open"
        assert await handshake_outcome(url, admin.token) == "open"  # no Origin: not a browser

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


# Across nodes ----------------------------------------------------------------------------------


def test_a_change_on_one_node_reaches_clients_on_the_other(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    team = cluster.api_a.signup()
    agent = team.add("agent")
    integration = team.install(shared_with=["agent"])

    async def timed(
        client: WsClient, action: Callable[[], Any], predicate: Callable[[Frame], bool]
    ) -> tuple[Any, float]:
        start = len(client.frames)
        began = time.monotonic()
        result = await asyncio.to_thread(action)
        frame = await client.wait_for_new(predicate, timeout=5, start=start)
        arrived = client.arrived[client.frames.index(frame)]
        return result, arrived - began

    async def main() -> None:
        on_b = await connect(cluster.b, team.admin.token, "admin@b")
        on_a = await connect(cluster.a, agent.token, "agent@a")

        body, webhook_latency = await timed(
            on_b,
            lambda: inbound_ok(cluster.api_a, integration, text="hello from A"),
            of_type("message.created", message__text="hello from A"),
        )
        conversation_id = body["conversation_id"]
        _, assign_latency = await timed(
            on_b,
            lambda: ok(
                cluster.api_a.post(
                    f"/api/v1/conversations/{conversation_id}/assign",
                    team.admin.token,
                    json={"user_id": agent.id},
                )
            ),
            of_type("conversation.updated", conversation__assignee_id=agent.id),
        )
        _, reverse_latency = await timed(
            on_a,
            lambda: inbound_ok(cluster.api_b, integration, text="hello from B"),
            of_type("message.created", message__text="hello from B"),
        )
        latencies = {
            "webhook_a_to_ws_b_ms": round(webhook_latency * 1000, 1),
            "assign_a_to_ws_b_ms": round(assign_latency * 1000, 1),
            "webhook_b_to_ws_a_ms": round(reverse_latency * 1000, 1),
        }
        for key, value in latencies.items():
            record_property(key, value)
        print(f"cross-node latency (request start to frame arrival): {latencies}")
        await close_all(on_a, on_b)

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


def test_events_reach_only_users_who_may_see_them(cluster: Cluster) -> None:
    team = cluster.api_a.signup(company="Visible")
    insider = team.add("insider")
    outsider = team.add("outsider")
    integration = team.install(shared_with=["insider"])
    other = cluster.api_a.signup(company="Elsewhere")

    async def main() -> None:
        watchers = {
            "insider@b": await connect(cluster.b, insider.token, "insider@b"),
            "outsider@b": await connect(cluster.b, outsider.token, "outsider@b"),
            "outsider@a": await connect(cluster.a, outsider.token, "outsider@a"),
            "stranger@b": await connect(cluster.b, other.admin.token, "stranger@b"),
            "stranger@a": await connect(cluster.a, other.admin.token, "stranger@a"),
        }
        after = latest_seq(cluster.pg_url, team.account_id)

        def changes() -> None:
            conversation_id = inbound_ok(cluster.api_a, integration, text="secret 1")[
                "conversation_id"
            ]
            path = f"/api/v1/conversations/{conversation_id}"
            ok(cluster.api_a.post(f"{path}/assign", team.admin.token, json={"user_id": insider.id}))
            inbound_ok(cluster.api_b, integration, text="secret 2")
            inbound_ok(cluster.api_a, integration, text="secret 3", contact="cust-2")
            ok(cluster.api_b.post(f"{path}/close", insider.token))
            ok(cluster.api_a.post(f"{path}/reopen", team.admin.token))
            # A final event every user of the account sees, and one for the other account.
            ok(
                cluster.api_a.patch(
                    f"/api/v1/integrations/{integration['id']}",
                    team.admin.token,
                    json={"name": "Renamed"},
                )
            )
            other.install(name="Their chat")

        await asyncio.to_thread(changes)
        expected = visible_seqs(cluster.pg_url, team.account_id, insider.id, after=after)
        assert len(expected) >= 8
        await watchers["insider@b"].wait_for_frames(has_all(expected), 10)
        for key in ("outsider@b", "outsider@a"):
            await watchers[key].wait_for(of_type("integration.updated"), 10)
        for key in ("stranger@b", "stranger@a"):
            await watchers[key].wait_for(of_type("integration.created"), 10)

        assert_in_order_once(seqs_of(watchers["insider@b"].frames), expected, "insider")
        for key in ("outsider@b", "outsider@a"):
            frames = watchers[key].frames
            leaked = [f["type"] for f in frames if str(f["type"]).startswith(CONV_MSG)]
            assert leaked == [], f"{key} received {leaked}"
            assert "secret" not in orjson.dumps(frames).decode()
        theirs = set(visible_seqs(cluster.pg_url, other.account_id, other.admin.id))
        our_users = {m.id for m in team.members.values()}
        for key in ("stranger@b", "stranger@a"):
            frames = watchers[key].frames
            leaked = [f["type"] for f in frames if str(f["type"]).startswith(CONV_MSG)]
            assert leaked == [], f"{key} received {leaked}"
            assert set(seqs_of(frames)) <= theirs
            listed = {
                u["id"]
                for f in frames
                if f["type"] == "presence.updated"
                for u in f["data"]["users"]
            }
            assert not listed & our_users, f"{key} saw presence of another account"
            assert "secret" not in orjson.dumps(frames).decode()
        await close_all(*watchers.values())

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


# Replay ----------------------------------------------------------------------------------------


def test_since_replays_missed_events_in_order_before_live_ones(cluster: Cluster) -> None:
    team = cluster.api_a.signup()
    agent = team.add("agent")
    shared = team.install(shared_with=["agent"], name="Shared")
    private = team.install(shared_with=[], name="Private")

    async def main() -> None:
        first = await connect(cluster.b, agent.token, "agent@b")
        seen = first.frames[0]["seq"]
        await first.close()

        def missed() -> None:
            conversation_id = inbound_ok(cluster.api_a, shared, text="m1")["conversation_id"]
            inbound_ok(cluster.api_a, private, text="hidden 1")
            inbound_ok(cluster.api_b, shared, text="m2", contact="cust-2")
            ok(
                cluster.api_a.post(
                    f"/api/v1/conversations/{conversation_id}/assign",
                    team.admin.token,
                    json={"user_id": agent.id},
                )
            )
            inbound_ok(cluster.api_a, private, text="hidden 2")
            inbound_ok(cluster.api_a, shared, text="m3")

        await asyncio.to_thread(missed)

        def live() -> None:
            for i in range(5):
                inbound_ok(cluster.api_a, shared, text=f"live {i}", contact=f"live-{i % 2}")

        # Live events race the replay: however they interleave, each arrives once, in order.
        again, _ = await asyncio.gather(
            WsClient.connect(cluster.b.ws_url, agent.token, since=seen, name="agent@b again"),
            asyncio.to_thread(live),
        )
        expected = visible_seqs(cluster.pg_url, team.account_id, agent.id, after=seen)
        await again.wait_for_frames(has_all(expected), 10)
        assert again.frames[0]["type"] == "hello"
        assert_in_order_once(seqs_of(again.frames), expected, "reconnected agent")
        texts = [
            f["data"]["message"]["text"] for f in again.frames if f["type"] == "message.created"
        ]
        assert texts == ["m1", "m2", "m3"] + [f"live {i}" for i in range(5)]
        await again.close()

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


def test_since_ahead_of_the_log_requires_resync(cluster: Cluster) -> None:
    team = cluster.api_a.signup()
    integration = team.install()
    inbound_ok(cluster.api_a, integration)
    latest = latest_seq(cluster.pg_url, team.account_id)

    async def main() -> None:
        client = await WsClient.connect(
            cluster.b.ws_url, team.admin.token, since=latest + 5, name="admin@b"
        )
        await client.wait_for(of_type("resync_required"), 5)
        assert [f["type"] for f in client.frames[:2]] == ["hello", "resync_required"]
        assert seqs_of(client.frames) == []
        await client.close()

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


def test_since_zero_replays_everything_the_user_may_see(cluster: Cluster) -> None:
    team = cluster.api_a.signup()
    agent = team.add("agent")
    shared = team.install(shared_with=["agent"], name="Shared")
    private = team.install(shared_with=[], name="Private")
    for i in range(3):
        inbound_ok(cluster.api_a, shared, text=f"s{i}", contact=f"c{i % 2}")
        inbound_ok(cluster.api_b, private, text=f"p{i}", contact=f"c{i % 2}")

    async def main() -> None:
        for member, node in ((agent, cluster.b), (team.admin, cluster.a)):
            expected = visible_seqs(cluster.pg_url, team.account_id, member.id)
            client = await WsClient.connect(node.ws_url, member.token, since=0, name=member.name)
            await client.wait_for_frames(has_all(expected), 10)
            assert client.frames[0]["seq"] == latest_seq(cluster.pg_url, team.account_id)
            assert_in_order_once(seqs_of(client.frames), expected, member.name)
            await client.close()
        admin_all = visible_seqs(cluster.pg_url, team.account_id, team.admin.id)
        assert admin_all == list(range(1, latest_seq(cluster.pg_url, team.account_id) + 1))
        agent_seen = visible_seqs(cluster.pg_url, team.account_id, agent.id)
        assert len(agent_seen) < len(admin_all)

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


# Many clients at once --------------------------------------------------------------------------


def test_twenty_clients_connecting_at_the_same_instant_all_get_the_next_event(
    cluster: Cluster,
) -> None:
    team = cluster.api_a.signup()
    for i in range(4):
        team.add(f"agent{i}")
    integration = team.install(shared_with=[f"agent{i}" for i in range(4)])
    tokens = [m.token for m in team.members.values()] * 4  # 5 users, 4 sockets each

    async def main() -> None:
        clients = await asyncio.gather(
            *(
                WsClient.connect(cluster.b.ws_url, token, name=f"client{i}")
                for i, token in enumerate(tokens)
            )
        )
        assert len(clients) == 20
        hellos = await asyncio.gather(*(hello_of(c) for c in clients))
        assert {h["seq"] for h in hellos} == {latest_seq(cluster.pg_url, team.account_id)}
        await asyncio.to_thread(inbound_ok, cluster.api_a, integration, text="to everyone")
        await asyncio.gather(
            *(
                c.wait_for(of_type("message.created", message__text="to everyone"), 5)
                for c in clients
            )
        )
        await close_all(*clients)

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


# Presence --------------------------------------------------------------------------------------


def test_presence_online_availability_and_offline(cluster: Cluster) -> None:
    team = cluster.api_a.signup()
    bob = team.add("bob")
    admin = team.admin

    async def main() -> None:
        observer = await connect(cluster.a, admin.token, "admin@a")
        assert not users_online(cluster.api_a, admin.token)[bob.id]

        start = len(observer.frames)
        bob_on_b = await connect(cluster.b, bob.token, "bob@b")
        frame = await observer.wait_for_new(presence_of(bob.id, online=True), 5, start=start)
        assert frame["seq"] is None
        await poll(lambda: users_online(cluster.api_a, admin.token)[bob.id], 5)
        assert users_online(cluster.api_b, bob.token)[bob.id]

        # A second socket (on the other node); closing the first leaves bob online.
        bob_on_a = await connect(cluster.a, bob.token, "bob@a")
        # The server answers pings only once the connection counts for presence.
        await bob_on_a.send_json({"type": "ping"})
        await bob_on_a.wait_for(of_type("pong"))
        await bob_on_b.close()
        start = len(observer.frames)
        user = ok(
            cluster.api_b.put("/api/v1/me/availability", bob.token, json={"available": False})
        )
        assert user["available"] is False
        frame = await observer.wait_for_new(presence_of(bob.id, available=False), 5, start=start)
        assert presence_of(bob.id, online=True)(frame), frame
        assert users_online(cluster.api_a, admin.token)[bob.id]
        assert not any(presence_of(bob.id, online=False)(f) for f in observer.frames)

        start = len(observer.frames)
        await bob_on_a.close()
        await observer.wait_for_new(presence_of(bob.id, online=False), 5, start=start)
        await poll(lambda: not users_online(cluster.api_a, admin.token)[bob.id], 5)
        await observer.close()

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


# A client that does not read -------------------------------------------------------------------

EMOJI = [chr(c) for c in range(0x1F600, 0x1F640)]


def _signed_bodies(integration: dict[str, Any], count: int) -> list[tuple[bytes, str]]:
    """Inbound messages with big texts (4,000 four-byte characters) that do not compress."""
    texts = ["".join(random.choices(EMOJI, k=4000)) for _ in range(50)]
    bodies = []
    for i in range(count):
        body = orjson.dumps(
            {"message_id": uuid.uuid4().hex, "contact": {"id": f"c{i % 7}"}, "text": texts[i % 50]}
        )
        bodies.append((body, sign_sha256(integration["secret"], body)))
    return bodies


def test_a_client_that_stops_reading_is_told_to_resync_and_costs_bounded_memory(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    node = cluster.a
    team = cluster.api_a.signup()
    integration = team.install()
    count = 1000
    bodies = _signed_bodies(integration, count)
    rss_start = node.rss_bytes()

    async def main() -> None:
        reader = await connect(node, team.admin.token, "reader@a")
        # max_queue=1: the client library stops reading the socket once a frame waits.
        stalled = await open_ws(
            node.ws_url, team.admin.token, max_queue=1, compression=None, ping_interval=None
        )
        peak = rss_start
        rest_answers: list[int] = []
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal peak
            async with httpx.AsyncClient(base_url=node.url, trust_env=False, timeout=5) as http:
                while not done.is_set():
                    peak = max(peak, node.rss_bytes())
                    r = await http.get(
                        "/api/v1/me", headers={"Authorization": f"Bearer {team.admin.token}"}
                    )
                    rest_answers.append(r.status_code)
                    await asyncio.sleep(0.2)

        async def flood() -> list[int]:
            limit = asyncio.Semaphore(8)
            async with httpx.AsyncClient(base_url=node.url, trust_env=False, timeout=30) as http:

                async def one(body: bytes, signature: str) -> int:
                    async with limit:
                        r = await http.post(
                            f"/webhooks/api/{integration['id']}",
                            content=body,
                            headers={
                                "Content-Type": "application/json",
                                "X-Signature-256": signature,
                            },
                        )
                        return r.status_code

                return await asyncio.gather(*(one(b, s) for b, s in bodies))

        watcher = asyncio.create_task(watch())
        began = time.monotonic()
        statuses = await flood()
        flood_seconds = time.monotonic() - began
        done.set()
        await watcher
        assert statuses == [200] * count
        assert rest_answers and set(rest_answers) == {200}
        r = await asyncio.to_thread(cluster.api_a.get, "/api/v1/me", team.admin.token)
        assert r.status_code == 200
        peak = max(peak, node.rss_bytes())
        record_property("flood_seconds", round(flood_seconds, 1))
        record_property("rss_growth_mb", round((peak - rss_start) / MiB, 1))
        print(f"{count} events in {flood_seconds:.1f} s; RSS +{(peak - rss_start) / MiB:.1f} MiB")
        assert peak < rss_start + 200 * MiB

        # Everyone else kept up.
        after = reader.frames[0]["seq"]
        expected = visible_seqs(cluster.pg_url, team.account_id, team.admin.id, after=after)
        await reader.wait_for_frames(has_all(expected), 30)
        assert_in_order_once(seqs_of(reader.frames), expected, "the reading client")
        assert not any(f["type"] == "resync_required" for f in reader.frames)

        # The stalled client, reading at last: its outbox overflowed, so it is told to resync.
        frames: list[Frame] = []
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                frames.append(orjson.loads(await asyncio.wait_for(stalled.recv(), 10)))
                if frames[-1]["type"] == "resync_required":
                    break
        except websockets.ConnectionClosed:
            frames.append({"type": "<closed>"})
        except TimeoutError:
            frames.append({"type": "<nothing more>"})
        print(
            f"the stalled client read {len(frames)} frames before {frames[-1]} "
            f"(the last event was seq {expected[-1]})"
        )
        assert frames[-1]["type"] == "resync_required", f"no resync_required in {len(frames)}"
        await stalled.close()
        await reader.close()

    with logs_on_failure(cluster.a, cluster.b):
        asyncio.run(main())


# Redis going away ------------------------------------------------------------------------------


def test_nothing_is_lost_when_redis_restarts(pg_url: str) -> None:
    redis = RedisServer(free_port())
    env = node_env(
        database_url=pg_url,
        redis_url=redis.url,
        secret_key=f"restart-{uuid.uuid4().hex}",
        public_url=PUBLIC_URL,
    )
    nodes: list[ServerProcess] = []
    apis: list[Api] = []
    try:
        nodes.append(ServerProcess(env, free_port(), name="node-c"))
        nodes.append(ServerProcess(env, free_port(), name="node-d"))
        apis.extend(api_for(node) for node in nodes)
        with logs_on_failure(*nodes):
            _redis_restart_scenario(pg_url, redis, nodes[0], nodes[1], apis[0], apis[1])
    finally:
        for api in apis:
            api.close()
        for node in nodes:
            node.stop()
            node.cleanup()
        redis.cleanup()


def _redis_restart_scenario(
    pg_url: str, redis: RedisServer, c: ServerProcess, d: ServerProcess, api_c: Api, api_d: Api
) -> None:
    team = api_c.signup()
    agent = team.add("agent")
    shared = team.install(shared_with=["agent"], name="Shared")
    private = team.install(shared_with=[], name="Private")

    def changes(tag: str) -> None:
        for i in range(3):
            inbound_ok(api_c, shared, text=f"{tag} c{i}", contact=f"{tag}-{i % 2}")
            inbound_ok(api_d, shared, text=f"{tag} d{i}", contact=f"{tag}-{i % 2}")
            inbound_ok(api_d, private, text=f"{tag} p{i}", contact=f"{tag}-{i % 2}")

    async def main() -> None:
        clients = {
            "admin@c": (team.admin, await connect(c, team.admin.token, "admin@c")),
            "admin@d": (team.admin, await connect(d, team.admin.token, "admin@d")),
            "agent@c": (agent, await connect(c, agent.token, "agent@c")),
            "agent@d": (agent, await connect(d, agent.token, "agent@d")),
        }
        await asyncio.to_thread(changes, "before")

        async def everything_delivered(within: float) -> None:
            """Each client has every event committed so far that it may see: once, in order."""
            for key, (member, client) in clients.items():
                after = client.frames[0]["seq"]
                expected = visible_seqs(pg_url, team.account_id, member.id, after=after)
                await client.wait_for_frames(has_all(expected), within)
                assert_in_order_once(seqs_of(client.frames), expected, key)
                conv_msg = visible_seqs(
                    pg_url, team.account_id, member.id, after=after, types=CONV_MSG
                )
                assert seqs_of(client.frames, CONV_MSG) == conv_msg, key

        redis.stop()
        for node_api in (api_c, api_d):
            r = await asyncio.to_thread(node_api.get, "/readyz")
            assert r.status_code == 503 and r.json()["redis"] == "error", r.text
        await asyncio.to_thread(changes, "during")  # REST keeps working without Redis
        conversation_id = (await asyncio.to_thread(inbound_ok, api_d, shared, text="assign me"))[
            "conversation_id"
        ]
        r = await asyncio.to_thread(
            api_c.post,
            f"/api/v1/conversations/{conversation_id}/assign",
            team.admin.token,
            json={"user_id": agent.id},
        )
        assert r.status_code == 200, r.text
        # Without pub/sub, each node's check against the event log (every second) still delivers.
        await everything_delivered(within=10)

        redis.start()
        await asyncio.to_thread(c.wait_ready)
        await asyncio.to_thread(d.wait_ready)
        await asyncio.to_thread(changes, "after")
        await everything_delivered(within=20)
        await close_all(*(client for _, client in clients.values()))

    asyncio.run(main())


# A node dying ----------------------------------------------------------------------------------


def test_clients_of_a_killed_node_resume_elsewhere_and_its_users_go_offline(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    doomed = ServerProcess(cluster.env(), free_port(), name="node-doomed")
    api_doomed = api_for(doomed)
    try:
        with logs_on_failure(cluster.a, cluster.b, doomed):
            _killed_node_scenario(cluster, doomed, api_doomed, record_property)
    finally:
        api_doomed.close()
        doomed.kill()
        doomed.cleanup()


def _killed_node_scenario(
    cluster: Cluster,
    doomed: ServerProcess,
    api_doomed: Api,
    record_property: Callable[[str, object], None],
) -> None:
    team = cluster.api_a.signup()
    mover = team.add("mover")
    ghost = team.add("ghost")
    shared = team.install(shared_with=["mover", "ghost"], name="Shared")
    private = team.install(shared_with=[], name="Private")

    async def main() -> None:
        observer = await connect(cluster.a, team.admin.token, "admin@a")
        movers = {
            "mover": (mover, await connect(doomed, mover.token, "mover@doomed")),
            "admin": (team.admin, await connect(doomed, team.admin.token, "admin@doomed")),
        }
        ghost_client = await connect(doomed, ghost.token, "ghost@doomed")
        await observer.wait_for(presence_of(ghost.id, online=True), 5)

        def before() -> None:
            inbound_ok(api_doomed, shared, text="on doomed")
            inbound_ok(cluster.api_a, shared, text="on a", contact="cust-2")
            inbound_ok(cluster.api_b, private, text="private on b")

        await asyncio.to_thread(before)
        for member, client in movers.values():
            after = client.frames[0]["seq"]
            expected = visible_seqs(cluster.pg_url, team.account_id, member.id, after=after)
            await client.wait_for_frames(has_all(expected), 10)

        doomed.kill()
        killed_at = time.monotonic()
        for _, client in movers.values():
            await asyncio.wait_for(client.closed.wait(), 10)
        await asyncio.wait_for(ghost_client.closed.wait(), 10)

        def while_away() -> None:
            inbound_ok(cluster.api_a, shared, text="missed 1")
            inbound_ok(cluster.api_b, private, text="missed private")
            inbound_ok(cluster.api_b, shared, text="missed 2", contact="cust-3")

        def racing() -> None:
            for i in range(6):
                inbound_ok(cluster.api_b, shared, text=f"racing {i}", contact=f"race-{i % 2}")

        await asyncio.to_thread(while_away)
        resumed: dict[str, WsClient] = {}

        async def resume(key: str) -> None:
            _, old = movers[key]
            last = max(seqs_of(old.frames))
            resumed[key] = await WsClient.connect(
                cluster.a.ws_url, movers[key][0].token, since=last, name=f"{key}@a"
            )

        await asyncio.gather(resume("mover"), resume("admin"), asyncio.to_thread(racing))
        for key, (member, old) in movers.items():
            new = resumed[key]
            after = old.frames[0]["seq"]
            expected = visible_seqs(cluster.pg_url, team.account_id, member.id, after=after)
            missed = sorted(set(expected) - set(seqs_of(old.frames)))
            await new.wait_for_frames(has_all(missed), 10)
            assert new.frames[0]["type"] == "hello"
            assert_in_order_once(seqs_of(old.frames) + seqs_of(new.frames), expected, key)

        # The ghost was connected only to the dead node: presence expires and the sweep notices.
        def ghost_offline() -> bool:
            return not users_online(cluster.api_a, team.admin.token)[ghost.id]

        await poll(ghost_offline, timeout=60 - (time.monotonic() - killed_at), interval=1)
        offline_after = time.monotonic() - killed_at
        await observer.wait_for(presence_of(ghost.id, online=False), 5)
        record_property("offline_after_kill_s", round(offline_after, 1))
        print(f"the ghost turned offline {offline_after:.1f} s after its node was killed")
        await close_all(observer, *resumed.values())

    asyncio.run(main())


# Graceful shutdown -----------------------------------------------------------------------------


def test_a_node_shutting_down_tells_its_clients_it_is_going_away(cluster: Cluster) -> None:
    """SIGTERM: websockets are closed with 1001 at once, so clients move to another node."""
    leaving = ServerProcess(cluster.env(), free_port(), name="node-leaving")
    api_leaving = api_for(leaving)
    try:
        with logs_on_failure(leaving):
            team = api_leaving.signup()

            async def main() -> None:
                client = await connect(leaving, team.admin.token, "admin@leaving")
                await asyncio.to_thread(leaving.stop)
                await asyncio.wait_for(client.closed.wait(), 10)
                # 1001, not the 1006 of a dropped TCP connection nor uvicorn's own 1012.
                assert client.close_code == 1001, client.close_code

            asyncio.run(main())
    finally:
        api_leaving.close()
        leaving.kill()
        leaving.cleanup()


# Hostile clients -------------------------------------------------------------------------------


def test_a_flooding_client_is_rate_limited_then_disconnected(cluster: Cluster) -> None:
    team = cluster.api_a.signup()

    def pongs(frames: list[Any]) -> int:
        return sum(f["type"] == "pong" for f in frames)

    async def main() -> None:
        bursty = await connect(cluster.a, team.admin.token, "bursty")
        flood = await connect(cluster.a, team.admin.token, "flood")
        try:
            # A burst over the budget: the excess is dropped with one `rate_limited` error frame,
            # and the connection stays open.
            for _ in range(100):
                await bursty.connection.send('{"type": "ping"}')
            await bursty.wait_for(lambda f: f["type"] == "error")
            errors = [f["data"]["code"] for f in bursty.frames if f["type"] == "error"]
            assert errors == ["rate_limited"]
            assert 60 <= pongs(bursty.frames) < 100
            # A flood that keeps coming is disconnected with 1008 (policy violation).
            for _ in range(1000):
                try:
                    await flood.connection.send('{"type": "ping"}')
                except websockets.ConnectionClosed:
                    break
            await asyncio.wait_for(flood.closed.wait(), 10)
            assert flood.close_code == 1008, flood.close_code
            # The bursty client, once its budget refills, is served again; so is everyone else.
            answered = pongs(bursty.frames)
            await asyncio.sleep(0.5)  # lets the budget refill: a rate, not a synchronisation
            await bursty.connection.send('{"type": "ping"}')
            await bursty.wait_for_frames(lambda fs: pongs(fs) > answered)
        finally:
            await close_all(bursty, flood)

    asyncio.run(main())
