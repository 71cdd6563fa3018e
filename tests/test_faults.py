"""Fault injection on real server processes (`python -m server run`) on PostgreSQL and Redis.

- The database goes away under traffic: the node's connections are terminated again and again
  (`pg_terminate_backend`), then the database refuses connections for a while
  (`ALTER DATABASE ... ALLOW_CONNECTIONS false`). Requests in flight succeed or answer
  `503 service_unavailable`, never 500, never hang; `/readyz` says the database is down while it
  is; and the node recovers by itself once the database is back.
- Redis goes away: REST keeps working and `/readyz` answers 503 naming Redis; once Redis is back the
  node is ready again. (That realtime clients miss nothing across a Redis restart is
  `tests/test_realtime.py::test_nothing_is_lost_when_redis_restarts`.)
- A node is SIGKILLed in the middle of concurrent webhooks and replies: a node started on the same
  database finds no half-written state, and every webhook answered 200 is stored.

Every test has a database and nodes of its own (the faults are destructive); only 127.0.0.1 is
used, every wait is bounded, and databases, nodes and Redis are removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from server.lifecycle import REDIS_POOL_SIZE, redis_client
from server.security.signatures import sign_sha256
from tests.nodes import RedisServer, ServerProcess, WsClient, logs_on_failure, node_env
from tests.support import (
    PG_ADMIN_URL,
    Api,
    Team,
    create_pg_database,
    drop_pg_database,
    free_port,
    postgres_available,
)

pytestmark = pytest.mark.postgres

PUBLIC_URL = "http://switchboard.faults"
HANG = 15.0  # a request without an answer after this long has hung
SECRET = "fault-secret"


# Databases, Redis and nodes of our own ---------------------------------------------------------


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _admin(query: str, *params: Any) -> list[tuple[Any, ...]]:
    """A statement on the maintenance database, as the PostgreSQL superuser of the tests."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(query, params)  # type: ignore[call-overload]
        return list(cursor.fetchall()) if cursor.description else []


def terminate_connections(url: str) -> int:
    """Cut every connection to the database (the server's): how many there were."""
    rows = _admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        _database_name(url),
    )
    return len(rows)


def allow_connections(url: str, allowed: bool) -> None:
    name = _database_name(url)
    _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')


@pytest.fixture
def pg_url() -> Iterator[str]:
    assert postgres_available(), "PostgreSQL does not answer: these tests need it"
    url = create_pg_database("switchboard_faults")
    try:
        yield url
    finally:
        allow_connections(url, True)
        drop_pg_database(url)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    yield server
    server.cleanup()


@contextlib.contextmanager
def running_node(pg_url: str, redis: RedisServer, name: str) -> Iterator[ServerProcess]:
    env = node_env(
        database_url=pg_url,
        redis_url=redis.url,
        secret_key="faults-secret-key",
        public_url=PUBLIC_URL,
    )
    node = ServerProcess(env, free_port(), name=name)
    try:
        with logs_on_failure(node):
            yield node
    finally:
        node.stop()
        node.cleanup()


def api_of(node: ServerProcess) -> closing[Api]:
    """An API client of the node (Api only needs `.url`), closed at the end of the block."""
    return closing(Api(node))  # type: ignore[arg-type]


def sql(pg_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, connect_timeout=5) as conn:
        return list(conn.execute(query, params).fetchall())  # type: ignore[call-overload]


# Traffic ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one request got: a status and error code, or the exception instead of an answer."""

    kind: str
    status: int | None
    code: str | None
    seconds: float
    failure: str | None = None
    body: Any = None


