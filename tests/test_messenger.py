"""Facebook Messenger: Meta's handshake and signed page webhooks in, the Send API out.

A server of this module's own (per database backend) talks to a fake Graph API
(`tests.fake_meta.FakeMeta`) through `MESSENGER_API_BASE`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from server.config import Settings
from server.providers.base import OutboundMessage, SendError
from server.providers.messenger import GRAPH_VERSION, MessengerProvider
from server.security.signatures import sign_sha256
from server.state.db import Database
from tests.fake_meta import FakeMeta, graph_error
from tests.support import (
    REQUIRE_ALL,
    Api,
    LiveServer,
    Team,
    create_pg_database,
    drop_pg_database,
    event_log,
    free_port,
    postgres_available,
    settings_for,
    wait_for,
)
from tests.support import TestClock as FakeClock  # not collected as a test class

PAGE_ID = "104729584712345"
TOKEN = "EAAGm0PX4ZCpsBA-page-token"
APP_SECRET = "3f1e6a0c9b2d4e8f-app-secret"
VERIFY_TOKEN = "let-me-in-42"
ADA = "6834529012345671"  # PSIDs: Ada and Grace have profiles, Nemo has none
GRACE = "7045118823344552"
NEMO = "5512887766554433"


# A server of our own, per backend, calling the fake Graph API ------------------------------------


@pytest.fixture(scope="module")
def meta() -> Iterator[FakeMeta]:
    with FakeMeta(page_access_token=TOKEN, app_secret=APP_SECRET) as fake:
        yield fake


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def server(
    request: pytest.FixtureRequest, meta: FakeMeta, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Overrides conftest's `server` (so its `db` and `api` fixtures use this one)."""
    data_dir = tmp_path_factory.mktemp(f"messenger-{request.param}")
    pg_url = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'messenger.db'}"
    elif postgres_available():
        url = pg_url = create_pg_database("switchboard_messenger")
    elif REQUIRE_ALL:
        pytest.fail("PostgreSQL is required (SWITCHBOARD_REQUIRE_ALL=1) but does not answer")
    else:
        pytest.skip("postgresql is not available here")
    live = LiveServer(settings_for(url, data_dir, MESSENGER_API_BASE=meta.url), FakeClock())
    live.start()
    yield live
    live.stop()
    if pg_url:
        drop_pg_database(pg_url)


@pytest.fixture(autouse=True)
def graph(meta: FakeMeta) -> FakeMeta:
    meta.reset()
    meta.profiles.update(
        {
            ADA: {"first_name": "Ada", "last_name": "Lovelace"},
            GRACE: {"first_name": "Grace", "last_name": "Hopper"},
        }
    )
    return meta


# Helpers ---------------------------------------------------------------------------------------


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def now_ms(**delta: float) -> int:
    return millis(datetime.now(UTC) + timedelta(**delta))


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def install(team: Team, **config: str) -> dict[str, Any]:
    settings = {
        "page_id": PAGE_ID,
        "page_access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        **config,
    }
    r = team.api.post(
        "/api/v1/integrations",
        team.admin.token,
        json={"provider": "messenger", "name": "Our page", "config": settings},
    )
    assert r.status_code == 201, r.text
    integration: dict[str, Any] = r.json()
    return integration


def message_event(
    psid: str,
    *,
    mid: str | None = None,
    text: str | None = "Hello!",
    timestamp: int | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid or f"m_{uuid.uuid4().hex}"}
    if text is not None:
        message["text"] = text
    if attachments is not None:
        message["attachments"] = attachments
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": timestamp if timestamp is not None else now_ms(),
        "message": message,
    }


def echo_event(psid: str, mid: str, text: str, metadata: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "mid": mid,
        "text": text,
        "is_echo": True,
        "app_id": 1517776481860111,
    }
    if metadata is not None:
        message["metadata"] = metadata
    return {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": psid},
        "timestamp": now_ms(),
        "message": message,
    }


def delivery_event(psid: str, watermark: int, mids: list[str] | None = None) -> dict[str, Any]:
    delivery: dict[str, Any] = {"watermark": watermark}
    if mids is not None:
        delivery["mids"] = mids
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": now_ms(),
        "delivery": delivery,
    }


