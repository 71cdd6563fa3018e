"""Conversations over real HTTP: sections, unread counts, messages, assignment, status, delete,
replies through the `api` provider's callback, and the events each change records."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from server.state.db import Database
from tests.fakes import FakeCallback
from tests.support import Api, Member, Team, event_log, wait_for

CONVERSATION_KEYS = {
    "id",
    "integration_id",
    "provider",
    "contact",
    "status",
    "assignee_id",
    "section",
    "last_message",
    "last_message_at",
    "unread_count",
    "links",
    "version",
    "created_at",
    "updated_at",
}
VIEWER_KEYS = {"section", "unread_count"}
MESSAGE_KEYS = {
    "id",
    "conversation_id",
    "direction",
    "text",
    "sender",
    "status",
    "error",
    "external_id",
    "created_at",
}
EVENT_DATA_KEYS = {
    "conversation.created": {"conversation"},
    "conversation.updated": {"conversation", "changes"},
    "conversation.deleted": {"conversation_id"},
    "message.created": {"message", "conversation"},
    "message.updated": {"message"},
}
SECTIONS = ("unassigned", "mine", "others", "closed")
DELIVERED = {"sent", "delivered", "read"}


# Helpers -------------------------------------------------------------------------------------


def body_of(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def ts(value: str) -> datetime:
    """An ISO-8601 UTC timestamp as the contract writes them (`...Z`)."""
    assert isinstance(value, str) and value.endswith("Z"), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def listing(api: Api, who: Member, section: str | None = None, **params: Any) -> dict[str, Any]:
    if section is not None:
        params["section"] = section
    page: dict[str, Any] = body_of(api.get("/api/v1/conversations", who.token, params=params))
    assert set(page) >= {"items", "next_cursor"}
    for item in page["items"]:
        assert_rest_conversation(item)
        if section is not None:
            assert item["section"] == section
    return page


def ids_in(api: Api, who: Member, section: str | None = None) -> list[int]:
    return [c["id"] for c in listing(api, who, section)["items"]]


def where(api: Api, who: Member, conversation_id: int) -> list[str]:
    """The sections whose listing holds the conversation, for this viewer."""
    return [s for s in SECTIONS if conversation_id in ids_in(api, who, s)]


def conversation(api: Api, who: Member, conversation_id: int) -> dict[str, Any]:
    conv: dict[str, Any] = body_of(api.get(f"/api/v1/conversations/{conversation_id}", who.token))
    assert_rest_conversation(conv)
    return conv


def summary(api: Api, who: Member) -> dict[str, dict[str, int]]:
    sections: dict[str, dict[str, int]] = body_of(api.get("/api/v1/inbox/summary", who.token))[
        "sections"
    ]
    assert set(sections) == set(SECTIONS)
    return sections


def messages(api: Api, who: Member, conversation_id: int, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = body_of(
        api.get(f"/api/v1/conversations/{conversation_id}/messages", who.token, params=params)
    )
    for message in page["items"]:
        assert_message(message)
    return page


def all_messages(api: Api, who: Member, conversation_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = messages(api, who, conversation_id, limit=100)["items"]
    return items


def message_by_id(api: Api, who: Member, conversation_id: int, message_id: int) -> dict[str, Any]:
    found = [m for m in all_messages(api, who, conversation_id) if m["id"] == message_id]
    assert len(found) == 1, found
    return found[0]


def assert_rest_conversation(conv: dict[str, Any]) -> None:
    assert set(conv) >= CONVERSATION_KEYS, set(conv) ^ CONVERSATION_KEYS
    assert conv["section"] in SECTIONS
    assert isinstance(conv["unread_count"], int) and conv["unread_count"] >= 0
    _assert_conversation_common(conv)


def assert_event_conversation(conv: dict[str, Any]) -> None:
    """In events the conversation carries no viewer-dependent fields."""
    assert "section" not in conv, conv
    assert "unread_count" not in conv, conv
    assert set(conv) >= CONVERSATION_KEYS - VIEWER_KEYS, set(conv)
    _assert_conversation_common(conv)


def _assert_conversation_common(conv: dict[str, Any]) -> None:
    assert isinstance(conv["id"], int)
    assert conv["provider"] == "api"
    assert set(conv["contact"]) >= {"id", "name", "handle"}
    assert conv["status"] in ("open", "closed")
    assert isinstance(conv["version"], int)
    assert isinstance(conv["links"], list)
    ts(conv["created_at"]), ts(conv["updated_at"]), ts(conv["last_message_at"])
    if conv["last_message"] is not None:
        assert_message(conv["last_message"])


def assert_message(message: dict[str, Any]) -> None:
    assert set(message) >= MESSAGE_KEYS, set(message)
    assert message["direction"] in ("inbound", "outbound")
    assert message["status"] in ("received", "queued", "sent", "delivered", "read", "failed")
    assert set(message["sender"]) >= {"type", "id", "name"}
    assert message["sender"]["type"] == ("contact" if message["direction"] == "inbound" else "user")
    ts(message["created_at"])


def events(
    db: Database, team: Team, after: int = 0, *, contiguous: bool = True
) -> list[dict[str, Any]]:
    """The account's durable events after `after`, each checked against the contract's shapes;
    with `contiguous`, their seqs must run after+1, after+2, ... with no gap."""
    log = event_log(db, team.account_id, after)
    seqs = [e["seq"] for e in log]
    if contiguous:
        assert seqs == list(range(after + 1, after + 1 + len(log))), seqs
    else:
        assert seqs == sorted(set(seqs)), seqs
    for event in log:
        assert set(event) == {"type", "seq", "data"}, event
        data = event["data"]
        required = EVENT_DATA_KEYS.get(event["type"])
        if required is not None:
            assert set(data) >= required, event
        if "conversation" in data:
            assert_event_conversation(data["conversation"])
        if "message" in data:
            assert_message(data["message"])
        if event["type"] == "message.created":
            assert data["conversation"]["id"] == data["message"]["conversation_id"]
    return log


def last_seq(db: Database, team: Team) -> int:
    log = event_log(db, team.account_id)
    return int(log[-1]["seq"]) if log else 0


def types(log: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in log]


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def post(api: Api, who: Member, path: str, json: Any = None, **kw: Any) -> httpx.Response:
    return api.post(f"/api/v1/conversations/{path}", who.token, json=json, **kw)


def wait_for_final(
    api: Api, who: Member, conversation_id: int, message_id: int, timeout: float = 10.0
) -> dict[str, Any]:
    """Poll the messages until the reply leaves `queued` (sent, delivered, read or failed)."""

    def settled() -> dict[str, Any] | None:
        message = message_by_id(api, who, conversation_id, message_id)
        return message if message["status"] != "queued" else None

    result: dict[str, Any] = wait_for(settled, timeout=timeout, interval=0.1)
    return result


@pytest.fixture
def callback() -> Iterator[FakeCallback]:
    with FakeCallback() as fake:
        yield fake


# Sections and listings -----------------------------------------------------------------------


def test_new_conversation_is_unassigned_for_everyone_with_shared_access(
    api: Api, db: Database
) -> None:
    team = api.signup()
    bob, carol = team.add("bob"), team.add("carol")
    integration = team.install(shared_with=["bob"])
    seq = last_seq(db, team)

    r = team.inbound(integration, text="Hi there", contact="cust-1", name="Carla Customer")
    assert r.status_code == 200, r.text
    conversation_id = r.json()["conversation_id"]

    for viewer in (team.admin, bob):
        conv = conversation(api, viewer, conversation_id)
        assert conv["section"] == "unassigned"
        assert conv["status"] == "open"
        assert conv["assignee_id"] is None
        assert conv["integration_id"] == integration["id"]
        assert conv["contact"]["name"] == "Carla Customer"
        assert conv["contact"]["handle"] == "cust-1"
        assert conv["last_message"]["text"] == "Hi there"
        assert conv["unread_count"] == 1
        assert ids_in(api, viewer, "unassigned") == [conversation_id]
        assert where(api, viewer, conversation_id) == ["unassigned"]
        assert ids_in(api, viewer) == [conversation_id]

    # Carol has no shared access: she neither sees it nor learns that it exists.
    assert ids_in(api, carol) == []
    assert_error(api.get(f"/api/v1/conversations/{conversation_id}", carol.token), 404, "not_found")
    # Nor does another account.
    other = api.signup(company="Other")
    assert ids_in(api, other.admin) == []
    assert_error(
        api.get(f"/api/v1/conversations/{conversation_id}", other.admin.token), 404, "not_found"
    )

    events(db, team)  # the whole log: seqs from 1 without gaps
    log = events(db, team, seq)
    assert types(log) == ["conversation.created", "message.created"]
    created, message_created = log
    assert created["data"]["conversation"]["id"] == conversation_id
    assert created["data"]["conversation"]["status"] == "open"
    assert created["data"]["conversation"]["assignee_id"] is None
    message = message_created["data"]["message"]
    assert message["text"] == "Hi there"
    assert message["direction"] == "inbound"
    assert message["sender"]["type"] == "contact"
    assert message_created["data"]["conversation"]["last_message"]["id"] == message["id"]


def test_sections_are_seen_from_each_viewers_perspective(api: Api) -> None:
    team = api.signup()
    bob, carol = team.add("bob"), team.add("carol")
    integration = team.install(shared_with=["bob", "carol"])
    to_bob = team.conversation_from(integration, contact="a")["id"]
    nobody = team.conversation_from(integration, contact="b")["id"]
    closed = team.conversation_from(integration, contact="c")["id"]
    body_of(post(api, team.admin, f"{to_bob}/assign", {"user_id": bob.id}))
    body_of(post(api, team.admin, f"{closed}/assign", {"user_id": team.admin.id}))
    body_of(post(api, team.admin, f"{closed}/close"))

    expected = {
        "admin": {"unassigned": [nobody], "mine": [], "others": [to_bob], "closed": [closed]},
        "bob": {"unassigned": [nobody], "mine": [to_bob], "others": [], "closed": [closed]},
        "carol": {"unassigned": [nobody], "mine": [], "others": [to_bob], "closed": [closed]},
    }
    for key, sections in expected.items():
        viewer = team[key]
        for section, conversation_ids in sections.items():
            assert ids_in(api, viewer, section) == conversation_ids, (key, section)
        for section, conversation_ids in sections.items():
            for conversation_id in conversation_ids:
                assert conversation(api, viewer, conversation_id)["section"] == section
        # Without `section`, every conversation the viewer may see.
        assert sorted(ids_in(api, viewer)) == sorted([to_bob, nobody, closed])
    assert conversation(api, carol, closed)["assignee_id"] == team.admin.id


def test_list_is_newest_activity_first_and_a_new_message_moves_to_the_top(
    api: Api, server: Any
) -> None:
    team = api.signup()
    integration = team.install()
    a = team.conversation_from(integration, contact="a")["id"]
    server.clock.advance(seconds=1)
    b = team.conversation_from(integration, contact="b")["id"]
    server.clock.advance(seconds=1)
    c = team.conversation_from(integration, contact="c")["id"]
    assert ids_in(api, team.admin) == [c, b, a]
    assert ids_in(api, team.admin, "unassigned") == [c, b, a]

    server.clock.advance(seconds=1)
    assert team.inbound(integration, contact="a", text="me again").status_code == 200
    assert ids_in(api, team.admin) == [a, c, b]
    top = listing(api, team.admin)["items"][0]
    assert top["last_message"]["text"] == "me again"

    # An agent's reply is activity too.
    server.clock.advance(seconds=1)
    body_of(post(api, team.admin, f"{b}/messages", {"text": "Hello b"}), 201)
    assert ids_in(api, team.admin) == [b, a, c]


def test_list_pagination_with_limit_and_cursor(api: Api) -> None:
    team = api.signup()
    integration = team.install()
    created = [team.conversation_from(integration, contact=f"c{i}")["id"] for i in range(5)]
    everything = ids_in(api, team.admin)
    assert sorted(everything) == sorted(created)
    assert everything == list(reversed(created))

    for section in (None, "unassigned"):
        seen: list[int] = []
        sizes: list[int] = []
        cursor: str | None = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = listing(api, team.admin, section, **params)
            seen += [c["id"] for c in page["items"]]
            sizes.append(len(page["items"]))
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sizes == [2, 2, 1], section
        assert seen == everything, section

    exact = listing(api, team.admin, limit=5)
    assert [c["id"] for c in exact["items"]] == everything
    assert exact["next_cursor"] is None

    for bad in ("0", "101", "-1", "ten"):
        error = assert_error(
            api.get("/api/v1/conversations", team.admin.token, params={"limit": bad}),
            422,
            "validation_error",
        )
        assert "limit" in error["fields"]


def test_invalid_section_and_bad_cursor_are_422(api: Api) -> None:
    team = api.signup()
    integration = team.install()
    conversation_id = team.conversation_from(integration)["id"]
    error = assert_error(
        api.get("/api/v1/conversations", team.admin.token, params={"section": "archived"}),
        422,
        "validation_error",
    )
    assert "section" in error["fields"]

    for bad in ("not-a-cursor!!", "e30", "WyJ4Il0"):  # garbage, base64 "{}", base64 '["x"]'
        error = assert_error(
            api.get("/api/v1/conversations", team.admin.token, params={"cursor": bad}),
            422,
            "validation_error",
        )
        assert "cursor" in error["fields"], bad
    error = assert_error(
        api.get(
            f"/api/v1/conversations/{conversation_id}/messages",
            team.admin.token,
            params={"cursor": "not-a-cursor!!"},
        ),
        422,
        "validation_error",
    )
    assert "cursor" in error["fields"]


# Unread counts and the inbox summary --------------------------------------------------------


def test_inbox_summary_counts_and_unread_per_section_per_viewer(api: Api) -> None:
    team = api.signup()
    bob, carol = team.add("bob"), team.add("carol")
    integration = team.install(shared_with=["bob"])
    to_bob = team.conversation_from(integration, contact="a")["id"]
    read_by_admin = team.conversation_from(integration, contact="b")["id"]
    team.conversation_from(integration, contact="c")
    closed = team.conversation_from(integration, contact="d")["id"]
    body_of(post(api, team.admin, f"{to_bob}/assign", {"user_id": bob.id}))
    body_of(post(api, team.admin, f"{closed}/close"))
    assert post(api, team.admin, f"{read_by_admin}/read").status_code == 204

    assert summary(api, team.admin) == {
        "unassigned": {"count": 2, "unread": 1},
        "mine": {"count": 0, "unread": 0},
        "others": {"count": 1, "unread": 1},
        "closed": {"count": 1, "unread": 1},
    }
    assert summary(api, bob) == {
        "unassigned": {"count": 2, "unread": 2},
        "mine": {"count": 1, "unread": 1},
        "others": {"count": 0, "unread": 0},
        "closed": {"count": 1, "unread": 1},
    }
    # No shared access: nothing counted.
    assert summary(api, carol) == {s: {"count": 0, "unread": 0} for s in SECTIONS}

    # Bob reads his conversation; admin reads the closed one.
    assert post(api, bob, f"{to_bob}/read").status_code == 204
    assert post(api, team.admin, f"{closed}/read").status_code == 204
    assert summary(api, bob)["mine"] == {"count": 1, "unread": 0}
    assert summary(api, team.admin)["closed"] == {"count": 1, "unread": 0}
    assert summary(api, bob)["closed"] == {"count": 1, "unread": 1}
    assert summary(api, team.admin)["others"] == {"count": 1, "unread": 1}

    # The counts agree with the listings.
    for viewer in (team.admin, bob):
        sections = summary(api, viewer)
        for section in SECTIONS:
            items = listing(api, viewer, section)["items"]
            assert sections[section]["count"] == len(items)
            assert sections[section]["unread"] == sum(1 for c in items if c["unread_count"] > 0)


def test_read_resets_my_unread_count_only_and_new_inbound_counts_again(
    api: Api, db: Database
) -> None:
    team = api.signup()
    bob, carol = team.add("bob"), team.add("carol")
    integration = team.install(shared_with=["bob"])
    conversation_id = team.conversation_from(integration, text="one")["id"]
    for text in ("two", "three"):
        assert team.inbound(integration, text=text).status_code == 200
    assert conversation(api, team.admin, conversation_id)["unread_count"] == 3
    assert conversation(api, bob, conversation_id)["unread_count"] == 3

    seq = last_seq(db, team)
    r = post(api, team.admin, f"{conversation_id}/read")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert conversation(api, team.admin, conversation_id)["unread_count"] == 0
    assert listing(api, team.admin, "unassigned")["items"][0]["unread_count"] == 0
    assert conversation(api, bob, conversation_id)["unread_count"] == 3
    assert listing(api, bob, "unassigned")["items"][0]["unread_count"] == 3
    # Reading is private to the reader: no account-wide conversation or message event.
    assert not [
        e for e in events(db, team, seq) if e["type"].startswith(("conversation.", "message."))
    ]

    # Reading twice is harmless; an agent's own reply is not unread.
    assert post(api, team.admin, f"{conversation_id}/read").status_code == 204
    body_of(post(api, team.admin, f"{conversation_id}/messages", {"text": "On it"}), 201)
    assert conversation(api, team.admin, conversation_id)["unread_count"] == 0
    assert conversation(api, bob, conversation_id)["unread_count"] == 3

    assert team.inbound(integration, text="four").status_code == 200
    assert conversation(api, team.admin, conversation_id)["unread_count"] == 1
    assert conversation(api, bob, conversation_id)["unread_count"] == 4

    # Without shared access: 404, as for any conversation one may not see.
    assert_error(post(api, carol, f"{conversation_id}/read"), 404, "not_found")


# Messages -------------------------------------------------------------------------------------


def test_messages_newest_first_with_cursor_pagination(api: Api) -> None:
    team = api.signup()
    integration = team.install()
    conversation_id = team.conversation_from(integration, text="m0", contact="cust-7")["id"]
    for i in range(1, 7):
        assert team.inbound(integration, text=f"m{i}", contact="cust-7").status_code == 200
    contact = conversation(api, team.admin, conversation_id)["contact"]

    texts: list[list[str]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = messages(api, team.admin, conversation_id, **params)
        texts.append([m["text"] for m in page["items"]])
        for message in page["items"]:
            assert message["conversation_id"] == conversation_id
            assert message["direction"] == "inbound"
            assert message["status"] == "received"
            assert message["sender"] == {
                "type": "contact",
                "id": contact["id"],
                "name": "Carla Customer",
            }
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert texts == [["m6", "m5", "m4"], ["m3", "m2", "m1"], ["m0"]]

    everything = all_messages(api, team.admin, conversation_id)
    assert [m["text"] for m in everything] == [f"m{i}" for i in range(6, -1, -1)]
    stamps = [ts(m["created_at"]) for m in everything]
    assert stamps == sorted(stamps, reverse=True)
    error = assert_error(
        api.get(
            f"/api/v1/conversations/{conversation_id}/messages",
            team.admin.token,
            params={"limit": 0},
        ),
        422,
        "validation_error",
    )
    assert "limit" in error["fields"]


# Assignment -----------------------------------------------------------------------------------


def test_assign_to_an_available_user_with_shared_access(api: Api, db: Database) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    before = team.conversation_from(integration)
    seq = last_seq(db, team)

    conv = body_of(post(api, team.admin, f"{before['id']}/assign", {"user_id": bob.id}))
    assert_rest_conversation(conv)
    assert conv["assignee_id"] == bob.id
    assert conv["section"] == "others"
    assert conv["version"] == before["version"] + 1
    assert conversation(api, bob, before["id"])["section"] == "mine"
    assert ids_in(api, bob, "mine") == [before["id"]]
    assert ids_in(api, team.admin, "others") == [before["id"]]
    assert ids_in(api, team.admin, "unassigned") == []

    log = events(db, team, seq)
    assert types(log) == ["conversation.updated"]
    data = log[0]["data"]
    assert data["changes"] == ["assignee_id"]
    assert data["conversation"]["id"] == before["id"]
    assert data["conversation"]["assignee_id"] == bob.id
    assert data["conversation"]["version"] == conv["version"]

    # Bob may take it back for the admin, and the admin may assign themselves.
    conv = body_of(post(api, bob, f"{before['id']}/assign", {"user_id": team.admin.id}))
    assert conv["assignee_id"] == team.admin.id
    assert conv["section"] == "others"
    assert conversation(api, team.admin, before["id"])["section"] == "mine"


def test_assign_to_an_unavailable_user_is_409(api: Api, db: Database) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    before = team.conversation_from(integration)
    user = body_of(api.put("/api/v1/me/availability", bob.token, json={"available": False}))
    assert user["available"] is False
    seq = last_seq(db, team)

    assert_error(
        post(api, team.admin, f"{before['id']}/assign", {"user_id": bob.id}),
        409,
        "assignee_unavailable",
    )
    after = conversation(api, team.admin, before["id"])
    assert after["assignee_id"] is None
    assert after["version"] == before["version"]
    assert after["section"] == "unassigned"
    assert not [e for e in events(db, team, seq) if e["type"].startswith("conversation.")]

    body_of(api.put("/api/v1/me/availability", bob.token, json={"available": True}))
    conv = body_of(post(api, team.admin, f"{before['id']}/assign", {"user_id": bob.id}))
    assert conv["assignee_id"] == bob.id


def test_assign_oneself_while_unavailable_is_409(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conversation_id = team.conversation_from(integration)["id"]
    body_of(api.put("/api/v1/me/availability", bob.token, json={"available": False}))

    assert_error(
        post(api, bob, f"{conversation_id}/assign", {"user_id": bob.id}),
        409,
        "assignee_unavailable",
    )
    assert conversation(api, bob, conversation_id)["assignee_id"] is None

    body_of(api.put("/api/v1/me/availability", bob.token, json={"available": True}))
    conv = body_of(post(api, bob, f"{conversation_id}/assign", {"user_id": bob.id}))
    assert conv["assignee_id"] == bob.id
    assert conv["section"] == "mine"


def test_assign_to_users_without_shared_access_is_409(api: Api, db: Database) -> None:
    team = api.signup()
    team.add("bob")
    carol = team.add("carol")
    integration = team.install(shared_with=["bob"])
    before = team.conversation_from(integration)
    stranger = api.signup(company="Elsewhere").admin
    seq = last_seq(db, team)

    # Carol is in the account but the integration is not shared with her; the others are an
    # unknown id and another account's user.
    for user_id in (carol.id, stranger.id, 987654):
        assert_error(
            post(api, team.admin, f"{before['id']}/assign", {"user_id": user_id}),
            409,
            "assignee_unavailable",
        )
    after = conversation(api, team.admin, before["id"])
    assert after["assignee_id"] is None
    assert after["version"] == before["version"]
    assert events(db, team, seq) == []
    # And Carol cannot assign herself either: she cannot see it at all.
    assert_error(
        post(api, carol, f"{before['id']}/assign", {"user_id": carol.id}), 404, "not_found"
    )


def test_turning_availability_off_keeps_existing_assignments(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conversation_id = team.conversation_from(integration)["id"]
    assigned = body_of(post(api, team.admin, f"{conversation_id}/assign", {"user_id": bob.id}))

    body_of(api.put("/api/v1/me/availability", bob.token, json={"available": False}))
    conv = conversation(api, bob, conversation_id)
    assert conv["assignee_id"] == bob.id
    assert conv["section"] == "mine"
    assert conv["version"] == assigned["version"]
    assert ids_in(api, bob, "mine") == [conversation_id]
    assert ids_in(api, team.admin, "others") == [conversation_id]


def test_stale_version_is_409_and_changes_nothing(api: Api, db: Database) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conv = team.conversation_from(integration)
    conversation_id, v1 = conv["id"], conv["version"]

    conv = body_of(post(api, team.admin, f"{conversation_id}/assign", {"user_id": bob.id}))
    v2 = conv["version"]
    assert v2 > v1
    seq = last_seq(db, team)

    assert_error(
        post(
            api, team.admin, f"{conversation_id}/assign", {"user_id": team.admin.id, "version": v1}
        ),
        409,
        "version_conflict",
    )
    assert_error(
        post(api, team.admin, f"{conversation_id}/unassign", {"version": v1}),
        409,
        "version_conflict",
    )
    unchanged = conversation(api, team.admin, conversation_id)
    assert unchanged["assignee_id"] == bob.id
    assert unchanged["version"] == v2
    assert events(db, team, seq) == []

    # The current version works.
    conv = body_of(
        post(
            api, team.admin, f"{conversation_id}/assign", {"user_id": team.admin.id, "version": v2}
        )
    )
    assert conv["assignee_id"] == team.admin.id
    v3 = conv["version"]
    assert v3 > v2
    conv = body_of(post(api, team.admin, f"{conversation_id}/unassign", {"version": v3}))
    assert conv["assignee_id"] is None
    assert conv["section"] == "unassigned"
    assert conv["version"] > v3

    log = events(db, team, seq)
    assert types(log) == ["conversation.updated", "conversation.updated"]
    assert [e["data"]["changes"] for e in log] == [["assignee_id"], ["assignee_id"]]
    assert [e["data"]["conversation"]["assignee_id"] for e in log] == [team.admin.id, None]
    assert log[-1]["data"]["conversation"]["version"] == conv["version"]


def test_unassign_puts_the_conversation_back_in_unassigned(api: Api, db: Database) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conversation_id = team.conversation_from(integration)["id"]
    body_of(post(api, team.admin, f"{conversation_id}/assign", {"user_id": bob.id}))
    seq = last_seq(db, team)

    # No body at all is fine: `version` is optional.
    r = api.post(f"/api/v1/conversations/{conversation_id}/unassign", bob.token)
    conv = body_of(r)
    assert conv["assignee_id"] is None
    assert conv["section"] == "unassigned"
    for viewer in (team.admin, bob):
        assert where(api, viewer, conversation_id) == ["unassigned"]
    log = events(db, team, seq)
    assert types(log) == ["conversation.updated"]
    assert log[0]["data"]["changes"] == ["assignee_id"]
    assert log[0]["data"]["conversation"]["assignee_id"] is None


def test_assign_body_is_validated(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conversation_id = team.conversation_from(integration)["id"]
    path = f"/api/v1/conversations/{conversation_id}/assign"

    error = assert_error(
        api.post(path, team.admin.token, json={"user_id": str(bob.id)}), 422, "validation_error"
    )
    assert "user_id" in error["fields"]
    error = assert_error(api.post(path, team.admin.token, json={}), 422, "validation_error")
    assert "user_id" in error["fields"]
    error = assert_error(
        api.post(path, team.admin.token, json={"user_id": bob.id, "version": "1"}),
        422,
        "validation_error",
    )
    assert "version" in error["fields"]
    assert_error(
        api.post(
            path,
            team.admin.token,
            content=b'{"user_id": ',
            headers={"Content-Type": "application/json"},
        ),
        400,
        "bad_request",
    )
    assert conversation(api, team.admin, conversation_id)["assignee_id"] is None


# Close and reopen -------------------------------------------------------------------------------


def test_any_user_with_shared_access_may_close_and_reopen(api: Api, db: Database) -> None:
    team = api.signup()
    bob, carol, dave = team.add("bob"), team.add("carol"), team.add("dave")
    integration = team.install(shared_with=["bob", "carol"])
    conversation_id = team.conversation_from(integration)["id"]
    body_of(post(api, team.admin, f"{conversation_id}/assign", {"user_id": bob.id}))
    seq = last_seq(db, team)

    assert_error(post(api, dave, f"{conversation_id}/close"), 404, "not_found")
    conv = body_of(post(api, carol, f"{conversation_id}/close"))
    assert conv["status"] == "closed"
    assert conv["section"] == "closed"
    assert conv["assignee_id"] == bob.id
    for viewer in (team.admin, bob, carol):
        assert where(api, viewer, conversation_id) == ["closed"]
        assert conversation(api, viewer, conversation_id)["section"] == "closed"
    assert ids_in(api, dave) == []

    conv = body_of(post(api, bob, f"{conversation_id}/reopen"))
    assert conv["status"] == "open"
    assert conv["section"] == "mine"
    assert where(api, carol, conversation_id) == ["others"]
    assert where(api, team.admin, conversation_id) == ["others"]

    log = events(db, team, seq)
    assert types(log) == ["conversation.updated", "conversation.updated"]
    assert [e["data"]["changes"] for e in log] == [["status"], ["status"]]
    assert [e["data"]["conversation"]["status"] for e in log] == ["closed", "open"]

    # Closing an unassigned one, then reopening it: back to unassigned.
    other = team.conversation_from(integration, contact="cust-2")["id"]
    body_of(post(api, bob, f"{other}/close"))
    assert where(api, carol, other) == ["closed"]
    conv = body_of(post(api, team.admin, f"{other}/reopen"))
    assert conv["section"] == "unassigned"


def test_inbound_message_reopens_a_closed_assigned_conversation_into_mine(
    api: Api, db: Database
) -> None:
    team = api.signup()
    bob, carol = team.add("bob"), team.add("carol")
    integration = team.install(shared_with=["bob", "carol"])
    conversation_id = team.conversation_from(integration, contact="cust-1")["id"]
    body_of(post(api, team.admin, f"{conversation_id}/assign", {"user_id": bob.id}))
    closed = body_of(post(api, bob, f"{conversation_id}/close"))
    seq = last_seq(db, team)

    r = team.inbound(integration, contact="cust-1", text="Actually, one more thing")
    assert r.status_code == 200, r.text
    assert r.json()["conversation_id"] == conversation_id

    assert where(api, bob, conversation_id) == ["mine"]
    assert where(api, team.admin, conversation_id) == ["others"]
    assert where(api, carol, conversation_id) == ["others"]
    conv = conversation(api, bob, conversation_id)
    assert conv["status"] == "open"
    assert conv["assignee_id"] == bob.id
    assert conv["last_message"]["text"] == "Actually, one more thing"
    assert conv["version"] >= closed["version"]

    log = events(db, team, seq)
    assert types(log) == ["message.created"]
    data = log[0]["data"]
    assert data["message"]["text"] == "Actually, one more thing"
    assert data["conversation"]["id"] == conversation_id
    assert data["conversation"]["status"] == "open"
    assert data["conversation"]["assignee_id"] == bob.id
    assert data["conversation"]["last_message"]["id"] == data["message"]["id"]


def test_inbound_message_reopens_a_closed_unassigned_conversation_into_unassigned(
    api: Api, db: Database
) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    conversation_id = team.conversation_from(integration, contact="cust-1")["id"]
    body_of(post(api, bob, f"{conversation_id}/close"))
    assert where(api, team.admin, conversation_id) == ["closed"]
    seq = last_seq(db, team)

    assert team.inbound(integration, contact="cust-1", text="Hello?").status_code == 200
    for viewer in (team.admin, bob):
        assert where(api, viewer, conversation_id) == ["unassigned"]
        conv = conversation(api, viewer, conversation_id)
        assert conv["status"] == "open"
        assert conv["assignee_id"] is None
    log = events(db, team, seq)
    assert types(log) == ["message.created"]
    assert log[0]["data"]["conversation"]["status"] == "open"
    assert log[0]["data"]["conversation"]["assignee_id"] is None


# Delete -----------------------------------------------------------------------------------------


def test_only_the_installer_may_delete_and_the_history_goes_for_good(
    api: Api, db: Database
) -> None:
    team = api.signup()
    bob = team.add("bob")
    boss = team.add("boss", role="admin")
    integration = team.install(shared_with=["bob", "boss"])
    old = team.conversation_from(integration, contact="cust-1", text="first life")
    old_id = old["id"]
    assert team.inbound(integration, contact="cust-1", text="still first life").status_code == 200
    body_of(post(api, team.admin, f"{old_id}/assign", {"user_id": bob.id}))
    body_of(post(api, bob, f"{old_id}/messages", {"text": "a reply"}), 201)
    old_message_ids = {m["id"] for m in all_messages(api, team.admin, old_id)}
    assert len(old_message_ids) == 3

    # Shared access is not enough, and neither is being an admin.
    for who in (bob, boss):
        assert_error(api.delete(f"/api/v1/conversations/{old_id}", who.token), 403, "forbidden")
    assert conversation(api, team.admin, old_id)["id"] == old_id

    seq = last_seq(db, team)
    r = api.delete(f"/api/v1/conversations/{old_id}", team.admin.token)
    assert r.status_code == 204, r.text
    assert r.content == b""

    for who in (team.admin, bob):
        assert_error(api.get(f"/api/v1/conversations/{old_id}", who.token), 404, "not_found")
        assert_error(
            api.get(f"/api/v1/conversations/{old_id}/messages", who.token), 404, "not_found"
        )
        assert ids_in(api, who) == []
        assert summary(api, who) == {s: {"count": 0, "unread": 0} for s in SECTIONS}
    assert_error(api.delete(f"/api/v1/conversations/{old_id}", team.admin.token), 404, "not_found")

    # The event log keeps no trace of its history, only the deletion.
    log = events(db, team, contiguous=False)
    for event in log:
        data = event["data"]
        assert data.get("conversation", {}).get("id") != old_id, event
        assert data.get("message", {}).get("conversation_id") != old_id, event
        assert data.get("message", {}).get("id") not in old_message_ids, event
    deleted = [e for e in log if e["type"] == "conversation.deleted"]
    assert [e["data"] for e in deleted] == [{"conversation_id": old_id}]
    assert deleted[0]["seq"] > seq

    # The same contact writing again starts afresh, unassigned, without the old history.
    seq = last_seq(db, team)
    r = team.inbound(integration, contact="cust-1", text="second life")
    assert r.status_code == 200, r.text
    new_id = r.json()["conversation_id"]
    for who in (team.admin, bob):
        assert where(api, who, new_id) == ["unassigned"]
    fresh = conversation(api, team.admin, new_id)
    assert fresh["assignee_id"] is None
    assert fresh["status"] == "open"
    assert fresh["unread_count"] == 1
    assert fresh["contact"]["handle"] == "cust-1"
    assert [m["text"] for m in all_messages(api, team.admin, new_id)] == ["second life"]
    new_log = events(db, team, seq)
    assert types(new_log) == ["conversation.created", "message.created"]
    assert new_log[0]["data"]["conversation"]["id"] == new_id
    assert new_log[1]["data"]["message"]["text"] == "second life"
    # A fresh conversation, not the old one's id handed out again (links and notes that named
    # the deleted conversation must not lead to the new one).
    assert new_id != old_id
    assert not {m["id"] for m in all_messages(api, team.admin, new_id)} & old_message_ids


# Replies ------------------------------------------------------------------------------------


def test_reply_is_posted_signed_to_the_callback_and_becomes_sent(
    api: Api, db: Database, callback: FakeCallback
) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(
        shared_with=["bob"], callback_url=callback.url, secret="callback-secret-42"
    )
    conversation_id = team.conversation_from(integration, contact="cust-9")["id"]
    seq = last_seq(db, team)

    r = post(api, bob, f"{conversation_id}/messages", {"text": "Hello Carla, how can I help?"})
    reply = body_of(r, 201)
    assert_message(reply)
    assert reply["direction"] == "outbound"
    assert reply["conversation_id"] == conversation_id
    assert reply["text"] == "Hello Carla, how can I help?"
    assert reply["status"] in {"queued"} | DELIVERED
    assert reply["sender"] == {"type": "user", "id": bob.id, "name": "Bob"}

    final = wait_for_final(api, bob, conversation_id, reply["id"])
    assert final["status"] == "sent", final
    assert final["error"] is None
    assert final["sender"] == {"type": "user", "id": bob.id, "name": "Bob"}
    conv = conversation(api, bob, conversation_id)
    assert conv["last_message"]["id"] == reply["id"]
    assert conv["unread_count"] == 1  # the contact's message; a reply is not unread

    received = callback.requests
    assert len(received) == 1, received
    request = received[0]
    assert request.method == "POST"
    assert request.headers["x-signature-256"] == signature("callback-secret-42", request.body)
    payload = request.json()
    assert set(payload) >= {"message_id", "conversation_id", "contact", "text", "created_at"}
    assert payload["message_id"] == reply["id"]
    assert payload["conversation_id"] == conversation_id
    assert payload["contact"] == {"id": "cust-9"}
    assert payload["text"] == "Hello Carla, how can I help?"
    assert ts(payload["created_at"]) == ts(reply["created_at"])

    wait_for(lambda: "message.updated" in types(events(db, team, seq)))
    log = events(db, team, seq)
    assert types(log) == ["message.created", "message.updated"]
    created, updated = log
    assert created["data"]["message"]["id"] == reply["id"]
    assert created["data"]["message"]["direction"] == "outbound"
    assert created["data"]["conversation"]["last_message"]["id"] == reply["id"]
    assert updated["data"]["message"]["id"] == reply["id"]
    assert updated["data"]["message"]["status"] == "sent"


def test_reply_refused_by_the_callback_fails_without_retrying(
    api: Api, db: Database, callback: FakeCallback
) -> None:
    callback.set_statuses([], default=400)
    team = api.signup()
    integration = team.install(callback_url=callback.url)
    conversation_id = team.conversation_from(integration)["id"]
    seq = last_seq(db, team)

    reply = body_of(post(api, team.admin, f"{conversation_id}/messages", {"text": "Hi"}), 201)
    final = wait_for_final(api, team.admin, conversation_id, reply["id"])
    assert final["status"] == "failed", final
    assert isinstance(final["error"], str) and final["error"].strip()
    assert len(callback.requests) == 1

    updates = [e for e in events(db, team, seq) if e["type"] == "message.updated"]
    assert [e["data"]["message"]["status"] for e in updates] == ["failed"]
    assert updates[0]["data"]["message"]["id"] == reply["id"]
    assert updates[0]["data"]["message"]["error"]


def test_reply_is_retried_after_a_server_error_and_sent_once(
    api: Api, db: Database, callback: FakeCallback
) -> None:
    callback.set_statuses([500], default=200)
    team = api.signup()
    integration = team.install(callback_url=callback.url)
    conversation_id = team.conversation_from(integration)["id"]
    seq = last_seq(db, team)

    reply = body_of(post(api, team.admin, f"{conversation_id}/messages", {"text": "Hi"}), 201)
    final = wait_for_final(api, team.admin, conversation_id, reply["id"], timeout=15)
    assert final["status"] == "sent", final
    assert final["error"] is None

    received = callback.requests
    assert len(received) == 2, received
    assert [r.json()["message_id"] for r in received] == [reply["id"], reply["id"]]
    assert received[0].body == received[1].body
    updates = [e for e in events(db, team, seq) if e["type"] == "message.updated"]
    assert updates
    assert updates[-1]["data"]["message"]["status"] == "sent"
    assert "failed" not in [e["data"]["message"]["status"] for e in updates]


def test_reply_without_callback_url_is_sent(api: Api, db: Database) -> None:
    team = api.signup()
    integration = team.install()
    conversation_id = team.conversation_from(integration)["id"]
    seq = last_seq(db, team)
    reply = body_of(post(api, team.admin, f"{conversation_id}/messages", {"text": "Hi"}), 201)
    assert reply["sender"] == {"type": "user", "id": team.admin.id, "name": "Ada Admin"}
    final = wait_for_final(api, team.admin, conversation_id, reply["id"])
    assert final["status"] == "sent", final
    assert final["error"] is None
    wait_for(lambda: "message.updated" in types(events(db, team, seq)))


def test_reply_text_is_validated(api: Api, callback: FakeCallback) -> None:
    team = api.signup()
    carol = team.add("carol")
    integration = team.install(callback_url=callback.url)
    conversation_id = team.conversation_from(integration)["id"]
    path = f"/api/v1/conversations/{conversation_id}/messages"

    for text in ("x" * 4097, "", "   \n\t "):
        error = assert_error(
            api.post(path, team.admin.token, json={"text": text}), 422, "validation_error"
        )
        assert "text" in error["fields"], text
    for body in ({}, {"text": 42}):
        error = assert_error(api.post(path, team.admin.token, json=body), 422, "validation_error")
        assert "text" in error["fields"], body
    assert_error(
        api.post(
            path,
            team.admin.token,
            content=b'{"text": "unterminated',
            headers={"Content-Type": "application/json"},
        ),
        400,
        "bad_request",
    )
    assert_error(api.post(path, carol.token, json={"text": "hi"}), 404, "not_found")
    # Nothing was stored (nor sent) for the refused ones.
    assert [m["direction"] for m in all_messages(api, team.admin, conversation_id)] == ["inbound"]

    # Exactly 4,096 characters is fine.
    longest = body_of(api.post(path, team.admin.token, json={"text": "y" * 4096}), 201)
    assert longest["text"] == "y" * 4096
    assert wait_for_final(api, team.admin, conversation_id, longest["id"])["status"] == "sent"
    assert [r.json()["message_id"] for r in callback.requests] == [longest["id"]]


# Timestamps ---------------------------------------------------------------------------------


def test_inbound_sent_at_in_the_past_is_the_message_time(api: Api) -> None:
    team = api.signup()
    integration = team.install()
    past = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    conversation_id = team.conversation_from(integration, text="earlier", sent_at=iso(past))["id"]
    (message,) = all_messages(api, team.admin, conversation_id)
    assert ts(message["created_at"]) == past
    conv = conversation(api, team.admin, conversation_id)
    assert ts(conv["last_message_at"]) == past

    # With another offset, the same instant comes back in UTC.
    local = past - timedelta(minutes=30)
    offset = local.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert offset.endswith("+02:00")
    assert team.inbound(integration, text="with offset", sent_at=offset).status_code == 200
    stamps = {m["text"]: m["created_at"] for m in all_messages(api, team.admin, conversation_id)}
    assert ts(stamps["with offset"]) == local
    assert stamps["with offset"] == iso(local)


def test_inbound_sent_at_in_the_future_is_clamped_to_now(api: Api) -> None:
    team = api.signup()
    integration = team.install()
    before = datetime.now(UTC)
    future = before + timedelta(days=1)
    conversation_id = team.conversation_from(
        integration, text="from the future", sent_at=iso(future)
    )["id"]
    after = datetime.now(UTC)
    (message,) = all_messages(api, team.admin, conversation_id)
    created = ts(message["created_at"])
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)
    assert ts(conversation(api, team.admin, conversation_id)["last_message_at"]) <= after + (
        timedelta(seconds=1)
    )