@dataclass
class Traffic:
    """Requests of one team's users at one node, from several threads at once."""

    node_url: str
    team: Team
    integrations: list[dict[str, Any]]  # `api` channels, signed with SECRET
    conversations: list[int]  # replied to
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def request(
        self, http: httpx.Client, kind: str, method: str, path: str, **kwargs: Any
    ) -> Outcome:
        began = time.monotonic()
        try:
            r = http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            outcome = Outcome(kind, None, None, time.monotonic() - began, f"hung: {exc!r}")
        except httpx.HTTPError as exc:
            outcome = Outcome(kind, None, None, time.monotonic() - began, repr(exc))
        else:
            body = _json(r)
            error = body.get("error") if isinstance(body, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            outcome = Outcome(kind, r.status_code, code, time.monotonic() - began, body=body)
        self.outcomes.append(outcome)
        return outcome

    def inbound(self, http: httpx.Client, integration: dict[str, Any], contact: str) -> Outcome:
        message_id = f"m-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        body = orjson.dumps(
            {"message_id": message_id, "contact": {"id": contact}, "text": f"hello {message_id}"}
        )
        outcome = self.request(
            http,
            "inbound",
            "POST",
            f"/webhooks/api/{integration['id']}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Signature-256": sign_sha256(SECRET, body),
            },
        )
        outcome.body = {"sent": message_id, "answer": outcome.body}
        return outcome

    def mixed(self, worker: int) -> None:
        """One thread's share until told to stop: messages, replies, lists, readiness."""
        token = self.team.admin.token
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=self.node_url, timeout=HANG, trust_env=False) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                step = n % 5
                if step == 0:
                    integration = self.integrations[worker % len(self.integrations)]
                    self.inbound(http, integration, f"cust-{worker}-{n % 3}")
                elif step == 1:
                    conversation_id = self.conversations[worker % len(self.conversations)]
                    self.request(
                        http,
                        "reply",
                        "POST",
                        f"/api/v1/conversations/{conversation_id}/messages",
                        json={"text": f"reply {worker}/{n}"},
                        headers=auth,
                    )
                elif step == 2:
                    self.request(http, "list", "GET", "/api/v1/conversations", headers=auth)
                elif step == 3:
                    self.request(http, "me", "GET", "/api/v1/me", headers=auth)
                else:
                    self.request(http, "readyz", "GET", "/readyz")

    def run(self, threads: int, during: Callable[[], None]) -> None:
        """Traffic from `threads` threads while `during()` runs, then until they all stopped."""
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(self.mixed, i) for i in range(threads)]
            try:
                during()
            finally:
                self.stop.set()
                for future in futures:
                    future.result(timeout=HANG * 2)


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll `predicate` until truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
        pause.wait(interval)


def readyz(node: ServerProcess) -> tuple[int, Any]:
    with httpx.Client(timeout=HANG, trust_env=False) as http:
        r = http.get(f"{node.url}/readyz")
        return r.status_code, _json(r)


def setup_team(api: Api) -> tuple[Team, dict[str, Any], int]:
    team = api.signup(company="Faults Inc")
    integration = team.install(secret=SECRET)
    conversation = team.conversation_from(integration, text="Hello there", contact="first")
    return team, integration, conversation["id"]


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = f"{o.kind} {o.status if o.status is not None else 'no answer'}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


# 1. The database going away ---------------------------------------------------------------------