def read_event(psid: str, watermark: int) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": now_ms(),
        "read": {"watermark": watermark},
    }


def page(*entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Meta's body: one entry per list of messaging events."""
    return {
        "object": "page",
        "entry": [{"id": PAGE_ID, "time": now_ms(), "messaging": events} for events in entries],
    }


def post_webhook(
    api: Api,
    integration_id: int,
    body: dict[str, Any] | bytes,
    *,
    secret: str = APP_SECRET,
    signature: str | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    headers["X-Hub-Signature-256"] = (
        signature if signature is not None else sign_sha256(secret, raw)
    )
    return api.post(f"/webhooks/messenger/{integration_id}", content=raw, headers=headers)


def deliver(api: Api, integration_id: int, *entries: list[dict[str, Any]]) -> None:
    r = post_webhook(api, integration_id, page(*entries))
    assert r.status_code == 200, r.text
    assert r.text == "EVENT_RECEIVED"


def conversations(team: Team) -> dict[str, dict[str, Any]]:
    """The account's conversations by contact handle (PSID)."""
    r = team.api.get("/api/v1/conversations", team.admin.token)
    assert r.status_code == 200, r.text
    return {c["contact"]["handle"]: c for c in r.json()["items"]}


def messages(team: Team, conversation_id: int) -> list[dict[str, Any]]:
    """Oldest first."""
    r = team.api.get(f"/api/v1/conversations/{conversation_id}/messages", team.admin.token)
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))


def message(team: Team, conversation_id: int, message_id: int) -> dict[str, Any]:
    return next(m for m in messages(team, conversation_id) if m["id"] == message_id)


def reply(team: Team, conversation_id: int, text: str = "Thanks, on it!") -> httpx.Response:
    return team.api.post(
        f"/api/v1/conversations/{conversation_id}/messages", team.admin.token, json={"text": text}
    )


def replied(team: Team, conversation_id: int, text: str = "Thanks, on it!") -> dict[str, Any]:
    r = reply(team, conversation_id, text)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def settled(team: Team, conversation_id: int, message_id: int, timeout: float = 10) -> Any:
    """The reply once it left `queued`."""

    def done() -> dict[str, Any] | None:
        found = message(team, conversation_id, message_id)
        return found if found["status"] != "queued" else None

    return wait_for(done, timeout=timeout, interval=0.1)


def started(team: Team, integration: dict[str, Any], psid: str = ADA, **kw: Any) -> int:
    """A conversation begun by the contact's message; returns its id."""
    deliver(team.api, integration["id"], [message_event(psid, **kw)])
    return int(conversations(team)[psid]["id"])


def last_seq(db: Database, team: Team) -> int:
    log = event_log(db, team.account_id)
    return int(log[-1]["seq"]) if log else 0


def updates(db: Database, team: Team, after: int) -> list[tuple[int, str]]:
    """The `message.updated` events after `after`: (message id, status)."""
    return [
        (e["data"]["message"]["id"], e["data"]["message"]["status"])
        for e in event_log(db, team.account_id, after)
        if e["type"] == "message.updated"
    ]


def count_messages(db: Database, integration_id: int) -> int:
    with db.read_engine.connect() as conn:
        value: int = conn.execute(
            text("SELECT COUNT(*) FROM messages WHERE integration_id = :i"), {"i": integration_id}
        ).scalar_one()
    return value


# Installing ------------------------------------------------------------------------------------


def test_install_keeps_the_secrets_write_only(api: Api) -> None:
    team = api.signup()
    integration = install(team)
    assert integration["provider"] == "messenger"
    assert integration["config"] == {"page_id": PAGE_ID}
    assert integration["webhook_url"] == (
        f"http://testserver.local/webhooks/messenger/{integration['id']}"
    )
    r = api.post(
        "/api/v1/integrations",
        team.admin.token,
        json={"provider": "messenger", "name": "x", "config": {"page_id": PAGE_ID}},
    )
    assert r.status_code == 422, r.text
    assert set(r.json()["error"]["fields"]) == {
        "config.page_access_token",
        "config.app_secret",
        "config.verify_token",
    }


# The verification handshake ------------------------------------------------------------------


