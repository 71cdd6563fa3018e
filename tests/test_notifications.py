"""Notifications end to end: desktop (websocket + in-app list) and email (a real SMTP server).

Most tests run a live server (SQLite and PostgreSQL) whose SMTP_URL points at an aiosmtpd server
of the test process; time moves with the server's test clock, never by sleeping. The two-node test
runs real server processes on PostgreSQL with a private Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from sqlalchemy import text

from server.state.db import Database
from tests import support
from tests.fake_smtp import FakeSmtp, Received
from tests.nodes import Frame, RedisServer, ServerProcess, WsClient, logs_on_failure, node_env
from tests.support import (
    REQUIRE_ALL,
    Api,
    LiveServer,
    Member,
    Team,
    create_pg_database,
    drop_pg_database,
    free_port,
    postgres_available,
    settings_for,
    wait_for,
    wipe,
)

KINDS = (
    "assigned_to_me",
    "message_assigned_to_me",
    "message_assigned_to_others",
    "message_unassigned",
)
PUBLIC_URL = "https://inbox.example.test"
EMAIL_FROM = "Switchboard <notify@inbox.example.test>"
WINDOW = {"minutes": 5, "seconds": 1}  # just past the burst window
PAST_ANY_BACKOFF = {"minutes": 10}


# Fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smtp() -> Iterator[FakeSmtp]:
    server = FakeSmtp().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def mail_server(
    request: pytest.FixtureRequest, smtp: FakeSmtp, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server that sends its notification email to `smtp`."""
    data_dir: Path = tmp_path_factory.mktemp(f"notify-{request.param}")
    pg_url = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'notify.db'}"
    elif postgres_available():
        url = pg_url = create_pg_database("switchboard_notify")
    elif REQUIRE_ALL:
        pytest.fail("PostgreSQL is required (SWITCHBOARD_REQUIRE_ALL=1) but does not answer")
    else:
        pytest.skip("PostgreSQL is not available here")
    settings = settings_for(
        url, data_dir, SMTP_URL=smtp.url, PUBLIC_URL=PUBLIC_URL, EMAIL_FROM=EMAIL_FROM
    )
    live = LiveServer(settings, support.TestClock())
    live.start()
    yield live
    live.stop()
    if pg_url:
        drop_pg_database(pg_url)


@dataclass
class Env:
    api: Api
    server: LiveServer
    smtp: FakeSmtp

    @property
    def db(self) -> Database:
        db: Database = self.server.runtime.db
        return db

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws"


def wipe_keeping_ids(db: Database) -> None:
    """Empty every table without handing out ids again (as SQLite does): the server's realtime
    hub keeps an account's feed for a while after its sockets close, keyed by account id."""
    if db.sqlite:
        wipe(db)
        return
    with db.write_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(support.TABLES)} CASCADE"))


@pytest.fixture
def env(mail_server: LiveServer, smtp: FakeSmtp) -> Iterator[Env]:
    wipe_keeping_ids(mail_server.runtime.db)
    mail_server.clock.reset()
    if not smtp.running:
        smtp.start()
    smtp.clear()
    api = Api(mail_server)
    yield Env(api, mail_server, smtp)
    api.close()


# Helpers ---------------------------------------------------------------------------------------


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def only(kind: str | None, *, desktop: bool, email: bool) -> dict[str, dict[str, bool]]:
    """Settings with everything off except `kind` on the channels given."""
    return {
        "desktop": {k: desktop and k == kind for k in KINDS},
        "email": {k: email and k == kind for k in KINDS},
    }


def set_settings(api: Api, member: Member, settings: dict[str, dict[str, bool]]) -> None:
    ok(api.put("/api/v1/me/notification-settings", member.token, json=settings))


def assign(api: Api, by: Member, conversation_id: int, to: Member) -> None:
    path = f"/api/v1/conversations/{conversation_id}/assign"
    ok(api.post(path, by.token, json={"user_id": to.id}))


def inbound(team: Team, integration: dict[str, Any], text: str, contact: str = "cust-1") -> int:
    r = team.inbound(integration, text=text, contact=contact, name=f"Carla {contact}")
    conversation_id: int = ok(r)["conversation_id"]
    return conversation_id