def test_database_outages_fail_cleanly_and_the_node_recovers_by_itself(
    pg_url: str, redis: RedisServer
) -> None:
    with running_node(pg_url, redis, "node-db") as node, api_of(node) as api:
        team, integration, conversation_id = setup_team(api)
        traffic = Traffic(node.url, team, [integration], [conversation_id])
        cut = 0

        def cut_connections_repeatedly() -> None:
            nonlocal cut
            # Let traffic get going, then cut every connection of the node every 100 ms for 4 s,
            # refusing new ones every other half second.
            wait_until(lambda: len(traffic.outcomes) >= 20, 15, "traffic before the cuts")
            deadline = time.monotonic() + 4
            pause = threading.Event()
            try:
                for round_ in itertools.count():
                    if time.monotonic() > deadline:
                        break
                    if round_ % 5 == 0:
                        allow_connections(pg_url, round_ % 10 != 0)
                    cut += terminate_connections(pg_url)
                    pause.wait(0.1)
            finally:
                allow_connections(pg_url, True)

        traffic.run(threads=8, during=cut_connections_repeatedly)
        during_cuts = traffic.outcomes
        print(f"{cut} connections cut; {summary(during_cuts)}")
        assert cut > 0, "no connection of the node was ever cut"
        _assert_clean(during_cuts, "while connections were being cut")

        # The database refuses connections altogether: the node says so, and answers 503.
        allow_connections(pg_url, False)
        try:
            terminate_connections(pg_url)
            _, body = wait_until(
                lambda: (s := readyz(node))[0] == 503 and s,
                15,
                "/readyz reporting the database down",
            )
            assert body == {"database": "error", "redis": "ok"}, body
            down = Traffic(node.url, team, [integration], [conversation_id])
            down.run(
                threads=4,
                during=lambda: wait_until(
                    lambda: len(down.outcomes) >= 40, 20, "requests while the database is down"
                ),
            )
            print(f"database refusing connections: {summary(down.outcomes)}")
            _assert_clean(down.outcomes, "while the database refused connections")
            rest = [o for o in down.outcomes if o.kind != "readyz"]
            assert rest and all(o.status == 503 for o in rest), summary(rest)
        finally:
            allow_connections(pg_url, True)

        # Back: ready again, and doing its job, without a restart.
        wait_until(lambda: readyz(node)[0] == 200, 30, "/readyz after the database came back")
        assert readyz(node)[1] == {"database": "ok", "redis": "ok"}
        assert node.alive()
        after = Traffic(node.url, team, [integration], [conversation_id])
        after.run(
            threads=4,
            during=lambda: wait_until(lambda: len(after.outcomes) >= 40, 20, "requests after"),
        )
        assert {o.status for o in after.outcomes} <= {200, 201}, summary(after.outcomes)
        _a_reply_is_delivered(api, team, conversation_id)
        asyncio.run(_live_events_flow(node, api, team, integration))

        # Every message that was answered 200 is stored, whatever happened around it.
        accepted = [
            o.body["sent"]
            for o in during_cuts + down.outcomes + after.outcomes
            if o.kind == "inbound" and o.status == 200
        ]
        stored = {
            row[0]
            for row in sql(
                pg_url,
                "SELECT external_id FROM messages WHERE integration_id = %s",
                integration["id"],
            )
        }
        missing = sorted(set(accepted) - stored)
        assert not missing, f"{len(missing)} webhooks answered 200 were not stored: {missing[:5]}"
        # And no transaction cut short left half of itself behind.
        problems = consistency_problems(pg_url)
        assert not problems, "half-written state after the outages:\n" + "\n".join(problems)


def _assert_clean(outcomes: list[Outcome], when: str) -> None:
    """Each request got an answer in time: a success, or 503 `service_unavailable`."""
    problems = []
    for o in outcomes:
        if o.failure is not None:
            problems.append(f"{o.kind}: no answer after {o.seconds:.1f} s ({o.failure})")
        elif o.status is None or (o.status >= 500 and o.status != 503):
            problems.append(f"{o.kind}: {o.status} {o.body!r:.300}")
        elif o.status == 503 and o.kind != "readyz" and o.code != "service_unavailable":
            problems.append(f"{o.kind}: 503 outside the envelope: {o.body!r:.300}")
        elif o.status == 503 and o.kind == "readyz" and (o.body or {}).get("database") != "error":
            problems.append(f"readyz: 503 without naming the database: {o.body!r}")
        elif o.status not in (200, 201, 503):
            problems.append(f"{o.kind}: unexpected {o.status} {o.body!r:.300}")
        elif o.seconds > HANG:
            problems.append(f"{o.kind}: answered only after {o.seconds:.1f} s")
    distinct = sorted(set(problems))
    assert not distinct, (
        f"{len(problems)} of {len(outcomes)} requests failed badly {when}:\n" + "\n".join(distinct)
    )