def test_handshake_echoes_the_challenge_only_for_the_right_token(api: Api) -> None:
    team = api.signup()
    integration_id = install(team)["id"]
    path = f"/webhooks/messenger/{integration_id}"
    good = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }

    r = api.get(path, params=good)
    assert r.status_code == 200, r.text
    assert r.text == "1158201444"
    assert r.headers["content-type"].startswith("text/plain")

    for wrong in (
        {**good, "hub.verify_token": "guess"},
        {**good, "hub.verify_token": ""},
        {k: v for k, v in good.items() if k != "hub.verify_token"},
        {**good, "hub.mode": "unsubscribe"},
        {k: v for k, v in good.items() if k != "hub.mode"},
    ):
        r = api.get(path, params=wrong)
        assert r.status_code == 403, (wrong, r.text)
        assert r.json()["error"]["code"] == "forbidden"
        assert "1158201444" not in r.text

    r = api.get(path, params={k: v for k, v in good.items() if k != "hub.challenge"})
    assert r.status_code == 400, r.text

    assert api.get(f"/webhooks/messenger/{integration_id + 1000}", params=good).status_code == 404
    api_channel = team.install()  # an integration of another provider is unknown here
    assert api.get(f"/webhooks/messenger/{api_channel['id']}", params=good).status_code == 404


# Inbound ---------------------------------------------------------------------------------------


def test_events_of_another_page_are_not_this_integrations(api: Api, graph: FakeMeta) -> None:
    """One Meta app calls one URL for all its pages: entries of other pages are left alone."""
    team = api.signup()
    integration = install(team)
    body = page([message_event(ADA, mid="m_elsewhere", text="For another page")])
    body["entry"][0]["id"] = "another-page"
    r = post_webhook(api, integration["id"], body)
    assert r.status_code == 200, r.text
    assert conversations(team) == {}
    ours = page([message_event(ADA, mid="m_ours", text="For us")])
    assert post_webhook(api, integration["id"], ours).status_code == 200
    assert set(conversations(team)) == {ADA}


def test_a_batched_webhook_stores_every_message_with_names_from_the_profile_api(
    api: Api, graph: FakeMeta
) -> None:
    team = api.signup()
    integration = install(team)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    at = [millis(base + timedelta(seconds=s)) for s in (0, 1, 2, 3)]
    body = page(
        [
            message_event(ADA, mid="m_ada-1", text="Is the blue sofa in stock?", timestamp=at[0]),
            message_event(NEMO, mid="m_nemo-1", text="Hi there", timestamp=at[1]),
        ],
        [
            message_event(ADA, mid="m_ada-2", text="And in green?", timestamp=at[2]),
            message_event(GRACE, mid="m_grace-1", text="Opening hours?", timestamp=at[3]),
        ],
    )
    r = post_webhook(api, integration["id"], body)
    assert r.status_code == 200, r.text
    assert r.text == "EVENT_RECEIVED"
    assert r.headers["content-type"].startswith("text/plain")

    found = conversations(team)
    assert set(found) == {ADA, NEMO, GRACE}
    assert found[ADA]["contact"]["name"] == "Ada Lovelace"
    assert found[GRACE]["contact"]["name"] == "Grace Hopper"
    assert found[NEMO]["contact"]["name"] == NEMO  # the profile API refused: the PSID
    for conv in found.values():
        assert conv["provider"] == "messenger"
        assert conv["integration_id"] == integration["id"]
        assert conv["status"] == "open" and conv["assignee_id"] is None

    ada = messages(team, found[ADA]["id"])
    assert [(m["external_id"], m["text"]) for m in ada] == [
        ("m_ada-1", "Is the blue sofa in stock?"),
        ("m_ada-2", "And in green?"),
    ]
    assert [m["text"] for m in messages(team, found[NEMO]["id"])] == ["Hi there"]
    assert [m["text"] for m in messages(team, found[GRACE]["id"])] == ["Opening hours?"]
    # Meta's `timestamp` is the message time.
    assert [ts(m["created_at"]) for m in ada] == [base, base + timedelta(seconds=2)]
    assert ts(found[GRACE]["last_message_at"]) == base + timedelta(seconds=3)
    for m in ada:
        assert m["direction"] == "inbound" and m["status"] == "received"
        assert m["sender"] == {
            "type": "contact",
            "id": found[ADA]["contact"]["id"],
            "name": "Ada Lovelace",
        }

    # One lookup per new contact, with the page's token, at the pinned Graph API version.
    lookups = graph.profile_lookups
    assert sorted(c.path for c in lookups) == sorted([ADA, NEMO, GRACE])
    for call in lookups:
        assert call.version == GRAPH_VERSION
        assert call.query["access_token"] == TOKEN
        assert call.query["fields"] == "first_name,last_name"


