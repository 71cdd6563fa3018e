"""Inbound webhooks of the generic `api` channel: signatures, idempotency, limits, validation."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import delete, text
from sqlmodel import Session, col

from server.domain.ingest import Ingested, ingest_inbound_message
from server.providers.base import InboundMessage
from server.security.signatures import sign_sha256
from server.state import conversation_queries
from server.state.db import Database
from server.state.models import Conversation, Integration, Message
from tests.support import Api, LiveServer, Team, event_log

MIB = 1024 * 1024


# Helpers ---------------------------------------------------------------------------------------


def payload(
    *,
    message_id: str | None = None,
    contact: str = "cust-1",
    name: str | None = "Carla Customer",
    text: str = "Hello!",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message_id or uuid.uuid4().hex,
        "contact": {"id": contact},
        "text": text,
    }
    if name is not None:
        body["contact"]["name"] = name
    body.update(extra)
    return body


def post_raw(
    api: Api,
    integration_id: int,
    body: bytes,
    *,
    secret: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST `body` as is; signed with `secret` unless an explicit `signature` is given."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature-256"] = signature
    elif secret is not None:
        headers["X-Signature-256"] = sign_sha256(secret, body)
    return api.post(f"/webhooks/api/{integration_id}", content=body, headers=headers)


def post_signed(api: Api, integration: dict[str, Any], body: bytes) -> httpx.Response:
    return post_raw(api, integration["id"], body, secret=integration["secret"])


def count(db: Database, table: str, integration_id: int) -> int:
    with db.read_engine.connect() as conn:
        value: int = conn.execute(
            text(f"SELECT COUNT(*) FROM {table} WHERE integration_id = :i"), {"i": integration_id}
        ).scalar_one()
    return value


def stored(db: Database, integration_id: int) -> dict[str, int]:
    return {t: count(db, t, integration_id) for t in ("contacts", "conversations", "messages")}


NOTHING = {"contacts": 0, "conversations": 0, "messages": 0}


def latest_seq(db: Database, account_id: int) -> int:
    """The account's latest event seq: events of the set-up (e.g. installing) come before it."""
    events = event_log(db, account_id)
    return int(events[-1]["seq"]) if events else 0


def new_event_types(db: Database, account_id: int, after: int) -> list[str]:
    return [e["type"] for e in event_log(db, account_id, after=after)]


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, r.text
    assert isinstance(error["message"], str) and error["message"]
    return error


def messages_of(api: Api, team: Team, conversation_id: int) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/conversations/{conversation_id}/messages", team.admin.token)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def conversation(api: Api, team: Team, conversation_id: int) -> dict[str, Any]:
    r = api.get(f"/api/v1/conversations/{conversation_id}", team.admin.token)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# Accepted messages -----------------------------------------------------------------------------