def listed(api: Api, member: Member, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = ok(api.get("/api/v1/notifications", member.token, params=params))
    return page


def unread(api: Api, member: Member) -> int:
    count: int = ok(api.get("/api/v1/notifications/unread-count", member.token))["unread"]
    return count


def digests(db: Database) -> list[dict[str, Any]]:
    with db.read_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, conversation_id, items, due_at, attempts, last_error, "
                "last_sent_at FROM email_digests ORDER BY id"
            )
        )
        return [dict(r._mapping) for r in rows]


def pending_items(db: Database, user: Member) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for digest in digests(db):
        if digest["user_id"] == user.id:
            value = digest["items"]  # SQLite hands the JSON back as text
            items += orjson.loads(value) if isinstance(value, str) else value
    return items


def outbox_settled(db: Database) -> bool:
    """Nothing waits to be emailed (everything due was sent or dropped)."""
    return all(d["due_at"] is None for d in digests(db))


def emails_after_window(e: Env, expected: int, advance: dict[str, float] = WINDOW) -> None:
    """Move past the burst window and wait until `expected` emails arrived and the outbox has
    nothing left: after that, no further email can come."""
    e.server.clock.advance(**advance)
    wait_for(lambda: len(e.smtp.emails()) >= expected and outbox_settled(e.db), timeout=15)


def notifications_of(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f["data"]["notification"] for f in frames if f["type"] == "notification.created"]


async def connect(url: str, member: Member, name: str) -> WsClient:
    client = await WsClient.connect(url, member.token, name=name)
    await client.wait_for(lambda f: f["type"] == "hello", 10)
    return client


async def barrier(api: Api, team: Team, integration: dict[str, Any], *clients: WsClient) -> None:
    """A change every user sees, after whatever came before it on each client's feed."""
    name = f"Chat {uuid.uuid4().hex[:6]}"
    path = f"/api/v1/integrations/{integration['id']}"
    await asyncio.to_thread(lambda: ok(api.patch(path, team.admin.token, json={"name": name})))
    for client in clients:
        await client.wait_for(lambda f: f["type"] == "integration.updated", 10)


# Settings, kinds and channels --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_reaches_each_channel_only_when_the_user_asked_for_it(
    env: Env, kind: str
) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    profiles = {"both": (True, True), "desktop": (True, False), "email": (False, True)}
    profiles["off"] = (False, False)
    for key in profiles:
        team.add(key)
    nora = team.add("nora")  # no shared access, and asks for everything
    integration = team.install(shared_with=list(profiles))
    set_settings(api, team.admin, only(None, desktop=False, email=False))
    for key, (desktop, email) in profiles.items():
        set_settings(api, team[key], only(kind, desktop=desktop, email=email))
    set_settings(
        api, nora, {"desktop": dict.fromkeys(KINDS, True), "email": dict.fromkeys(KINDS, True)}
    )

    def trigger() -> None:
        if kind == "message_unassigned":
            inbound(team, integration, "Anyone there?")
        elif kind == "message_assigned_to_others":
            conversation_id = inbound(team, integration, "Hello")
            assign(api, team.admin, conversation_id, team.admin)
            inbound(team, integration, "Anyone there?")
        else:  # each member gets their own conversation
            for key in profiles:
                conversation_id = inbound(team, integration, "Hello", contact=key)
                assign(api, team.admin, conversation_id, team[key])
                if kind == "message_assigned_to_me":
                    inbound(team, integration, "Anyone there?", contact=key)

    async def main() -> dict[str, list[dict[str, Any]]]:
        clients = {key: await connect(env.ws_url, team[key], key) for key in [*profiles, "nora"]}
        await asyncio.to_thread(trigger)
        await barrier(api, team, integration, *clients.values())
        received = {key: notifications_of(c.frames) for key, c in clients.items()}
        await asyncio.gather(*(c.close() for c in clients.values()))
        return received

    received = asyncio.run(main())
    for key in [*profiles, "nora"]:
        wanted = key in ("both", "desktop")
        assert [n["kind"] for n in received[key]] == ([kind] if wanted else []), key
        items = listed(api, team[key])["items"]
        assert [n["id"] for n in items] == [n["id"] for n in received[key]], key
        assert unread(api, team[key]) == len(items)
    notification = received["both"][0]
    assert set(notification) >= {"id", "kind", "conversation_id", "title", "body", "created_at"}
    assert "Carla" in notification["title"]
    if kind == "assigned_to_me":
        assert notification["title"].startswith("Ada Admin assigned you")
        assert notification["body"] == "Hello"
    else:
        assert notification["body"] == "Anyone there?"

    assert env.smtp.emails() == []  # email waits for the burst window
    emails_after_window(env, 2)
    assert sorted(r.rcpt_tos[0] for r in env.smtp.emails()) == sorted(
        [team["both"].email, team["email"].email]
    )
    for received_email in env.smtp.emails():
        body = received_email.part("plain")
        if kind == "assigned_to_me":
            assert "Ada Admin assigned you" in received_email.subject
        else:
            assert "Anyone there?" in body


