"""The CRM over real HTTP: persons, leads and deals, search, links from conversations, the notes
that follow a linked conversation in 24-hour windows, and the events all of it records."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from server.domain.phones import search_digits, to_e164
from server.security.signatures import sign_sha256
from server.state.db import Database
from tests.nodes import WsClient
from tests.support import Api, LiveServer, Team, event_log, settings_for

PUBLIC_URL = "http://testserver.local"  # tests.support.settings_for
NOTE_KEYS = {
    "id",
    "target",
    "target_id",
    "conversation_id",
    "link_id",
    "content",
    "edited",
    "created_at",
    "updated_at",
}
LINK_KEYS = {"id", "conversation_id", "target", "target_id", "created_at"}


# Helpers -------------------------------------------------------------------------------------


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code, body
    return body


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def latest_seq(db: Database, account_id: int) -> int:
    log = event_log(db, account_id)
    return int(log[-1]["seq"]) if log else 0


def new_events(db: Database, account_id: int, after: int) -> list[dict[str, Any]]:
    """The events after `after`, but for replies' deliveries (`message.updated`, any time)."""
    return [e for e in event_log(db, account_id, after) if e["type"] != "message.updated"]


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


@dataclass
class Inbox:
    """An account with a shared channel and one conversation from Carla."""

    api: Api
    team: Team
    integration: dict[str, Any]
    conversation: dict[str, Any]

    @property
    def token(self) -> str:
        return self.team.admin.token

    @property
    def conversation_id(self) -> int:
        return int(self.conversation["id"])

    def create(self, kind: str, token: str | None = None, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = ok(
            self.api.post(f"/api/v1/{kind}s", token or self.token, json=fields), 201
        )
        return result

    def link(self, token: str | None = None, **body: Any) -> httpx.Response:
        path = f"/api/v1/conversations/{self.conversation_id}/links"
        return self.api.post(path, token or self.token, json=body)

    def linked(self, target: str = "person", **fields: Any) -> dict[str, Any]:
        """Link to a new record of `target`; returns `{link, note}`."""
        if not fields:
            fields = {"person": {"name": "Carla Buyer"}}.get(target, {"title": f"A {target}"})
        record = self.create(target, **fields)
        result: dict[str, Any] = ok(self.link(target=target, target_id=record["id"]), 201)
        return result

    def inbound(self, text: str, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = ok(self.team.inbound(self.integration, text=text, **kwargs))
        assert result["conversation_id"] == self.conversation_id
        return result

    def reply(self, text: str, token: str | None = None) -> dict[str, Any]:
        path = f"/api/v1/conversations/{self.conversation_id}/messages"
        result: dict[str, Any] = ok(
            self.api.post(path, token or self.token, json={"text": text}), 201
        )
        return result

    def notes(self, target: str, target_id: int, token: str | None = None) -> list[dict[str, Any]]:
        r = self.api.get(
            "/api/v1/notes", token or self.token, params={"target": target, "target_id": target_id}
        )
        items: list[dict[str, Any]] = ok(r)["items"]
        return items

    def notes_of(self, link: dict[str, Any]) -> list[dict[str, Any]]:
        return self.notes(link["target"], link["target_id"])

    def get_conversation(self, token: str | None = None) -> dict[str, Any]:
        path = f"/api/v1/conversations/{self.conversation_id}"
        result: dict[str, Any] = ok(self.api.get(path, token or self.token))
        return result


def inbox(api: Api, *, shared_with: tuple[str, ...] = (), **conversation: Any) -> Inbox:
    team = api.signup(company="Acme", name="Ada Admin")
    for key in shared_with:
        team.add(key)
    integration = team.install(shared_with=list(shared_with))
    conversation.setdefault("text", "Hi, is the blue sofa in stock?")
    conv = team.conversation_from(integration, **conversation)
    return Inbox(api, team, integration, conv)


def fire_together(calls: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls from as many threads, released at the same instant."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            with httpx.Client(timeout=30) as client:
                barrier.wait(timeout=10)
                results[i] = calls[i](client)
        except BaseException as exc:  # reported below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    responses = [r for r in results if isinstance(r, httpx.Response)]
    assert len(responses) == len(calls), results
    return responses


def signed_inbound(box: Inbox, text: str) -> Callable[[httpx.Client], httpx.Response]:
    body = orjson.dumps({"message_id": uuid.uuid4().hex, "contact": {"id": "cust-1"}, "text": text})
    url = f"{box.api.server.url}/webhooks/api/{box.integration['id']}"
    headers = {
        "Content-Type": "application/json",
        "X-Signature-256": sign_sha256(box.integration["secret"], body),
    }
    return lambda client: client.post(url, content=body, headers=headers)


def patch_note(box: Inbox, note_id: int, content: str) -> Callable[[httpx.Client], httpx.Response]:
    url = f"{box.api.server.url}/api/v1/notes/{note_id}"
    headers = {"Authorization": f"Bearer {box.token}"}
    return lambda client: client.patch(url, json={"content": content}, headers=headers)


# Persons, leads, deals -----------------------------------------------------------------------


def test_persons_leads_and_deals_are_created_fetched_and_listed(api: Api) -> None:
    box = inbox(api)
    person = box.create(
        "person",
        name="  Carla Buyer ",
        email="Carla@Example.COM",
        phone="+1 415-555-0100",
        emails=["carla@work.example", "carla@example.com"],
    )
    assert person["name"] == "Carla Buyer"
    assert person["emails"] == ["carla@example.com", "carla@work.example"]
    assert person["phones"] == ["+1 415-555-0100"]
    assert person["phones_e164"] == ["+14155550100"]
    assert ok(api.get(f"/api/v1/persons/{person['id']}", box.token)) == person

    lead = box.create("lead", title="Sofa for the lobby", person_id=person["id"])
    assert {k: lead[k] for k in ("title", "person_id")} == {
        "title": "Sofa for the lobby",
        "person_id": person["id"],
    }
    assert ok(api.get(f"/api/v1/leads/{lead['id']}", box.token)) == lead
    deal = box.create("deal", title="Blue sofa", value=1250.5, currency="eur", person_id=None)
    assert (deal["value"], deal["currency"], deal["person_id"]) == (1250.5, "EUR", None)
    whole = box.create("deal", title="Red sofa", value=5000, person_id=person["id"])
    assert (whole["value"], whole["currency"]) == (5000, None)
    bare = box.create("deal", title="Just an idea")
    assert (bare["value"], bare["currency"], bare["person_id"]) == (None, None, None)
    assert ok(api.get(f"/api/v1/deals/{deal['id']}", box.token)) == deal

    # Every user of the account sees them, with or without access to any conversation.
    agent = box.team.add("nora")
    assert ok(api.get(f"/api/v1/persons/{person['id']}", agent.token)) == person

    # Lists: by id, paginated like the others; leads and deals filter by person.
    first = ok(api.get("/api/v1/deals", box.token, params={"limit": 2}))
    assert [d["id"] for d in first["items"]] == [deal["id"], whole["id"]]
    rest = ok(api.get("/api/v1/deals", box.token, params={"cursor": first["next_cursor"]}))
    assert ([d["id"] for d in rest["items"]], rest["next_cursor"]) == ([bare["id"]], None)
    mine = ok(api.get("/api/v1/deals", box.token, params={"person_id": person["id"]}))
    assert [d["id"] for d in mine["items"]] == [whole["id"]]
    assert [x["id"] for x in ok(api.get("/api/v1/leads", box.token))["items"]] == [lead["id"]]
    assert ok(api.get("/api/v1/persons", box.token))["items"] == [person]


def test_record_bodies_and_list_parameters_are_validated(api: Api) -> None:
    box = inbox(api)
    other = api.signup(company="Other")
    theirs = ok(api.post("/api/v1/persons", other.admin.token, json={"name": "Olga"}), 201)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("persons", {}, "name"),
        ("persons", {"name": "   "}, "name"),
        ("persons", {"name": "X", "email": "not-an-email"}, "email"),
        ("persons", {"name": "X", "phone": "call me maybe"}, "phone"),
        ("persons", {"name": "X", "phone": 14155550100}, "phone"),
        ("persons", {"name": "X", "phones": ["+1 415 555 0100", "12"]}, "phones.1"),
        # Without PHONE_DEFAULT_REGION a stored number needs its country code.
        ("persons", {"name": "X", "phone": "(415) 555-0100"}, "phone"),
        ("leads", {"title": ""}, "title"),
        ("leads", {"title": "X", "person_id": "1"}, "person_id"),
        ("leads", {"title": "X", "person_id": theirs["id"]}, "person_id"),
        ("deals", {"title": "X", "value": "5"}, "value"),
        ("deals", {"title": "X", "value": -1}, "value"),
        ("deals", {"title": "X", "value": True}, "value"),
        ("deals", {"title": "X", "currency": "EURO"}, "currency"),
        ("deals", {"title": "X", "person_id": 987654321}, "person_id"),
    ]
    for kind, body, field in cases:
        r = api.post(f"/api/v1/{kind}", box.token, json=body)
        assert field in error(r, 422, "validation_error")["fields"], (kind, body, r.text)
    for path, params, field in [
        ("/api/v1/persons", {"limit": "0"}, "limit"),
        ("/api/v1/persons", {"cursor": "bogus"}, "cursor"),
        ("/api/v1/persons", {"term": "x" * 201}, "term"),
        ("/api/v1/leads", {"person_id": "abc"}, "person_id"),
        ("/api/v1/deals", {"cursor": "WyJ4Il0"}, "cursor"),  # ["x"]
    ]:
        r = api.get(path, box.token, params=params)
        assert field in error(r, 422, "validation_error")["fields"], (path, params)
    assert ok(api.get("/api/v1/persons", box.token))["items"] == []  # nothing was stored


def test_search_finds_persons_by_name_email_and_any_formatting_of_their_phone(api: Api) -> None:
    box = inbox(api, contact="+14155550100", name="Carla")
    carla = box.create(
        "person", name="Carla Buyer", email="carla@example.com", phone="+1 415-555-0100"
    )
    bob = box.create(
        "person", name="Bob Builder", email="bob@builder.test", phone="+44 20 7946 0018"
    )
    box.create("person", name="Zed 100%_sure")

    def found(term: str) -> list[str]:
        r = api.get("/api/v1/persons", box.token, params={"term": term})
        return [p["name"] for p in ok(r)["items"]]

    # The contact's WhatsApp number finds the person, whatever way either was written.
    handle = box.conversation["contact"]["handle"]
    for term in (handle, "+1 415-555-0100", "14155550100", "(415) 555-0100", "415.555.0100"):
        assert found(term) == ["Carla Buyer"], term
    for term in ("+442079460018", "0044 20 7946 0018", "020 7946 0018", "20 7946 0018"):
        assert found(term) == ["Bob Builder"], term
    assert found("carla") == ["Carla Buyer"]
    assert found("  CARLA   buyer ") == ["Carla Buyer"]
    assert found("@example.com") == ["Carla Buyer"]
    assert found("builder") == ["Bob Builder"]
    assert found("555-0100") == ["Carla Buyer"]
    assert found("+1 415-555-0199") == []
    # LIKE wildcards in a term are plain characters.
    assert found("100%_") == ["Zed 100%_sure"]
    assert found("%") == ["Zed 100%_sure"]
    assert found("_") == ["Zed 100%_sure"]
    # No term: everyone, by id, paginated.
    page = ok(api.get("/api/v1/persons", box.token, params={"limit": 2}))
    assert [p["id"] for p in page["items"]] == [carla["id"], bob["id"]]
    assert page["next_cursor"]


def test_phone_numbers_normalise_to_e164() -> None:
    # Stored numbers: international ones anyway; national ones with a default region.
    assert to_e164("+1 415-555-0100", region=None) == "+14155550100"
    assert to_e164("+1 (415) 555-0100", region="GB") == "+14155550100"
    assert to_e164("14155550100", region=None) is None
    assert to_e164("(415) 555-0100", region=None) is None
    assert to_e164("14155550100", region="US") == "+14155550100"
    assert to_e164("(415) 555-0100", region="US") == "+14155550100"
    assert to_e164("020 7946 0018", region="GB") == "+442079460018"
    assert to_e164("call me", region="US") is None
    # Search terms: their own digits, and their E.164 digits where they parse.
    assert search_digits("(415) 555-0100", region=None) == ["4155550100"]
    assert search_digits("(415) 555-0100", region="US") == ["4155550100", "14155550100"]
    assert search_digits("020 7946 0018", region="GB") == [
        "02079460018",
        "2079460018",
        "442079460018",
    ]
    assert search_digits("0044 20 7946 0018", region=None) == ["00442079460018", "442079460018"]
    assert search_digits("carla", region="US") == []
    assert search_digits("12", region=None) == []


def test_a_default_region_lets_national_numbers_be_stored(server: LiveServer, api: Api) -> None:
    """Another node on the same database, with PHONE_DEFAULT_REGION=US."""
    box = inbox(api)
    node = LiveServer(
        settings_for(
            server.settings.database_url,
            server.settings.data_dir / f"us-{uuid.uuid4().hex[:6]}",
            PHONE_DEFAULT_REGION="US",
        ),
        server.clock,
    )
    node.start()
    try:
        us = Api(node)
        for phone in ("(415) 555-0100", "14155550100", "+1 415 555 0100"):
            person = ok(
                us.post("/api/v1/persons", box.token, json={"name": "C", "phone": phone}), 201
            )
            assert (person["phones"], person["phones_e164"]) == ([phone], ["+14155550100"])
        r = us.get("/api/v1/persons", box.token, params={"term": "(415) 555-0100"})
        assert len(ok(r)["items"]) == 3
        us.close()
    finally:
        node.stop()


def test_another_accounts_records_notes_and_links_answer_404(api: Api) -> None:
    box = inbox(api)
    mine = box.linked("person")
    other = inbox(api)
    theirs = {
        kind: other.create(kind, **({"name": "Olga"} if kind == "person" else {"title": "T"}))
        for kind in ("person", "lead", "deal")
    }
    their_link = other.linked("deal")
    token = box.token

    def same_as_missing(method: str, path: str, missing: str, **kwargs: Any) -> None:
        real = api.request(method, path, token, **kwargs)
        absent = api.request(method, missing, token, **kwargs)
        assert real.status_code == absent.status_code == 404, (path, real.text)
        assert real.json() == absent.json()

    for kind, record in theirs.items():
        same_as_missing("GET", f"/api/v1/{kind}s/{record['id']}", f"/api/v1/{kind}s/987654321")
        r = api.get("/api/v1/notes", token, params={"target": kind, "target_id": record["id"]})
        error(r, 404, "not_found")
        # Linking my conversation to their record.
        error(box.link(target=kind, target_id=record["id"]), 404, "not_found")
    note_id = their_link["note"]["id"]
    same_as_missing(
        "PATCH", f"/api/v1/notes/{note_id}", "/api/v1/notes/987654321", json={"content": "x"}
    )
    same_as_missing("DELETE", f"/api/v1/notes/{note_id}", "/api/v1/notes/987654321")
    # Their link, through my conversation or theirs.
    link_id = their_link["link"]["id"]
    error(
        api.delete(f"/api/v1/conversations/{box.conversation_id}/links/{link_id}", token),
        404,
        "not_found",
    )
    same_as_missing(
        "DELETE",
        f"/api/v1/conversations/{other.conversation_id}/links/{link_id}",
        "/api/v1/conversations/987654321/links/987654321",
    )
    error(other.link(token, target="person", target_id=theirs["person"]["id"]), 404, "not_found")
    # Lists show only one's own.
    assert [p["id"] for p in ok(api.get("/api/v1/persons", token))["items"]] == [
        mine["link"]["target_id"]
    ]
    assert ok(api.get("/api/v1/deals", token))["items"] == []
    # Nothing of theirs changed.
    assert other.notes("deal", their_link["link"]["target_id"]) == [their_link["note"]]
    assert other.get_conversation()["links"] == [their_link["link"]]


# Links ---------------------------------------------------------------------------------------


def test_linking_writes_a_note_with_the_history_assignment_and_a_link_back(
    api: Api, db: Database
) -> None:
    box = inbox(api, name="Carla Customer")
    box.reply("Yes, it is. <b>Delivery</b> takes a week & costs 20€.")
    box.inbound("Great!\nCan you deliver on Friday?")
    ok(
        api.post(
            f"/api/v1/conversations/{box.conversation_id}/assign",
            box.token,
            json={"user_id": box.team.admin.id},
        )
    )
    person = box.create("person", name="Carla Buyer")
    version = box.get_conversation()["version"]
    mark = latest_seq(db, box.team.account_id)

    result = ok(box.link(target="person", target_id=person["id"]), 201)
    link, note = result["link"], result["note"]
    assert set(link) == LINK_KEYS and set(note) == NOTE_KEYS
    assert (link["conversation_id"], link["target"], link["target_id"]) == (
        box.conversation_id,
        "person",
        person["id"],
    )
    assert (note["target"], note["target_id"], note["conversation_id"], note["link_id"]) == (
        "person",
        person["id"],
        box.conversation_id,
        link["id"],
    )
    assert note["edited"] is False
    content = note["content"]
    lines = content.splitlines()
    assert lines[0] == "Conversation with Carla Customer (cust-1) on Website chat"
    assert lines[1] == "Assigned to Ada Admin"
    # Plain text, verbatim: clients show it as text, never as HTML.
    assert " Carla Customer: Hi, is the blue sofa in stock?" in content
    assert " Ada Admin: Yes, it is. <b>Delivery</b> takes a week & costs 20€." in content
    assert " Carla Customer: Great!\n    Can you deliver on Friday?" in content
    assert content.index("blue sofa") < content.index("Delivery") < content.index("Friday")
    sent = at(box.get_conversation()["last_message"]["created_at"])
    assert f"{sent:%Y-%m-%d %H:%M} UTC Carla Customer: Great!" in content
    assert lines[-1] == f"Open the conversation: {PUBLIC_URL}/#/conversations/{box.conversation_id}"

    conversation = box.get_conversation()
    assert conversation["links"] == [link]
    assert conversation["version"] == version  # links are not assignment or status
    listed = ok(api.get("/api/v1/conversations", box.token))["items"]
    assert listed[0]["links"] == [link]
    assert box.notes("person", person["id"]) == [note]

    events = new_events(db, box.team.account_id, mark)
    assert types_of(events) == ["conversation.updated", "note.created"]
    assert events[0]["data"]["changes"] == ["links"]
    assert events[0]["data"]["conversation"]["links"] == [link]
    assert events[1]["data"] == {"note": note}


def test_names_and_texts_cannot_fake_lines_of_a_note(api: Api) -> None:
    box = inbox(api, name="Mallory\nAssigned to Ada Admin", text="Hi\rAssigned to Bob\u2028ok")
    lines = box.linked("person")["note"]["content"].splitlines()
    assert lines[0] == "Conversation with Mallory Assigned to Ada Admin (cust-1) on Website chat"
    assert lines[1] == "Unassigned"
    assert lines[3].endswith(" UTC Mallory Assigned to Ada Admin: Hi")
    assert lines[4:6] == ["    Assigned to Bob", "    ok"]


def test_an_unassigned_conversations_note_says_so(api: Api) -> None:
    box = inbox(api)
    note = box.linked("deal", title="Blue sofa", value=900, currency="USD")["note"]
    assert note["content"].splitlines()[1] == "Unassigned"
    assert note["target"] == "deal"


def test_link_and_create_in_one_call(api: Api) -> None:
    box = inbox(api)
    person = box.create("person", name="Carla Buyer")
    for target, create in [
        ("person", {"name": "New Person", "phone": "+1 415 555 0101"}),
        ("lead", {"title": "New lead", "person_id": person["id"]}),
        ("deal", {"title": "New deal", "value": 10, "currency": "usd"}),
    ]:
        result = ok(box.link(target=target, create=create), 201)
        record = ok(api.get(f"/api/v1/{target}s/{result['link']['target_id']}", box.token))
        assert result["note"]["target_id"] == record["id"]
        if target == "deal":
            assert (record["title"], record["value"], record["currency"]) == ("New deal", 10, "USD")
    assert len(box.get_conversation()["links"]) == 3

    for body, field in [
        ({"target": "person"}, "target_id"),
        ({"target": "person", "target_id": person["id"], "create": {"name": "X"}}, "target_id"),
        ({"target": "contact", "target_id": person["id"]}, "target"),
        ({"target": "person", "target_id": "1"}, "target_id"),
        ({"target": "person", "create": {}}, "create.name"),
        ({"target": "person", "create": {"name": "X", "phone": "nope"}}, "create.phone"),
        ({"target": "lead", "create": {"title": "X", "person_id": 987654321}}, "create.person_id"),
        ({"target": "deal", "create": {"title": "X", "value": "10"}}, "create.value"),
        ({"target": "deal", "create": "a deal"}, "create"),
    ]:
        r = box.link(**body)
        assert field in error(r, 422, "validation_error")["fields"], (body, r.text)
    assert len(box.get_conversation()["links"]) == 3
    assert len(ok(api.get("/api/v1/persons", box.token))["items"]) == 2


def test_linking_the_same_record_twice_is_409_but_other_conversations_may(api: Api) -> None:
    box = inbox(api)
    first = box.linked("person")
    record_id = first["link"]["target_id"]
    r = box.link(target="person", target_id=record_id)
    error(r, 409, "already_linked")
    assert box.get_conversation()["links"] == [first["link"]]
    # The same id as a lead is another record.
    lead = box.create("lead", title="Lead")
    ok(box.link(target="lead", target_id=lead["id"]), 201)
    # Another conversation links the same person.
    other = box.team.conversation_from(box.integration, contact="cust-2", name="Dan")
    path = f"/api/v1/conversations/{other['id']}/links"
    ok(api.post(path, box.token, json={"target": "person", "target_id": record_id}), 201)
    assert len(box.notes("person", record_id)) == 2


def test_links_need_shared_access_to_the_conversation(api: Api) -> None:
    box = inbox(api, shared_with=("sam",))
    nora = box.team.add("nora")
    person = box.create("person", name="Carla Buyer")
    r = box.link(nora.token, target="person", target_id=person["id"])
    error(r, 404, "not_found")
    error(box.link(nora.token, target="person", create={"name": "X"}), 404, "not_found")
    assert len(ok(api.get("/api/v1/persons", box.token))["items"]) == 1  # nothing created
    link = ok(box.link(box.team["sam"].token, target="person", target_id=person["id"]), 201)["link"]
    path = f"/api/v1/conversations/{box.conversation_id}/links/{link['id']}"
    error(api.delete(path, nora.token), 404, "not_found")
    # Notes are the whole account's, like the records.
    assert len(box.notes("person", person["id"], nora.token)) == 1


def test_unlinking_keeps_the_notes_but_stops_updating_them(api: Api, db: Database) -> None:
    box = inbox(api)
    person_link = box.linked("person")
    deal_link = box.linked("deal")
    link = person_link["link"]
    mark = latest_seq(db, box.team.account_id)
    path = f"/api/v1/conversations/{box.conversation_id}/links/{link['id']}"
    r = api.delete(path, box.token)
    assert (r.status_code, r.content) == (204, b"")
    assert box.get_conversation()["links"] == [deal_link["link"]]
    events = new_events(db, box.team.account_id, mark)
    assert types_of(events) == ["conversation.updated"]
    assert events[0]["data"]["changes"] == ["links"]
    assert events[0]["data"]["conversation"]["links"] == [deal_link["link"]]

    box.inbound("Still there?")
    (kept,) = box.notes_of(link)
    assert kept["content"] == person_link["note"]["content"]
    assert kept["link_id"] is None
    (deal_note,) = box.notes_of(deal_link["link"])
    assert "Still there?" in deal_note["content"]
    error(api.delete(path, box.token), 404, "not_found")
    # A link is only found through its own conversation.
    other = box.team.conversation_from(box.integration, contact="cust-2")
    wrong = f"/api/v1/conversations/{other['id']}/links/{deal_link['link']['id']}"
    error(api.delete(wrong, box.token), 404, "not_found")
    # Linking again starts afresh.
    again = ok(box.link(target="person", target_id=link["target_id"]), 201)
    assert len(box.notes_of(link)) == 2
    assert "Still there?" in again["note"]["content"]


def test_deleting_the_conversation_removes_its_links_but_not_the_notes(api: Api) -> None:
    box = inbox(api)
    linked = box.linked("person")
    r = api.delete(f"/api/v1/conversations/{box.conversation_id}", box.token)
    assert r.status_code == 204
    (note,) = box.notes_of(linked["link"])
    assert note["content"] == linked["note"]["content"]
    assert note["conversation_id"] == box.conversation_id
    # The contact writing again starts a fresh conversation, not linked to anything.
    fresh = box.team.conversation_from(box.integration, text="Hello again")
    assert fresh["links"] == []
    assert len(box.notes_of(linked["link"])) == 1


# Notes follow the conversation -----------------------------------------------------------------


def test_messages_in_both_directions_update_the_note_within_its_window(
    api: Api, db: Database
) -> None:
    box = inbox(api)
    linked = box.linked("person")
    note = linked["note"]
    mark = latest_seq(db, box.team.account_id)
    box.api.server.clock.advance(hours=23)
    box.inbound("Is it still available?")
    box.reply("It is!")
    (updated,) = box.notes_of(linked["link"])
    assert updated["id"] == note["id"]
    assert updated["created_at"] == note["created_at"]
    assert at(updated["updated_at"]) > at(note["updated_at"])
    assert updated["content"].index("blue sofa") < updated["content"].index("still available")
    assert updated["content"].index("still available") < updated["content"].index("It is!")
    assert " Ada Admin: It is!" in updated["content"]

    events = new_events(db, box.team.account_id, mark)
    assert types_of(events) == ["note.updated", "message.created"] * 2
    assert events[-2]["data"] == {"note": updated}
    assert events[1]["data"]["conversation"]["links"] == [linked["link"]]


def test_the_window_ends_24_hours_after_the_notes_start(api: Api) -> None:
    box = inbox(api)
    linked = box.linked("person")
    first = linked["note"]
    start = at(first["created_at"])
    box.api.server.clock.advance(hours=25)

    # Inside: one microsecond before the end (the api channel's sent_at is the message's time).
    just_inside = (start + timedelta(hours=24) - timedelta(microseconds=1)).isoformat()
    box.inbound("Just inside", sent_at=just_inside)
    (n1,) = box.notes_of(linked["link"])
    assert n1["id"] == first["id"] and "Just inside" in n1["content"]

    # Exactly at the end: a new note, starting with that message.
    box.inbound("At the end", sent_at=(start + timedelta(hours=24)).isoformat())
    n2, n1_again = box.notes_of(linked["link"])
    assert n1_again == n1
    assert n2["id"] > n1["id"] and n2["link_id"] == linked["link"]["id"]
    assert " Carla Customer: At the end" in n2["content"]
    assert "Just inside" not in n2["content"] and "blue sofa" not in n2["content"]

    # Now (25 h after the start) is inside the second note's window.
    box.reply("Noted")
    n2_again, _ = box.notes_of(linked["link"])
    assert n2_again["id"] == n2["id"] and "Noted" in n2_again["content"]

    # After the second window: a third note.
    box.api.server.clock.advance(hours=24)
    box.inbound("The next day")
    notes = box.notes_of(linked["link"])
    assert [n["id"] for n in notes][1:] == [n2["id"], n1["id"]]
    assert "The next day" in notes[0]["content"] and "Noted" not in notes[0]["content"]


def test_a_note_edited_by_a_user_is_never_overwritten(api: Api, db: Database) -> None:
    box = inbox(api)
    linked = box.linked("lead")
    note = linked["note"]
    mark = latest_seq(db, box.team.account_id)
    r = api.patch(
        f"/api/v1/notes/{note['id']}", box.token, json={"content": "  Call back Friday  "}
    )
    edited = ok(r)
    assert (edited["content"], edited["edited"], edited["id"]) == (
        "Call back Friday",
        True,
        note["id"],
    )
    assert at(edited["updated_at"]) >= at(note["updated_at"])
    events = new_events(db, box.team.account_id, mark)
    assert [(e["type"], e["data"]) for e in events] == [("note.updated", {"note": edited})]

    box.inbound("One more question")  # well inside the window
    newest, kept = box.notes_of(linked["link"])
    assert kept == edited
    assert newest["edited"] is False
    assert " Carla Customer: One more question" in newest["content"]
    assert "blue sofa" not in newest["content"]
    box.reply("Sure")
    newest_again, kept_again = box.notes_of(linked["link"])
    assert (newest_again["id"], kept_again) == (newest["id"], edited)
    assert "Sure" in newest_again["content"]

    # Editing the new note too: the next message starts a third.
    ok(api.patch(f"/api/v1/notes/{newest['id']}", box.token, json={"content": "Mine"}))
    box.inbound("Hello?")
    assert [n["content"] for n in box.notes_of(linked["link"])][1:] == ["Mine", "Call back Friday"]

    for body in ({}, {"content": ""}, {"content": "   "}, {"content": 5}):
        r = api.patch(f"/api/v1/notes/{note['id']}", box.token, json=body)
        assert "content" in error(r, 422, "validation_error")["fields"]


def test_a_deleted_note_is_not_brought_back(api: Api, db: Database) -> None:
    box = inbox(api)
    linked = box.linked("person")
    note = linked["note"]
    mark = latest_seq(db, box.team.account_id)
    r = api.delete(f"/api/v1/notes/{note['id']}", box.token)
    assert (r.status_code, r.content) == (204, b"")
    assert box.notes_of(linked["link"]) == []
    events = new_events(db, box.team.account_id, mark)
    assert types_of(events) == ["note.deleted"]
    assert events[0]["data"] == {
        "note_id": note["id"],
        "target": "person",
        "target_id": linked["link"]["target_id"],
    }
    error(api.delete(f"/api/v1/notes/{note['id']}", box.token), 404, "not_found")
    error(
        api.patch(f"/api/v1/notes/{note['id']}", box.token, json={"content": "x"}), 404, "not_found"
    )

    box.inbound("Anyone?")
    (fresh,) = box.notes_of(linked["link"])
    assert fresh["id"] != note["id"]
    assert " Carla Customer: Anyone?" in fresh["content"] and "blue sofa" not in fresh["content"]


def test_every_link_of_a_conversation_keeps_its_own_notes(api: Api, db: Database) -> None:
    box = inbox(api)
    links = [box.linked(t)["link"] for t in ("person", "lead", "deal")]
    assert box.get_conversation()["links"] == links
    ok(
        api.patch(
            f"/api/v1/notes/{box.notes_of(links[1])[0]['id']}", box.token, json={"content": "Mine"}
        )
    )
    mark = latest_seq(db, box.team.account_id)
    box.inbound("For all of you")
    assert types_of(new_events(db, box.team.account_id, mark)) == [
        "note.updated",
        "note.created",
        "note.updated",
        "message.created",
    ]
    person_notes, lead_notes, deal_notes = (box.notes_of(link) for link in links)
    assert len(person_notes) == len(deal_notes) == 1 and len(lead_notes) == 2
    assert all("For all of you" in n[0]["content"] for n in (person_notes, lead_notes, deal_notes))
    assert lead_notes[1]["content"] == "Mine"


def test_notes_list_is_newest_first_paginated_and_validated(api: Api) -> None:
    box = inbox(api)
    linked = box.linked("person")
    person_id = linked["link"]["target_id"]
    for day in range(3):
        box.api.server.clock.advance(hours=25)
        box.inbound(f"Day {day}")
    params: dict[str, Any] = {"target": "person", "target_id": person_id, "limit": 3}
    first = ok(api.get("/api/v1/notes", box.token, params=params))
    ids = [n["id"] for n in first["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3
    assert "Day 2" in first["items"][0]["content"]
    rest = ok(
        api.get("/api/v1/notes", box.token, params={**params, "cursor": first["next_cursor"]})
    )
    assert [n["id"] for n in rest["items"]] == [linked["note"]["id"]]
    assert rest["next_cursor"] is None
    for bad, field in [
        ({}, "target"),
        ({"target": "contact", "target_id": person_id}, "target"),
        ({"target": "person"}, "target_id"),
        ({"target": "person", "target_id": "x"}, "target_id"),
        ({"target": "person", "target_id": "0"}, "target_id"),
        ({"target": "person", "target_id": person_id, "limit": "101"}, "limit"),
    ]:
        r = api.get("/api/v1/notes", box.token, params=bad)
        assert field in error(r, 422, "validation_error")["fields"], bad
    error(
        api.get("/api/v1/notes", box.token, params={"target": "deal", "target_id": person_id}),
        404,
        "not_found",
    )


def test_a_long_conversation_shows_its_latest_messages(api: Api) -> None:
    box = inbox(api)
    for i in range(55):
        box.reply(f"Reply number {i}")
    content = box.linked("person")["note"]["content"]
    assert "(6 earlier messages not shown)" in content
    assert "blue sofa" not in content and "Reply number 4\n" not in content
    assert "Reply number 5\n" in content and "Reply number 54\n" in content


# Races ---------------------------------------------------------------------------------------


def test_messages_arriving_at_once_start_one_note_per_link_and_window(
    api: Api, db: Database
) -> None:
    box = inbox(api)
    person = box.linked("person")["link"]
    deal = box.linked("deal")["link"]
    box.api.server.clock.advance(hours=25)  # the next message starts new notes
    mark = latest_seq(db, box.team.account_id)
    texts = [f"Burst {i}" for i in range(8)]
    responses = fire_together([signed_inbound(box, t) for t in texts])
    assert [r.status_code for r in responses] == [200] * len(texts), [r.text for r in responses]

    for link in (person, deal):
        newest, first = box.notes_of(link)
        assert all(t in newest["content"] for t in texts), newest["content"]
        assert "blue sofa" not in newest["content"] and "Burst" not in first["content"]
    types = types_of(new_events(db, box.team.account_id, mark))
    assert types.count("note.created") == 2
    assert types.count("note.updated") == 2 * (len(texts) - 1)
    assert types.count("message.created") == len(texts)


def test_an_edit_racing_new_messages_is_never_overwritten(api: Api) -> None:
    box = inbox(api)
    for round_ in range(3):
        linked = box.linked("deal", title=f"Deal {round_}")
        note_id = linked["note"]["id"]
        edit = patch_note(box, note_id, "The user's words")
        calls = [signed_inbound(box, f"Race {round_}.{i}") for i in range(4)]
        responses = fire_together([*calls[:2], edit, *calls[2:]])
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        notes = box.notes_of(linked["link"])
        edited = next(n for n in notes if n["id"] == note_id)
        assert (edited["content"], edited["edited"]) == ("The user's words", True)
        # Messages before the edit went into the note the user then replaced; those after it
        # started one new note.
        assert len(notes) <= 2
        assert all("The user's words" not in n["content"] for n in notes if n["id"] != note_id)


# Live ----------------------------------------------------------------------------------------


def test_note_events_reach_every_user_of_the_account_live(api: Api) -> None:
    box = inbox(api, shared_with=("sam",))
    nora = box.team.add("nora")  # no access to the conversation
    url = api.server.url.replace("http://", "ws://") + "/ws"

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        sam = await WsClient.connect(url, box.team["sam"].token, name="sam")
        outsider = await WsClient.connect(url, nora.token, name="nora")
        try:
            await sam.wait_for(lambda f: f["type"] == "hello")
            await outsider.wait_for(lambda f: f["type"] == "hello")
            linked = await asyncio.to_thread(box.linked, "person")
            await asyncio.to_thread(box.inbound, "Live!")
            await sam.wait_for(lambda f: f["type"] == "message.created")
            await outsider.wait_for(lambda f: f["type"] == "note.updated")
            assert linked["note"]["id"]
            return sam.frames, outsider.frames
        finally:
            await sam.close()
            await outsider.close()

    sam_frames, nora_frames = (
        [f for f in frames if f["seq"] is not None and f["type"] != "hello"]
        for frames in asyncio.run(scenario())
    )
    assert [f["type"] for f in sam_frames] == [
        "conversation.updated",
        "note.created",
        "note.updated",
        "message.created",
    ]
    assert sam_frames[0]["data"]["conversation"]["links"][0]["target"] == "person"
    assert [f["type"] for f in nora_frames] == ["note.created", "note.updated"]
    assert "Live!" in nora_frames[-1]["data"]["note"]["content"]


@pytest.mark.parametrize("kind", ["person", "lead", "deal"])
def test_unknown_records_are_404(api: Api, kind: str) -> None:
    box = inbox(api)
    error(api.get(f"/api/v1/{kind}s/987654321", box.token), 404, "not_found")
    error(box.link(target=kind, target_id=987654321), 404, "not_found")
    error(api.get(f"/api/v1/{kind}s", None), 401, "unauthenticated")