def _a_reply_is_delivered(api: Api, team: Team, conversation_id: int) -> None:
    """The outbound worker survived the outage: a new reply goes out (`sent`)."""
    r = api.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        team.admin.token,
        json={"text": "After the outage"},
    )
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]

    def sent() -> bool:
        page = api.get(f"/api/v1/conversations/{conversation_id}/messages", team.admin.token)
        found = [m for m in page.json()["items"] if m["id"] == message_id]
        return bool(found) and found[0]["status"] == "sent"

    wait_until(sent, 20, "the reply made after the outage becoming `sent`")


async def _live_events_flow(
    node: ServerProcess, api: Api, team: Team, integration: dict[str, Any]
) -> None:
    """A websocket still gets its hello and the next message, live."""
    client = await WsClient.connect(node.ws_url, team.admin.token, name="after-outage")
    try:
        hello = await client.wait_for(lambda f: f.get("type") == "hello", 10)
        r = await asyncio.to_thread(team.inbound, integration, text="live again", contact="live")
        assert r.status_code == 200, r.text
        frame = await client.wait_for(
            lambda f: (
                f.get("type") == "message.created" and f["data"]["message"]["text"] == "live again"
            ),
            10,
        )
        assert frame["seq"] > hello["seq"]
    finally:
        await client.close()


# 2. Redis going away ----------------------------------------------------------------------------


def test_without_redis_rest_keeps_working_and_readyz_names_redis(
    pg_url: str, redis: RedisServer
) -> None:
    with running_node(pg_url, redis, "node-redis") as node, api_of(node) as api:
        team, integration, conversation_id = setup_team(api)
        agent = team.add("agent")
        redis.stop()
        _, body = wait_until(
            lambda: (s := readyz(node))[0] == 503 and s, 15, "/readyz reporting Redis down"
        )
        assert body == {"database": "ok", "redis": "error"}, body

        token = team.admin.token
        timings: dict[str, float] = {}

        def timed(name: str, call: Callable[[], httpx.Response], status: int = 200) -> Any:
            began = time.monotonic()
            r = call()
            timings[name] = time.monotonic() - began
            assert r.status_code == status, f"{name}: {r.status_code} {r.text}"
            return _json(r)

        me = timed("me", lambda: api.get("/api/v1/me", token))
        assert me["online"] is False  # presence lives in Redis: everyone offline meanwhile
        users = timed("users", lambda: api.get("/api/v1/users", token))
        assert {u["id"] for u in users["items"]} == {team.admin.id, agent.id}
        timed(
            "login",
            lambda: api.post(
                "/api/v1/login", json={"email": team.admin.email, "password": "correct horse"}
            ),
        )
        other = timed(
            "signup",
            lambda: api.post(
                "/api/v1/signup",
                json={
                    "company_name": "Signed up without Redis",
                    "name": "Nora",
                    "email": f"nora-{uuid.uuid4().hex[:8]}@example.com",
                    "password": "correct horse",
                },
            ),
            201,
        )
        assert other["token"]
        inbound = timed("webhook", lambda: team.inbound(integration, text="no redis", contact="n"))
        assert inbound["duplicate"] is False
        timed(
            "assign",
            lambda: api.post(
                f"/api/v1/conversations/{inbound['conversation_id']}/assign",
                token,
                json={"user_id": team.admin.id},
            ),
        )
        timed("close", lambda: api.post(f"/api/v1/conversations/{conversation_id}/close", token))
        timed(
            "availability",
            lambda: api.put("/api/v1/me/availability", agent.token, json={"available": False}),
        )
        timed(
            "person",
            lambda: api.post("/api/v1/persons", token, json={"name": "Redis-less Person"}),
            201,
        )
        timed("summary", lambda: api.get("/api/v1/inbox/summary", token))
        _a_reply_is_delivered(api, team, conversation_id)
        slow = {name: round(s, 2) for name, s in timings.items() if s > 5}
        assert not slow, f"requests slowed down by the missing Redis: {slow}"

        # Redis is back: ready again, without a restart, and realtime flows.
        redis.start()
        node.wait_ready()
        assert readyz(node) == (200, {"database": "ok", "redis": "ok"})
        asyncio.run(_live_events_flow(node, api, team, integration))