def test_assigning_oneself_is_silent_and_nobody_hears_of_their_own_doing(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    bob, cleo = team.add("bob"), team.add("cleo")
    integration = team.install(shared_with=["bob", "cleo"])
    everything = {"desktop": dict.fromkeys(KINDS, True), "email": dict.fromkeys(KINDS, True)}
    for member in (team.admin, bob, cleo):
        set_settings(api, member, everything)
    conversation_id = inbound(team, integration, "Hi")  # unassigned: everyone hears of it
    before = {m.id: unread(api, m) for m in (team.admin, bob, cleo)}
    assert set(before.values()) == {1}

    async def main() -> dict[str, list[dict[str, Any]]]:
        clients = {
            "admin": await connect(env.ws_url, team.admin, "admin"),
            "bob": await connect(env.ws_url, bob, "bob"),
            "cleo": await connect(env.ws_url, cleo, "cleo"),
        }

        def changes() -> None:
            assign(api, team.admin, conversation_id, team.admin)  # herself
            assign(api, bob, conversation_id, bob)  # himself, taking it from Ada
            assign(api, bob, conversation_id, cleo)  # Bob gives it to Cleo: only Cleo hears

        await asyncio.to_thread(changes)
        await barrier(api, team, integration, *clients.values())
        received = {key: notifications_of(c.frames) for key, c in clients.items()}
        await asyncio.gather(*(c.close() for c in clients.values()))
        return received

    received = asyncio.run(main())
    assert received["admin"] == [] and received["bob"] == []
    assert [(n["kind"], n["title"]) for n in received["cleo"]] == [
        ("assigned_to_me", "Bob assigned you the conversation with Carla cust-1")
    ]
    assert {m.id: unread(api, m) for m in (team.admin, bob, cleo)} == {
        team.admin.id: 1,
        bob.id: 1,
        cleo.id: 2,
    }
    assert [i["kind"] for i in pending_items(env.db, team.admin)] == ["message_unassigned"]
    assert [i["kind"] for i in pending_items(env.db, bob)] == ["message_unassigned"]
    assert [i["kind"] for i in pending_items(env.db, cleo)] == [
        "message_unassigned",
        "assigned_to_me",
    ]


# Email: bursts, reading first, outages -----------------------------------------------------------


def test_a_burst_is_one_email_and_the_next_waits_a_window(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conversation_id = inbound(team, integration, "First, before Bob had it")
    assign(api, team.admin, conversation_id, bob)
    clock = env.server.clock
    inbound(team, integration, "Is the blue sofa in stock?")
    clock.advance(minutes=2)
    inbound(team, integration, "And the red one?")
    clock.advance(minutes=2)
    inbound(team, integration, "Do you deliver?")
    clock.advance(seconds=50)  # 4 min 50 s after the burst began: still gathering
    assert env.smtp.emails() == []
    assert len(pending_items(env.db, bob)) == 4  # the assignment and three messages

    emails_after_window(env, 1, advance={"seconds": 15})
    (email,) = env.smtp.emails(bob.email)
    assert email.to == bob.email and email.message["From"] == EMAIL_FROM
    assert email.subject == (
        "[Switchboard] Ada Admin assigned you the conversation with Carla cust-1; 3 new messages"
    )
    for part in (email.part("plain"), email.part("html")):
        texts = ["Is the blue sofa in stock?", "And the red one?", "Do you deliver?"]
        positions = [part.index(t) for t in texts]
        assert positions == sorted(positions)  # oldest first
        assert "First, before Bob had it" not in part  # Bob does not email unassigned messages
        assert f"{PUBLIC_URL}/#/conversations/{conversation_id}" in part
        assert f"{PUBLIC_URL}/#/settings/notifications" in part

    inbound(team, integration, "Hello again")
    (digest,) = [d for d in digests(env.db) if d["user_id"] == bob.id]
    assert digest["due_at"] is not None and digest["last_sent_at"] is not None
    clock.advance(minutes=4)
    assert len(env.smtp.emails()) == 1
    emails_after_window(env, 2, advance={"minutes": 1, "seconds": 5})
    second = env.smtp.emails(bob.email)[1]
    assert second.subject == "[Switchboard] New message from Carla cust-1"
    assert "Hello again" in second.part("plain")
    assert "Do you deliver?" not in second.part("plain")
    assert "assigned you" not in second.part("plain")


def test_reading_the_conversation_before_the_email_goes_cancels_it(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conversation_id = inbound(team, integration, "Hi")
    assign(api, team.admin, conversation_id, bob)
    inbound(team, integration, "Are you there?")
    assert unread(api, bob) == 3  # desktop: unassigned message, assignment, message
    env.server.clock.advance(minutes=1)
    ok(api.post(f"/api/v1/conversations/{conversation_id}/read", bob.token), 204)
    assert unread(api, bob) == 0  # reading the conversation reads its notifications
    assert all(n["read"] and n["read_at"] for n in listed(api, bob)["items"])

    emails_after_window(env, 0)
    assert env.smtp.emails() == []
    (digest,) = [d for d in digests(env.db) if d["user_id"] == bob.id]
    assert digest["last_sent_at"] is None and pending_items(env.db, bob) == []

    inbound(team, integration, "Hello? Anyone?")
    emails_after_window(env, 1)
    (email,) = env.smtp.emails(bob.email)
    assert email.subject == "[Switchboard] New message from Carla cust-1"
    body = email.part("plain")
    assert "Hello? Anyone?" in body and "Are you there?" not in body
    assert "assigned you" not in body


def test_while_smtp_is_down_email_waits_and_goes_exactly_once_when_it_returns(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    bob, cleo = team.add("bob"), team.add("cleo")
    integration = team.install(shared_with=["bob", "cleo"])
    set_settings(api, cleo, {"email": {"message_assigned_to_others": True}})
    conversation_id = inbound(team, integration, "Hi")
    assign(api, team.admin, conversation_id, bob)

    env.smtp.stop()
    inbound(team, integration, "One")
    inbound(team, integration, "Two")
    env.server.clock.advance(**WINDOW)

    def failed_attempts() -> bool:
        mine = [d for d in digests(env.db) if d["user_id"] in (bob.id, cleo.id)]
        return len(mine) == 2 and all(d["attempts"] >= 1 and d["last_error"] for d in mine)

    wait_for(failed_attempts, timeout=15)
    assert all("unreachable" in d["last_error"] for d in digests(env.db))
    inbound(team, integration, "Three")  # joins the waiting email
    assert len(pending_items(env.db, bob)) == 4  # assignment + three messages
    assert len(pending_items(env.db, cleo)) == 3

    env.smtp.start()  # same port
    emails_after_window(env, 2, advance=PAST_ANY_BACKOFF)
    for member in (bob, cleo):
        (email,) = env.smtp.emails(member.email)
        body = email.part("plain")
        assert all(t in body for t in ("One", "Two", "Three")), body
    assert "Ada Admin assigned you" in env.smtp.emails(bob.email)[0].part("plain")
    assert all(d["last_sent_at"] is not None for d in digests(env.db))
    assert pending_items(env.db, bob) == pending_items(env.db, cleo) == []


def test_an_address_the_server_refuses_for_good_is_not_retried(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    bob, cleo = team.add("bob"), team.add("cleo")
    integration = team.install(shared_with=["bob", "cleo"])
    for member in (bob, cleo):
        set_settings(api, member, {"email": {"message_unassigned": True}})
    env.smtp.refused.add(bob.email)
    inbound(team, integration, "Hello")

    emails_after_window(env, 1)
    assert [r.rcpt_tos for r in env.smtp.emails()] == [[cleo.email]]
    (bobs,) = [d for d in digests(env.db) if d["user_id"] == bob.id]
    assert "550" in bobs["last_error"] and bobs["last_sent_at"] is None
    assert pending_items(env.db, bob) == []  # dropped, not waiting for a retry
    inbound(team, integration, "Hello again")  # later news still gets its own try
    assert len(pending_items(env.db, bob)) == 1


# Who may be notified -----------------------------------------------------------------------------


def test_losing_shared_access_hides_notifications_and_cancels_their_email(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    bob, cleo = team.add("bob"), team.add("cleo")
    integration = team.install(shared_with=["bob", "cleo"])
    for member in (bob, cleo):
        set_settings(api, member, {"email": {"message_unassigned": True}})
    inbound(team, integration, "Secret plans")
    assert unread(api, bob) == unread(api, cleo) == 1

    path = f"/api/v1/integrations/{integration['id']}"
    ok(api.patch(path, team.admin.token, json={"shared_with": [bob.id]}))
    assert listed(api, cleo)["items"] == [] and unread(api, cleo) == 0
    inbound(team, integration, "More secret plans")
    assert unread(api, cleo) == 0 and unread(api, bob) == 2

    emails_after_window(env, 1)
    assert [r.rcpt_tos for r in env.smtp.emails()] == [[bob.email]]
    assert "Secret plans" in env.smtp.emails()[0].part("plain")


# The in-app list ---------------------------------------------------------------------------------


def test_the_in_app_list_pages_newest_first_and_marks_read(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada Admin")
    bob, cleo = team.add("bob"), team.add("cleo")
    integration = team.install(shared_with=["bob", "cleo"])
    for n in range(3):
        inbound(team, integration, f"Message {n}", contact=f"c{n}")  # unassigned: desktop default

    first = listed(api, bob, limit=2)
    assert [i["body"] for i in first["items"]] == ["Message 2", "Message 1"]
    assert first["next_cursor"]
    second = listed(api, bob, limit=2, cursor=first["next_cursor"])
    assert [i["body"] for i in second["items"]] == ["Message 0"]
    assert second["next_cursor"] is None
    items = first["items"] + second["items"]
    assert all(
        i["kind"] == "message_unassigned" and not i["read"] and i["read_at"] is None for i in items
    )
    assert [i["title"] for i in items] == [
        f"New message from Carla c{n} (unassigned)" for n in (2, 1, 0)
    ]
    assert unread(api, bob) == 3
    cleos = [i["id"] for i in listed(api, cleo)["items"]]

    async def main() -> list[dict[str, Any]]:
        tabs = [await connect(env.ws_url, bob, f"bob-{n}") for n in range(2)]
        answer = await asyncio.to_thread(
            lambda: ok(
                api.post(
                    "/api/v1/notifications/read", bob.token, json={"ids": [items[2]["id"], *cleos]}
                )
            )
        )
        assert answer == {"marked": 1, "unread": 2}
        frames = [
            await tab.wait_for(lambda f: f["type"] == "notification.read", 10) for tab in tabs
        ]
        await asyncio.gather(*(tab.close() for tab in tabs))
        return [f["data"] for f in frames]

    assert asyncio.run(main()) == [{"ids": [items[2]["id"]], "unread": 2}] * 2
    assert [i["read"] for i in listed(api, bob)["items"]] == [False, False, True]
    assert unread(api, cleo) == 3  # Bob's call did not touch Cleo's

    assert ok(api.post("/api/v1/notifications/read", bob.token)) == {"marked": 2, "unread": 0}
    assert all(i["read"] and i["read_at"] for i in listed(api, bob)["items"])
    assert ok(api.post("/api/v1/notifications/read", bob.token, json={})) == {
        "marked": 0,
        "unread": 0,
    }

    for bad in ({"ids": "all"}, {"ids": ["1"]}, {"ids": [0]}, {"ids": [True]}):
        r = api.post("/api/v1/notifications/read", bob.token, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert "ids" in " ".join(r.json()["error"]["fields"])
    assert api.get("/api/v1/notifications", bob.token, params={"limit": 0}).status_code == 422
    assert api.get("/api/v1/notifications", bob.token, params={"cursor": "x"}).status_code == 422


def test_a_whole_team_hears_of_a_message_each_with_its_own_notification(env: Env) -> None:
    """One message, many recipients: each frame is that user's own row, exactly as listed."""
    api = env.api
    team = api.signup(name="Ada Admin")
    agents = [team.add(f"agent{i}") for i in range(12)]
    integration = team.install(shared_with=[f"agent{i}" for i in range(12)])
    set_settings(api, agents[0], only("message_unassigned", desktop=False, email=False))
    text = 'Quote " backslash \\ ünïcødé 𝄞 <b>hi</b> \\u0000 {"id": 1}'

    async def main() -> dict[int, list[dict[str, Any]]]:
        clients = {a.id: await connect(env.ws_url, a, a.name) for a in [team.admin, *agents]}
        await asyncio.to_thread(inbound, team, integration, text)
        await barrier(api, team, integration, *clients.values())
        received = {user_id: notifications_of(c.frames) for user_id, c in clients.items()}
        await asyncio.gather(*(c.close() for c in clients.values()))
        return received

    received = asyncio.run(main())
    assert received[agents[0].id] == []  # asked for none
    ids = []
    for member in [team.admin, *agents[1:]]:
        (frame,) = received[member.id]
        (item,) = listed(api, member)["items"]
        assert frame == item, member.name
        assert item["body"] == text and item["kind"] == "message_unassigned"
        ids.append(item["id"])
    assert len(set(ids)) == len(ids) == 12
    assert listed(api, agents[0])["items"] == []


def stored_notifications(db: Database) -> dict[int, int]:
    """Rows in the notifications table per conversation, whoever they are for."""
    with db.write_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT conversation_id, COUNT(*) FROM notifications GROUP BY conversation_id")
        )
        return {int(conversation): int(count) for conversation, count in rows}


def test_deleting_a_conversation_or_its_app_deletes_its_notifications(env: Env) -> None:
    """Notifications have no foreign keys (a thousand-agent team writes a thousand rows per
    message): deleting the conversation, or uninstalling its app, removes them explicitly."""
    api = env.api
    team = api.signup(name="Ada Admin")
    team.add("bob")
    first = team.install(shared_with=["bob"], name="First")
    second = team.install(shared_with=["bob"], name="Second")
    gone = inbound(team, first, "to be deleted", contact="cust-1")
    kept = inbound(team, first, "stays", contact="cust-2")
    other = inbound(team, second, "other app", contact="cust-3")
    assert stored_notifications(env.db) == {gone: 2, kept: 2, other: 2}
    ok(api.delete(f"/api/v1/conversations/{gone}", team.admin.token), 204)
    assert stored_notifications(env.db) == {kept: 2, other: 2}
    assert [n["conversation_id"] for n in listed(api, team["bob"])["items"]] == [other, kept]
    ok(api.delete(f"/api/v1/integrations/{first['id']}", team.admin.token), 204)
    assert stored_notifications(env.db) == {other: 2}
    assert unread(api, team["bob"]) == 1


def test_email_escapes_everything_users_and_customers_wrote(env: Env) -> None:
    api = env.api
    team = api.signup(name="Ada <b>Admin</b>")
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"], name='Chat "<i>"')
    evil_name = "Eve <img src=x onerror=alert(1)>\r\nBcc: victim@example.com"
    script = "<script>alert('x')</script> & Co"
    r = team.inbound(integration, text="Hi", contact="eve", name=evil_name)
    conversation_id = ok(r)["conversation_id"]
    assign(api, team.admin, conversation_id, bob)
    ok(team.inbound(integration, text=script, contact="eve", name=evil_name))

    emails_after_window(env, 1)
    (email,) = env.smtp.emails(bob.email)
    assert email.message["Bcc"] is None and email.rcpt_tos == [bob.email]
    assert "\n" not in email.subject and "Eve <img" in email.subject
    html = email.part("html")
    for raw in ("<script", "<img", "<b>Admin", "<i>"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in html
    assert "Eve &lt;img src=x onerror=alert(1)&gt;" in html
    assert "Ada &lt;b&gt;Admin&lt;/b&gt;" in html
    assert f'<a href="{PUBLIC_URL}/#/conversations/{conversation_id}">' in html
    assert f'<a href="{PUBLIC_URL}/#/settings/notifications">' in html
    plain = email.part("plain")
    assert script in plain and "Ada <b>Admin</b> assigned you" in plain


def test_without_smtp_url_nothing_is_queued_for_email(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    set_settings(api, team.admin, {"email": dict.fromkeys(KINDS, True)})
    inbound(team, integration, "Hello")
    assert [i["kind"] for i in listed(api, team.admin)["items"]] == ["message_unassigned"]
    assert digests(db) == []


# Several nodes -----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_nodes_notify_once_and_send_one_email_per_recipient(smtp: FakeSmtp) -> None:
    assert postgres_available(), "PostgreSQL does not answer: this test needs it"
    if not smtp.running:
        smtp.start()
    smtp.clear()
    pg_url = create_pg_database("switchboard_notify_nodes")
    redis = RedisServer(free_port())
    env = node_env(
        database_url=pg_url,
        redis_url=redis.url,
        secret_key=f"notify-{uuid.uuid4().hex}",
        public_url=PUBLIC_URL,
        SMTP_URL=smtp.url,
    )
    nodes: list[ServerProcess] = []
    try:
        nodes.append(ServerProcess(env, free_port(), name="node-a"))
        nodes.append(ServerProcess(env, free_port(), name="node-b"))
        with logs_on_failure(*nodes):
            _two_nodes(smtp, pg_url, nodes[0], nodes[1])
    finally:
        for node in nodes:
            node.stop()
            node.cleanup()
        redis.cleanup()
        drop_pg_database(pg_url)


def _two_nodes(smtp: FakeSmtp, pg_url: str, a: ServerProcess, b: ServerProcess) -> None:
    api_a, api_b = Api(a), Api(b)  # type: ignore[arg-type]  # Api only needs `.url`
    team = api_a.signup(name="Ada Admin")
    bob, cleo = team.add("bob"), team.add("cleo")
    team.add("nora")
    integration = team.install(shared_with=["bob", "cleo"])
    set_settings(api_b, cleo, {"email": {"message_assigned_to_others": True}})
    team_b = Team(api_b, team.account_id, team.members)

    async def main() -> dict[str, list[dict[str, Any]]]:
        clients = {
            "bob@a": await connect(a.ws_url, bob, "bob@a"),
            "bob@b": await connect(b.ws_url, bob, "bob@b"),
            "cleo@b": await connect(b.ws_url, cleo, "cleo@b"),
            "nora@a": await connect(a.ws_url, team["nora"], "nora@a"),
        }

        def changes() -> None:
            conversation_id = inbound(team, integration, "Hello from A")
            assign(api_b, team.admin, conversation_id, bob)
            inbound(team_b, integration, "Second, through B")
            inbound(team, integration, "Third, through A")

        await asyncio.to_thread(changes)
        for key, count in (("bob@a", 4), ("bob@b", 4), ("cleo@b", 1)):
            await clients[key].wait_for_frames(
                lambda fs, n=count: len(notifications_of(fs)) >= n, 10
            )
        await barrier(api_a, team, integration, *clients.values())
        received = {key: notifications_of(c.frames) for key, c in clients.items()}
        await asyncio.gather(*(c.close() for c in clients.values()))
        return received

    received = asyncio.run(main())
    # Sorted: events committed on different nodes may reach a tab in either order.
    kinds = ["assigned_to_me", "message_assigned_to_me", "message_assigned_to_me"]
    assert sorted(n["kind"] for n in received["bob@a"]) == [*kinds, "message_unassigned"]
    ids = sorted(n["id"] for n in received["bob@a"])
    assert sorted(n["id"] for n in received["bob@b"]) == ids == sorted(set(ids))  # each once
    assert [n["kind"] for n in received["cleo@b"]] == ["message_unassigned"]
    assert received["nora@a"] == []

    def sql(query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(pg_url) as conn:
            return list(conn.execute(query).fetchall())

    rows = sql("SELECT user_id, count(*) FROM notifications GROUP BY user_id ORDER BY user_id")
    assert rows == [(team.admin.id, 1), (bob.id, 4), (cleo.id, 1)]
    pending = sql("SELECT user_id FROM email_digests WHERE due_at IS NOT NULL ORDER BY user_id")
    assert pending == [(bob.id,), (cleo.id,)]
    # The nodes run on real time: bring the end of the burst window forward instead of waiting.
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE email_digests SET due_at = now() - interval '1 second' WHERE due_at IS NOT NULL"
        )

    def sent() -> bool:
        return sql("SELECT count(*) FROM email_digests WHERE due_at IS NOT NULL") == [(0,)]

    wait_for(sent, timeout=20)
    recipients = sorted(r.rcpt_tos[0] for r in smtp.emails())
    assert recipients == sorted([bob.email, cleo.email])
    bobs: Received = smtp.emails(bob.email)[0]
    assert all(t in bobs.part("plain") for t in ("Second, through B", "Third, through A"))
    api_a.close()
    api_b.close()