def test_a_contact_keeps_the_psid_as_name_when_the_profile_api_fails(
    api: Api, graph: FakeMeta
) -> None:
    team = api.signup()
    integration = install(team)
    graph.fail_profiles = True
    deliver(api, integration["id"], [message_event(ADA)])
    assert conversations(team)[ADA]["contact"]["name"] == ADA
    # A later message does not ask again, nor rename the contact.
    graph.fail_profiles = False
    deliver(api, integration["id"], [message_event(ADA)])
    assert conversations(team)[ADA]["contact"]["name"] == ADA
    assert len(graph.profile_lookups) == 1


def test_a_future_timestamp_is_clamped_to_now(api: Api) -> None:
    team = api.signup()
    integration = install(team)
    before = datetime.now(UTC)
    deliver(api, integration["id"], [message_event(ADA, timestamp=now_ms(hours=5))])
    (stored,) = messages(team, conversations(team)[ADA]["id"])
    assert before - timedelta(seconds=1) <= ts(stored["created_at"]) <= datetime.now(UTC)


def test_attachments_are_kept_and_media_only_messages_get_a_placeholder(api: Api) -> None:
    team = api.signup()
    integration = install(team)
    photo = "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg"
    manual = "https://cdn.fbsbx.com/v/t59.2708-21/manual.pdf"
    deliver(
        api,
        integration["id"],
        [
            message_event(
                ADA,
                mid="m_photo",
                text=None,
                attachments=[{"type": "image", "payload": {"url": photo}}],
            ),
            message_event(
                ADA,
                mid="m_two",
                text="",
                attachments=[
                    {"type": "image", "payload": {"url": photo}},
                    {"type": "file", "payload": {"url": manual}},
                ],
            ),
            message_event(
                ADA,
                mid="m_caption",
                text="Here is the manual",
                attachments=[{"type": "file", "payload": {"url": manual}}],
            ),
        ],
    )
    by_mid = {m["external_id"]: m for m in messages(team, conversations(team)[ADA]["id"])}
    assert by_mid["m_photo"]["text"] == "[image]"
    assert by_mid["m_photo"]["attachments"] == [{"type": "image", "url": photo}]
    assert by_mid["m_two"]["text"] == "[image] [file]"
    assert by_mid["m_two"]["attachments"] == [
        {"type": "image", "url": photo},
        {"type": "file", "url": manual},
    ]
    assert by_mid["m_caption"]["text"] == "Here is the manual"
    assert by_mid["m_caption"]["attachments"] == [{"type": "file", "url": manual}]