def test_signed_message_is_stored_in_a_new_unassigned_conversation(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    mark = latest_seq(db, team.account_id)
    r = team.inbound(integration, text="Hi there", contact="cust-42", message_id="m-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duplicate"] is False
    assert isinstance(body["message_id"], int) and isinstance(body["conversation_id"], int)

    conv = conversation(api, team, body["conversation_id"])
    assert conv["integration_id"] == integration["id"]
    assert conv["provider"] == "api"
    assert conv["status"] == "open"
    assert conv["assignee_id"] is None
    assert conv["section"] == "unassigned"
    assert conv["contact"]["handle"] == "cust-42"
    assert conv["contact"]["name"] == "Carla Customer"
    assert conv["last_message"]["text"] == "Hi there"
    assert conv["unread_count"] == 1

    unassigned = api.get("/api/v1/conversations?section=unassigned", team.admin.token).json()
    assert [c["id"] for c in unassigned["items"]] == [body["conversation_id"]]

    (message,) = messages_of(api, team, body["conversation_id"])
    assert message["id"] == body["message_id"]
    assert message["direction"] == "inbound"
    assert message["text"] == "Hi there"
    assert message["status"] == "received"
    assert message["external_id"] == "m-1"
    assert message["sender"]["type"] == "contact"
    assert message["sender"]["name"] == "Carla Customer"

    assert stored(db, integration["id"]) == {"contacts": 1, "conversations": 1, "messages": 1}
    types = new_event_types(db, team.account_id, mark)
    assert types == ["conversation.created", "message.created"]


def test_a_message_of_exactly_4096_characters_is_accepted(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    r = team.inbound(integration, text="x" * 4096)
    assert r.status_code == 200, r.text
    (message,) = messages_of(api, team, r.json()["conversation_id"])
    assert message["text"] == "x" * 4096


def test_sent_at_becomes_the_message_time_and_a_future_one_is_clamped(
    api: Api, db: Database
) -> None:
    team = api.signup()
    integration = team.install()
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    r = team.inbound(integration, sent_at=past.isoformat().replace("+00:00", "Z"))
    assert r.status_code == 200, r.text
    (message,) = messages_of(api, team, r.json()["conversation_id"])
    assert parse_time(message["created_at"]) == past

    before = datetime.now(UTC)
    future = before + timedelta(days=2)
    r = team.inbound(integration, contact="cust-2", sent_at=future.isoformat())
    assert r.status_code == 200, r.text
    after = datetime.now(UTC)
    (message,) = messages_of(api, team, r.json()["conversation_id"])
    at = parse_time(message["created_at"])
    assert before - timedelta(seconds=1) <= at <= after + timedelta(seconds=1)


def test_a_later_message_updates_the_contact_name(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    first = team.inbound(integration, contact="c-1", name="Carla")
    assert first.status_code == 200, first.text
    second = team.inbound(integration, contact="c-1", name="Carla Gómez", text="again")
    assert second.status_code == 200, second.text
    conversation_id = first.json()["conversation_id"]
    assert second.json()["conversation_id"] == conversation_id

    conv = conversation(api, team, conversation_id)
    assert conv["contact"]["name"] == "Carla Gómez"
    assert conv["last_message"]["text"] == "again"
    # A message without a name keeps the last known one.
    third = team.inbound(integration, contact="c-1", name=None, text="third")
    assert third.status_code == 200, third.text
    assert conversation(api, team, conversation_id)["contact"]["name"] == "Carla Gómez"
    assert len(messages_of(api, team, conversation_id)) == 3
    assert stored(db, integration["id"]) == {"contacts": 1, "conversations": 1, "messages": 3}


def test_different_contacts_get_different_conversations(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    a = team.inbound(integration, contact="alice", name="Alice")
    b = team.inbound(integration, contact="bob", name="Bob")
    assert a.status_code == b.status_code == 200
    assert a.json()["conversation_id"] != b.json()["conversation_id"]
    assert conversation(api, team, a.json()["conversation_id"])["contact"]["handle"] == "alice"
    assert conversation(api, team, b.json()["conversation_id"])["contact"]["handle"] == "bob"
    items = api.get("/api/v1/conversations?section=unassigned", team.admin.token).json()["items"]
    assert len(items) == 2
    assert stored(db, integration["id"]) == {"contacts": 2, "conversations": 2, "messages": 2}


# Signatures ------------------------------------------------------------------------------------


def test_a_bad_signature_is_refused_and_nothing_is_stored(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install(secret="right-secret")
    mark = latest_seq(db, team.account_id)
    r = api.inbound(integration["id"], "wrong-secret")
    assert_error(r, 403, "forbidden")
    r = team.inbound(integration, signature="sha256=" + "0" * 64)
    assert_error(r, 403, "forbidden")
    r = team.inbound(integration, signature="not even a signature")
    assert_error(r, 403, "forbidden")

    assert stored(db, integration["id"]) == NOTHING
    assert new_event_types(db, team.account_id, mark) == []
    items = api.get("/api/v1/conversations", team.admin.token).json()["items"]
    assert items == []


def test_a_missing_signature_is_refused(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    mark = latest_seq(db, team.account_id)
    body = orjson.dumps(payload())
    assert_error(post_raw(api, integration["id"], body), 403, "forbidden")
    assert_error(post_raw(api, integration["id"], body, signature=""), 403, "forbidden")
    assert stored(db, integration["id"]) == NOTHING
    assert new_event_types(db, team.account_id, mark) == []


def test_a_signature_for_another_body_is_refused(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    mark = latest_seq(db, team.account_id)
    signed = orjson.dumps(payload(text="the signed text"))
    sent = orjson.dumps(payload(text="a tampered text"))
    r = post_raw(api, integration["id"], sent, signature=sign_sha256(integration["secret"], signed))
    assert_error(r, 403, "forbidden")
    # Re-serialising the same document differently changes the bytes, and so the signature.
    document = payload()
    compact = orjson.dumps(document)
    pretty = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    r = post_raw(
        api, integration["id"], pretty, signature=sign_sha256(integration["secret"], compact)
    )
    assert_error(r, 403, "forbidden")
    assert stored(db, integration["id"]) == NOTHING
    assert new_event_types(db, team.account_id, mark) == []


def test_a_signature_of_another_integration_is_refused(api: Api, db: Database) -> None:
    team = api.signup()
    mine = team.install(secret="secret-of-mine")
    other = team.install(secret="secret-of-other", name="Other")
    r = api.inbound(mine["id"], other["secret"])
    assert_error(r, 403, "forbidden")
    assert stored(db, mine["id"]) == NOTHING
    assert stored(db, other["id"]) == NOTHING


def test_an_unknown_integration_is_404(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    mark = latest_seq(db, team.account_id)
    r = api.inbound(integration["id"] + 1000, integration["secret"])
    assert_error(r, 404, "not_found")
    assert new_event_types(db, team.account_id, mark) == []


# Changes made by another node ------------------------------------------------------------------
# A node keeps each integration's settings for a couple of seconds (Runtime.integration_secrets).
# Changes written straight to the database play the part of another node's, which this node's
# copy does not hear of.


def test_a_secret_changed_by_another_node_is_accepted_at_once(
    api: Api, db: Database, server: LiveServer
) -> None:
    team = api.signup()
    integration = team.install(secret="before")
    assert api.inbound(integration["id"], "before").status_code == 200  # now cached here
    sealed = server.runtime.services.box.seal({"webhook_secret": "after"})
    with db.write_engine.begin() as conn:
        conn.execute(
            text("UPDATE integrations SET config_secret = :s WHERE id = :i"),
            {"s": sealed, "i": integration["id"]},
        )
    # The cached secret refuses it, so the node reads the integration again before deciding.
    accepted = api.inbound(integration["id"], "after", text="signed with the new secret")
    assert accepted.status_code == 200, accepted.text
    assert_error(api.inbound(integration["id"], "before"), 403, "forbidden")
    assert stored(db, integration["id"])["messages"] == 2


def test_an_integration_deleted_by_another_node_is_404_and_stores_nothing(
    api: Api, db: Database
) -> None:
    team = api.signup()
    integration = team.install()
    assert team.inbound(integration).status_code == 200  # now cached here
    with db.write_engine.begin() as conn:
        conn.execute(text("DELETE FROM integrations WHERE id = :i"), {"i": integration["id"]})
    mark = latest_seq(db, team.account_id)
    r = team.inbound(integration, contact="cust-new", text="too late")
    assert_error(r, 404, "not_found")
    assert stored(db, integration["id"]) == NOTHING
    assert new_event_types(db, team.account_id, mark) == []


# Provider retries ------------------------------------------------------------------------------


def test_a_retried_message_is_acknowledged_but_not_duplicated(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    first = team.inbound(integration, message_id="retry-me", text="once")
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    mark = latest_seq(db, team.account_id)

    for _ in range(2):
        again = team.inbound(integration, message_id="retry-me", text="once")
        assert again.status_code == 200, again.text
        assert again.json() == {**first.json(), "duplicate": True}

    assert stored(db, integration["id"]) == {"contacts": 1, "conversations": 1, "messages": 1}
    assert len(messages_of(api, team, first.json()["conversation_id"])) == 1
    assert new_event_types(db, team.account_id, mark) == []
    conv = conversation(api, team, first.json()["conversation_id"])
    assert conv["unread_count"] == 1


def test_the_same_message_id_on_two_integrations_is_two_messages(api: Api, db: Database) -> None:
    team = api.signup()
    one = team.install(name="One")
    two = team.install(name="Two")
    a = team.inbound(one, message_id="shared-id")
    b = team.inbound(two, message_id="shared-id")
    assert a.status_code == b.status_code == 200
    assert a.json()["duplicate"] is False and b.json()["duplicate"] is False
    assert a.json()["message_id"] != b.json()["message_id"]


@pytest.mark.parametrize("contact", ["new", "known"])
def test_a_message_fired_concurrently_is_stored_once(api: Api, db: Database, contact: str) -> None:
    """A new contact's first message races on the contact's and conversation's constraints; a
    known contact's retries queue on its conversation's lock and the message's unique key."""
    team = api.signup()
    integration = team.install()
    if contact == "known":
        earlier = team.inbound(integration, message_id="earlier", contact="burst-contact")
        assert earlier.status_code == 200, earlier.text
    mark = latest_seq(db, team.account_id)
    body = orjson.dumps(payload(message_id="burst", contact="burst-contact"))
    headers = {
        "Content-Type": "application/json",
        "X-Signature-256": sign_sha256(integration["secret"], body),
    }
    url = f"{api.server.url}/webhooks/api/{integration['id']}"
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[httpx.Response | BaseException | None] = [None] * threads

    def fire(i: int) -> None:
        try:
            with httpx.Client(timeout=30) as client:
                barrier.wait(timeout=10)
                results[i] = client.post(url, content=body, headers=headers)
        except BaseException as exc:  # reported below, in the test's thread
            results[i] = exc

    workers = [threading.Thread(target=fire, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not any(w.is_alive() for w in workers)

    responses = [r for r in results if isinstance(r, httpx.Response)]
    assert len(responses) == threads, results
    assert [r.status_code for r in responses] == [200] * threads, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert sum(1 for b in bodies if not b["duplicate"]) == 1, bodies
    assert len({b["message_id"] for b in bodies}) == 1
    assert len({b["conversation_id"] for b in bodies}) == 1

    messages = 1 if contact == "new" else 2
    assert stored(db, integration["id"]) == {
        "contacts": 1,
        "conversations": 1,
        "messages": messages,
    }
    types = new_event_types(db, team.account_id, mark)
    created = ["conversation.created"] if contact == "new" else []
    assert types == [*created, "message.created"]


def test_a_message_whose_id_clashed_with_one_deleted_meanwhile_is_stored(
    api: Api, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest inserts first and looks for the clashing message after: if that one went in the
    meantime (deleted with its conversation), the insert is tried again, not given up."""
    team = api.signup()
    integration = team.install()
    first = team.inbound(integration, message_id="reused-id", contact="first-contact")
    assert first.status_code == 200, first.text
    gone = first.json()["conversation_id"]
    look_up = conversation_queries.message_by_external_id

    def deleted_meanwhile(session: Session, **kwargs: Any) -> Message | None:
        session.execute(delete(Conversation).where(col(Conversation.id) == gone))
        return look_up(session, **kwargs)

    monkeypatch.setattr(conversation_queries, "message_by_external_id", deleted_meanwhile)
    inbound = InboundMessage(
        external_id="reused-id", contact_handle="second-contact", contact_name=None, text="Mine now"
    )

    def work(session: Session) -> Ingested:
        found = session.get(Integration, integration["id"])
        assert found is not None
        services = api.server.runtime.services
        return ingest_inbound_message(session, services, integration=found, inbound=inbound)

    stored = db.write(work)
    assert not stored.duplicate and stored.conversation_id != gone
    with db.read_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT conversation_id, text FROM messages WHERE external_id = 'reused-id'")
        ).all()
    assert [tuple(row) for row in rows] == [(stored.conversation_id, "Mine now")]


# Malformed and invalid bodies ------------------------------------------------------------------


def test_malformed_json_is_400(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    for raw in (b'{"message_id": "x", "contact": {"id": "c"}, "text": ', b"not json", b"\xff\xfe"):
        assert_error(post_signed(api, integration, raw), 400, "bad_request")
    assert stored(db, integration["id"]) == NOTHING


def test_an_empty_body_is_400(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    assert_error(post_signed(api, integration, b""), 400, "bad_request")
    assert stored(db, integration["id"]) == NOTHING


# The contract: a malformed webhook body is a 400 (with `fields` saying what is wrong).


def test_json_that_is_not_an_object_is_400(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    for document in ([payload()], "text", 5, None):
        error = assert_error(
            post_signed(api, integration, orjson.dumps(document)), 400, "bad_request"
        )
        assert isinstance(error["fields"], dict) and error["fields"], error
    assert stored(db, integration["id"]) == NOTHING


def test_missing_and_mistyped_fields_are_400_with_fields(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    mark = latest_seq(db, team.account_id)
    base = payload()
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in base.items() if k != "text"}, "text"),
        ({k: v for k, v in base.items() if k != "message_id"}, "message_id"),
        ({k: v for k, v in base.items() if k != "contact"}, "contact"),
        ({**base, "contact": {"name": "No Id"}}, "contact.id"),
        ({**base, "contact": {"id": 7}}, "contact.id"),
        ({**base, "contact": "cust-1"}, "contact"),
        ({**base, "text": 5}, "text"),
        ({**base, "text": ""}, "text"),
        ({**base, "text": None}, "text"),
        ({**base, "message_id": 12345}, "message_id"),
        ({**base, "sent_at": 1700000000}, "sent_at"),
    ]
    for document, field in cases:
        r = post_signed(api, integration, orjson.dumps(document))
        error = assert_error(r, 400, "bad_request")
        assert field in error["fields"], (document, error)
    assert stored(db, integration["id"]) == NOTHING
    assert new_event_types(db, team.account_id, mark) == []


def test_text_over_4096_characters_is_422(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    r = team.inbound(integration, text="x" * 4097)
    error = assert_error(r, 422, "validation_error")
    assert "text" in error["fields"]
    # Characters, not bytes: 4,096 three-byte characters are fine, one more is not.
    ok = team.inbound(integration, text="€" * 4096)
    assert ok.status_code == 200, ok.text
    error = assert_error(team.inbound(integration, text="€" * 4097), 422, "validation_error")
    assert "text" in error["fields"]
    assert stored(db, integration["id"])["messages"] == 1


def test_sent_at_that_is_not_iso_8601_is_400(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    for value in ("yesterday", "2026-13-45T99:00:00Z", "", "26/11/2026 09:00"):
        r = team.inbound(integration, sent_at=value)
        error = assert_error(r, 400, "bad_request")
        assert "sent_at" in error["fields"], (value, error)
    assert stored(db, integration["id"]) == NOTHING


def test_deeply_nested_json_is_400(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    deep: Any = "bottom"
    for _ in range(100):
        deep = {"x": deep}
    assert_error(post_signed(api, integration, orjson.dumps(deep)), 400, "bad_request")
    nested_list = b"[" * 100 + b"]" * 100
    assert_error(post_signed(api, integration, nested_list), 400, "bad_request")
    # Hidden in an extra field of an otherwise valid message.
    document = payload(extra=deep)
    assert_error(post_signed(api, integration, orjson.dumps(document)), 400, "bad_request")
    assert stored(db, integration["id"]) == NOTHING
    assert api.get("/healthz").status_code == 200


# Size limit ------------------------------------------------------------------------------------


def oversized_body() -> bytes:
    """A well-formed, signed-able message just over 1 MiB."""
    document = payload(text="short", padding="p" * (MIB + 10))
    body = orjson.dumps(document)
    assert len(body) > MIB
    return body


def test_a_body_over_1_mib_with_content_length_is_413(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    body = oversized_body()
    r = post_signed(api, integration, body)
    assert_error(r, 413, "payload_too_large")
    assert stored(db, integration["id"]) == NOTHING


def test_a_chunked_body_over_1_mib_is_413(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    body = oversized_body()

    def chunks() -> Iterator[bytes]:
        step = 64 * 1024
        for start in range(0, len(body), step):
            yield body[start : start + step]

    r = api.post(
        f"/webhooks/api/{integration['id']}",
        content=chunks(),
        headers={
            "Content-Type": "application/json",
            "X-Signature-256": sign_sha256(integration["secret"], body),
        },
    )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_error(r, 413, "payload_too_large")
    assert stored(db, integration["id"]) == NOTHING


def test_a_chunked_body_under_the_limit_is_accepted(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    body = orjson.dumps(payload(text="chunked hello", padding="p" * 200_000))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 50_000):
            yield body[start : start + 50_000]

    r = api.post(
        f"/webhooks/api/{integration['id']}",
        content=chunks(),
        headers={
            "Content-Type": "application/json",
            "X-Signature-256": sign_sha256(integration["secret"], body),
        },
    )
    assert r.status_code == 200, r.text
    (message,) = messages_of(api, team, r.json()["conversation_id"])
    assert message["text"] == "chunked hello"


# Resilience ------------------------------------------------------------------------------------


def test_the_server_keeps_serving_after_abuse(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    abuse = [
        post_signed(api, integration, b"{{{{"),
        post_signed(api, integration, orjson.dumps([1, 2, 3])),
        post_signed(api, integration, b"[" * 5000 + b"]" * 5000),
        post_signed(api, integration, oversized_body()),
        post_raw(api, integration["id"], orjson.dumps(payload()), signature="sha256=nope"),
        post_raw(api, integration["id"] + 999, orjson.dumps(payload()), secret="x"),
    ]
    assert [r.status_code for r in abuse] == [400, 400, 400, 413, 403, 404]
    for r in abuse:
        assert "error" in r.json()
    assert api.get("/healthz").status_code == 200
    ok = team.inbound(integration, text="still here")
    assert ok.status_code == 200, ok.text
    assert stored(db, integration["id"]) == {"contacts": 1, "conversations": 1, "messages": 1}