# 3. A node killed mid-request -------------------------------------------------------------------


def test_a_node_killed_mid_traffic_leaves_no_half_written_state(
    pg_url: str, redis: RedisServer
) -> None:
    with running_node(pg_url, redis, "node-doomed") as doomed, api_of(doomed) as api:
        team, integration, conversation_id = setup_team(api)
        second = team.install(secret=SECRET, name="Second channel")
        other = team.conversation_from(second, text="Hi on the second", contact="second")
        traffic = Traffic(doomed.url, team, [integration, second], [conversation_id, other["id"]])

        def kill_in_the_middle() -> None:
            # Well into the traffic, with requests in flight: no warning, no shutdown.
            wait_until(
                lambda: sum(o.status in (200, 201) for o in traffic.outcomes) >= 150,
                30,
                "traffic before the kill",
            )
            doomed.kill()

        traffic.run(threads=16, during=kill_in_the_middle)
        outcomes = traffic.outcomes
        print(f"before and at the kill: {summary(outcomes)}")
        cut_off = [o for o in outcomes if o.failure is not None]
        assert cut_off, "the kill interrupted no request: it did not happen mid-traffic"
        assert not [o for o in outcomes if o.status is not None and o.status >= 500], summary(
            outcomes
        )

    # A node started afresh on the same database.
    with running_node(pg_url, redis, "node-after") as after, api_of(after) as api:
        problems = consistency_problems(pg_url)
        assert not problems, "half-written state after the kill:\n" + "\n".join(problems)

        # Every webhook answered 200 before the kill is stored, with the ids it was answered.
        for o in outcomes:
            if o.kind == "inbound" and o.status == 200:
                answer = o.body["answer"]
                rows = sql(
                    pg_url,
                    "SELECT id, conversation_id FROM messages WHERE external_id = %s",
                    o.body["sent"],
                )
                assert rows == [(answer["message_id"], answer["conversation_id"])], o.body
        # Every reply answered 201 is stored, queued with its job or already sent.
        for o in outcomes:
            if o.kind == "reply" and o.status == 201:
                rows = sql(
                    pg_url,
                    "SELECT m.status, j.id FROM messages m "
                    "LEFT JOIN outbound_jobs j ON j.message_id = m.id WHERE m.id = %s",
                    o.body["id"],
                )
                assert rows and (rows[0][0] == "sent" or rows[0][1] is not None), (o.body, rows)

        # The new node serves what is there, and takes new messages.
        r = api.get("/api/v1/inbox/summary", team.admin.token)
        assert r.status_code == 200, r.text
        listed = sum(s["count"] for s in r.json()["sections"].values())
        (stored,) = sql(
            pg_url, "SELECT COUNT(*) FROM conversations WHERE account_id = %s", team.account_id
        )
        assert listed == stored[0]
        r = api.inbound(integration["id"], SECRET, text="after the crash", contact="late")
        assert r.status_code == 200, r.text
        assert not consistency_problems(pg_url)