def test_a_bad_or_missing_signature_is_403_and_stores_nothing(api: Api, db: Database) -> None:
    team = api.signup()
    integration = install(team)
    body = orjson.dumps(page([message_event(ADA)]))
    for signature in (
        "",
        "sha256=",
        sign_sha256("not-the-app-secret", body),
        sign_sha256(APP_SECRET, body + b" "),
        sign_sha256(APP_SECRET, body).replace("sha256=", "sha1="),
    ):
        r = post_webhook(api, integration["id"], body, signature=signature)
        assert r.status_code == 403, (signature, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    r = api.post(
        f"/webhooks/messenger/{integration['id']}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 403, r.text
    assert count_messages(db, integration["id"]) == 0
    assert conversations(team) == {}


def test_unknown_integrations_are_404(api: Api) -> None:
    team = api.signup()
    install(team)
    api_channel = team.install()
    body = page([message_event(ADA)])
    assert post_webhook(api, 999_999, body).status_code == 404
    assert post_webhook(api, api_channel["id"], body).status_code == 404


def test_malformed_bodies_are_400_and_store_nothing(api: Api, db: Database) -> None:
    team = api.signup()
    integration = install(team)
    good = message_event(ADA)
    bodies: list[Any] = [
        b"",
        b"not json",
        b"[]",
        {"object": "instagram", "entry": [{"id": PAGE_ID, "messaging": [good]}]},
        {"object": "page"},
        {"object": "page", "entry": {"messaging": [good]}},
        {"object": "page", "entry": [{"messaging": {"sender": {"id": ADA}}}]},
        {"object": "page", "entry": [{"messaging": ["hello"]}]},
        page([{**good, "sender": {}}]),
        page([{**good, "timestamp": "yesterday"}]),
        page([{**good, "message": {"text": "no mid"}}]),
        page([{**good, "message": {"mid": 42, "text": "mid not a string"}}]),
        page([{**good, "message": {"mid": "m_x", "attachments": [{"payload": {}}]}}]),
        page([delivery_event(ADA, watermark=now_ms(), mids=[7])]),
        page([read_event(ADA, watermark=now_ms()) | {"read": {}}]),
        page([good, {**good, "message": {**good["message"], "text": 12}}]),
    ]
    for body in bodies:
        r = post_webhook(api, integration["id"], body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "bad_request"
    assert count_messages(db, integration["id"]) == 0
    # Event types we do not handle are accepted and ignored.
    postback = {
        "sender": {"id": ADA},
        "recipient": {"id": PAGE_ID},
        "timestamp": now_ms(),
        "postback": {"title": "Get Started", "payload": "GET_STARTED"},
    }
    r = post_webhook(api, integration["id"], page([postback], []))
    assert r.status_code == 200, r.text
    assert count_messages(db, integration["id"]) == 0


def test_retried_mids_are_stored_once(api: Api, db: Database) -> None:
    team = api.signup()
    integration = install(team)
    first = message_event(ADA, mid="m_once", text="Only once please")
    body = orjson.dumps(page([first, message_event(GRACE, mid="m_grace")]))
    for _ in range(3):  # Meta retries the whole batch when it got no 200
        assert post_webhook(api, integration["id"], body).status_code == 200
    # The same mid again in a later batch (and twice within one) is still a duplicate.
    deliver(api, integration["id"], [first, first], [first])
    assert count_messages(db, integration["id"]) == 2
    found = conversations(team)
    assert [m["external_id"] for m in messages(team, found[ADA]["id"])] == ["m_once"]


# Outbound --------------------------------------------------------------------------------------


def test_a_reply_goes_through_the_send_api(api: Api, db: Database, graph: FakeMeta) -> None:
    team = api.signup()
    integration = install(team)
    conversation_id = started(team, integration)
    seq = last_seq(db, team)

    sent = replied(team, conversation_id, "Yes, the blue sofa is in stock.")
    assert sent["status"] == "queued"
    final = settled(team, conversation_id, sent["id"])
    assert final["status"] == "sent", final
    assert final["error"] is None

    (call,) = graph.sends
    assert call.version == GRAPH_VERSION
    assert call.query["access_token"] == TOKEN
    assert call.headers["content-type"] == "application/json"
    assert call.json() == {
        "recipient": {"id": ADA},
        "messaging_type": "RESPONSE",
        "message": {
            "text": "Yes, the blue sofa is in stock.",
            "metadata": f"switchboard:{sent['id']}",
        },
    }
    assert call.status == 200
    assert final["external_id"] == "m_sent-1"  # Meta's message_id
    wait_for(lambda: updates(db, team, seq))
    assert updates(db, team, seq) == [(sent["id"], "sent")]


def test_echoes_are_not_stored(api: Api, db: Database, graph: FakeMeta) -> None:
    team = api.signup()
    integration = install(team)
    conversation_id = started(team, integration)
    sent = replied(team, conversation_id, "Our answer")
    final = settled(team, conversation_id, sent["id"])
    seq = last_seq(db, team)

    # Meta echoes our reply back, with our metadata; and one sent from the Page inbox.
    deliver(
        api,
        integration["id"],
        [echo_event(ADA, final["external_id"], "Our answer", f"switchboard:{sent['id']}")],
        [echo_event(ADA, "m_from-page-inbox", "Sent by a colleague on facebook.com")],
    )
    assert [(m["direction"], m["text"]) for m in messages(team, conversation_id)] == [
        ("inbound", "Hello!"),
        ("outbound", "Our answer"),
    ]
    assert event_log(db, team.account_id, seq) == []
    assert len(graph.sends) == 1


def test_delivery_and_read_receipts_move_replies_forward_only(
    api: Api, db: Database, graph: FakeMeta
) -> None:
    team = api.signup()
    integration = install(team)
    conversation_id = started(team, integration)
    first = settled(team, conversation_id, replied(team, conversation_id, "One")["id"])
    second = settled(team, conversation_id, replied(team, conversation_id, "Two")["id"])
    assert (first["status"], second["status"]) == ("sent", "sent")
    seq = last_seq(db, team)

    # Delivered: the first by its mid, with a watermark from before the second was written.
    before_second = millis(ts(first["created_at"])) - 1
    deliver(api, integration["id"], [delivery_event(ADA, before_second, [first["external_id"]])])
    assert message(team, conversation_id, first["id"])["status"] == "delivered"
    assert message(team, conversation_id, second["id"])["status"] == "sent"

    # Read, by watermark: both.
    deliver(api, integration["id"], [read_event(ADA, now_ms())])
    assert message(team, conversation_id, first["id"])["status"] == "read"
    assert message(team, conversation_id, second["id"])["status"] == "read"

    # A late delivery receipt (Meta does not promise order) moves nothing back.
    deliver(
        api,
        integration["id"],
        [delivery_event(ADA, now_ms(), [first["external_id"], second["external_id"]])],
    )
    assert [m["status"] for m in messages(team, conversation_id)] == ["received", "read", "read"]
    assert updates(db, team, seq) == [
        (first["id"], "delivered"),
        (first["id"], "read"),
        (second["id"], "read"),
    ]
    # Receipts of a contact we never heard of change nothing.
    deliver(api, integration["id"], [read_event(GRACE, now_ms())])
    assert len(updates(db, team, seq)) == 3


def test_transient_failures_are_retried_and_the_reply_is_sent_once(
    api: Api, db: Database, graph: FakeMeta
) -> None:
    team = api.signup()
    integration = install(team)
    conversation_id = started(team, integration)
    graph.fail_sends(2)  # 500, 500, then Meta accepts
    seq = last_seq(db, team)
    sent = replied(team, conversation_id, "Retry me")

    # While it waits for its retry, a read receipt must not mark the unsent reply read.
    wait_for(lambda: graph.sends)
    deliver(api, integration["id"], [read_event(ADA, now_ms(seconds=1))])
    assert message(team, conversation_id, sent["id"])["status"] == "queued"

    final = settled(team, conversation_id, sent["id"], timeout=30)
    assert final["status"] == "sent", final
    assert [c.status for c in graph.sends] == [500, 500, 200]
    assert len({c.body for c in graph.sends}) == 1  # the same request each time
    assert final["external_id"] == "m_sent-1"
    outbound = [m for m in messages(team, conversation_id) if m["direction"] == "outbound"]
    assert [m["id"] for m in outbound] == [sent["id"]]
    assert updates(db, team, seq) == [(sent["id"], "sent")]  # retries emit nothing


def test_a_permanent_error_fails_the_reply_with_metas_message(
    api: Api, db: Database, graph: FakeMeta
) -> None:
    team = api.signup()
    integration = install(team)
    conversation_id = started(team, integration)
    graph.reject_sends("(#100) No matching user found", code=100, subcode=2018001)
    sent = replied(team, conversation_id)
    final = settled(team, conversation_id, sent["id"])
    assert final["status"] == "failed", final
    assert "No matching user found" in final["error"]
    assert "100" in final["error"] and "2018001" in final["error"]
    assert len(graph.sends) == 1  # not retried


def test_a_wrong_page_token_fails_sends_and_profile_lookups(api: Api, graph: FakeMeta) -> None:
    team = api.signup()
    integration = install(team, page_access_token="EAAG-revoked")
    conversation_id = started(team, integration)
    assert conversations(team)[ADA]["contact"]["name"] == ADA
    final = settled(team, conversation_id, replied(team, conversation_id)["id"])
    assert final["status"] == "failed", final
    assert "Invalid OAuth access token" in final["error"] and "190" in final["error"]
    assert [c.status for c in graph.calls] == [400, 400]


# The 24-hour window ----------------------------------------------------------------------------


def test_replies_are_refused_24_hours_after_the_contacts_last_message(
    api: Api, server: LiveServer, graph: FakeMeta
) -> None:
    team = api.signup()
    integration = install(team)
    conversation_id = started(team, integration, ADA)

    server.clock.advance(hours=23)
    inside = replied(team, conversation_id)
    server.clock.advance(hours=2)  # 25 h after the contact wrote
    r = reply(team, conversation_id)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "reply_window_closed"

    # A new message from the contact opens the window again (its time: Meta's timestamp).
    deliver(api, integration["id"], [message_event(ADA, timestamp=now_ms(hours=25))])
    again = replied(team, conversation_id)
    for sent in (inside, again):
        assert settled(team, conversation_id, sent["id"])["status"] == "sent"
    assert len(graph.sends) == 2  # the refused reply was never sent


def test_the_window_is_measured_from_metas_timestamp(api: Api) -> None:
    team = api.signup()
    integration = install(team)
    # Delivered now, but written 25 hours ago (Meta retried for a day).
    late = started(team, integration, ADA, timestamp=now_ms(hours=-25))
    r = reply(team, late)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "reply_window_closed"
    recent = started(team, integration, GRACE, timestamp=now_ms(hours=-23))
    inside = replied(team, recent)
    assert settled(team, recent, inside["id"])["status"] == "sent"


# The provider against the fake directly: which Graph API errors are worth a retry -------------


def outbound(message_id: int = 1) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        conversation_id=1,
        integration_id=1,
        contact_id=1,
        contact_handle=ADA,
        text="Hello",
        created_at=datetime.now(UTC),
    )


@pytest.fixture(scope="module")
def lone_graph() -> Iterator[FakeMeta]:
    with FakeMeta(page_access_token=TOKEN, app_secret=APP_SECRET) as fake:
        yield fake


@pytest.fixture
def lone_meta(lone_graph: FakeMeta) -> FakeMeta:
    """A Graph API of its own, that no server's outbound worker calls."""
    lone_graph.reset()
    return lone_graph


SECRETS = {"page_access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}


def send_error(provider: MessengerProvider) -> SendError:
    with pytest.raises(SendError) as caught:
        asyncio.run(provider.send(outbound(), public={"page_id": PAGE_ID}, secrets=SECRETS))
    return caught.value


def _provider(api_base: str) -> MessengerProvider:
    """The provider as a server whose MESSENGER_API_BASE is `api_base` builds it."""
    return MessengerProvider(
        replace(Settings.from_env({"SECRET_KEY": "k"}), messenger_api_base=api_base)
    )


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (500, 2, True),  # service error
        (503, 1, True),  # unknown error
        (400, 4, True),  # application request limit
        (400, 17, True),  # user request limit
        (400, 32, True),  # page request limit
        (400, 613, True),  # calls exceed the rate limit
        (400, 1200, True),  # temporary send message failure
        (429, 100, True),
        (400, 100, False),  # invalid parameter
        (400, 10, False),  # permission denied (e.g. outside the window)
        (403, 200, False),
    ],
)
def test_graph_api_errors_are_transient_or_final(
    lone_meta: FakeMeta, status: int, code: int, transient: bool
) -> None:
    lone_meta.script_send(status, graph_error(f"(#{code}) something", code=code))
    error = send_error(_provider(lone_meta.url))
    assert error.transient is transient
    assert f"Graph API error {code}" in str(error)


def test_unreachable_or_unreadable_graph_api(lone_meta: FakeMeta) -> None:
    graph = lone_meta
    assert send_error(_provider(f"http://127.0.0.1:{free_port()}")).transient
    graph.script_send(502, {})
    assert send_error(_provider(graph.url)).transient
    flagged = graph_error("Temporary", code=100)
    flagged["error"]["is_transient"] = True
    graph.script_send(400, flagged)
    assert send_error(_provider(graph.url)).transient