def consistency_problems(pg_url: str) -> list[str]:
    """Invariants of the stored state that a transaction cut short would break."""
    checks = {
        "messages without their conversation": """
            SELECT m.id FROM messages m
            LEFT JOIN conversations c ON c.id = m.conversation_id WHERE c.id IS NULL""",
        "conversations without messages": """
            SELECT c.id FROM conversations c
            WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)""",
        "conversations whose last_message_id is not their newest message": """
            SELECT c.id, c.last_message_id FROM conversations c
            WHERE c.last_message_id IS DISTINCT FROM
                  (SELECT MAX(m.id) FROM messages m WHERE m.conversation_id = c.id)""",
        "conversations whose inbound_count is not their inbound messages": """
            SELECT c.id, c.inbound_count FROM conversations c
            WHERE c.inbound_count <> (SELECT COUNT(*) FROM messages m
                                      WHERE m.conversation_id = c.id
                                        AND m.direction = 'inbound')""",
        "conversations without their contact": """
            SELECT c.id FROM conversations c
            LEFT JOIN contacts k ON k.id = c.contact_id WHERE k.id IS NULL""",
        "contacts without a conversation": """
            SELECT k.id FROM contacts k
            WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = k.id)""",
        "outbound jobs without their message": """
            SELECT j.id FROM outbound_jobs j
            LEFT JOIN messages m ON m.id = j.message_id WHERE m.id IS NULL""",
        "outbound jobs of messages that are not queued replies": """
            SELECT j.id, m.direction, m.status FROM outbound_jobs j
            JOIN messages m ON m.id = j.message_id
            WHERE m.direction <> 'outbound' OR m.status <> 'queued'""",
        "queued replies without a job (never to be sent)": """
            SELECT m.id FROM messages m
            WHERE m.direction = 'outbound' AND m.status = 'queued'
              AND NOT EXISTS (SELECT 1 FROM outbound_jobs j WHERE j.message_id = m.id)""",
        "messages without their message.created event": """
            SELECT c.id, COUNT(m.id) FROM conversations c JOIN messages m
                ON m.conversation_id = c.id
            GROUP BY c.id
            HAVING COUNT(m.id) <> (SELECT COUNT(*) FROM events e
                                   WHERE e.conversation_id = c.id
                                     AND e.type = 'message.created')""",
        "events numbered beyond their account's counter": """
            SELECT e.account_id, MAX(e.seq), a.event_seq FROM events e
            JOIN accounts a ON a.id = e.account_id
            GROUP BY e.account_id, a.event_seq HAVING MAX(e.seq) > a.event_seq""",
        "events sharing a seq": """
            SELECT account_id, seq FROM events GROUP BY account_id, seq HAVING COUNT(*) > 1""",
    }
    problems = []
    for what, query in checks.items():
        rows = sql(pg_url, query)
        if rows:
            problems.append(f"{what}: {rows[:10]}")
    # Seqs run 1, 2, 3... per account without gaps (nothing was deleted or pruned here).
    for account_id, pruned, latest in sql(
        pg_url, "SELECT id, events_pruned_through, event_seq FROM accounts"
    ):
        seqs = [
            row[0]
            for row in sql(
                pg_url, "SELECT seq FROM events WHERE account_id = %s ORDER BY seq", account_id
            )
        ]
        if seqs != list(range(pruned + 1, latest + 1)):
            gaps = sorted(set(range(pruned + 1, latest + 1)) - set(seqs))
            problems.append(f"account {account_id}: seqs up to {latest} missing {gaps[:20]}")
    return problems


# Bursts on the node's Redis pool ---------------------------------------------------------------


def test_a_burst_of_redis_commands_waits_for_the_pool_instead_of_failing() -> None:
    """Five times the pool's connections at once (a thousand sockets closing together, each
    clearing its presence): every command is answered, none fails for want of a connection."""
    server = RedisServer(free_port())
    try:

        async def burst() -> list[Any]:
            client = redis_client(server.url)
            try:
                key = f"burst-{uuid.uuid4().hex}"
                count = 5 * REDIS_POOL_SIZE
                return await asyncio.gather(*(client.incr(key) for _ in range(count)))
            finally:
                await client.aclose()

        answers = asyncio.run(burst())
        assert sorted(answers) == list(range(1, 5 * REDIS_POOL_SIZE + 1))
    finally:
        server.cleanup()
