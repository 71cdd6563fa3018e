"""Who may call what: the authorization matrix of every endpoint in the route table.

The world of every case: account A with its admin (`admin`, the installer of integration I), a
second admin (`admin2`) and an agent (`sam`) both sharing I, an agent without access (`nora`) and a
conversation in I; account B with its own admin (`outsider`). A caller whose call may have changed
the world (a write that succeeded) leaves it behind: the next caller gets a fresh one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from server.handlers.routes import ENDPOINTS, Endpoint
from tests.support import Api, Team

CALLERS = ("anonymous", "admin", "admin2", "sam", "nora", "outsider")
SIGNED_IN = CALLERS[1:]
NOT_IN_MATRIX = frozenset({"/healthz", "/readyz", "/metrics"})  # open or metrics-token only
ERROR_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}
PASSWORD = "correct horse"


@dataclass
class World:
    api: Api
    a: Team
    b: Team
    integration: dict[str, Any]
    conversation_id: int
    # A's person, lead and deal, the conversation's link to the person and its note.
    crm: dict[str, int] = field(default_factory=dict)

    def member(self, caller: str) -> Any:
        return self.b.admin if caller == "outsider" else self.a[caller]

    def token(self, caller: str) -> str | None:
        return None if caller == "anonymous" else self.member(caller).token

    def user_id(self, caller: str) -> int:
        user_id: int = self.member(caller).id
        return user_id


def build_world(api: Api) -> World:
    a = api.signup(company="A", name="Ada Admin")
    a.add("admin2", role="admin")
    a.add("sam")
    a.add("nora")
    integration = a.install(shared_with=["sam", "admin2"])
    r = a.inbound(integration, text="Hello from Carla")
    assert r.status_code == 200, r.text
    b = api.signup(company="B", name="Olga Outsider")
    world = World(api, a, b, integration, int(r.json()["conversation_id"]))
    add_crm(world)
    return world


def add_crm(world: World) -> None:
    token = world.a.admin.token
    for kind, body in (
        ("person", {"name": "Pat"}),
        ("lead", {"title": "L"}),
        ("deal", {"title": "D"}),
    ):
        r = world.api.post(f"/api/v1/{kind}s", token, json=body)
        assert r.status_code == 201, r.text
        world.crm[kind] = r.json()["id"]
    path = f"/api/v1/conversations/{world.conversation_id}/links"
    r = world.api.post(path, token, json={"target": "person", "target_id": world.crm["person"]})
    assert r.status_code == 201, r.text
    world.crm["link"], world.crm["note"] = r.json()["link"]["id"], r.json()["note"]["id"]


def snapshot(world: World) -> dict[str, Any]:
    """Everything of account A a refused call must leave as it was, as A's installer sees it."""
    api, token = world.api, world.a.admin.token
    conv = f"/api/v1/conversations/{world.conversation_id}"
    paths = [
        "/api/v1/users?limit=100",
        "/api/v1/integrations",
        f"/api/v1/integrations/{world.integration['id']}",
        "/api/v1/conversations",
        conv,
        f"{conv}/messages",
        "/api/v1/persons",
        "/api/v1/leads",
        "/api/v1/deals",
        f"/api/v1/notes?target=person&target_id={world.crm['person']}",
    ]
    result: dict[str, Any] = {}
    for path in paths:
        r = api.get(path, token)
        result[path] = (r.status_code, r.json())
    return result


# What each case sends, and what it checks when the call succeeds ---------------------------

Body = Callable[[World, str], Any]
Check = Callable[[World, str, httpx.Response], None]


@dataclass(frozen=True)
class Case:
    expect: dict[str, int]
    body: Body | None = None
    check: Check | None = None
    params: dict[str, str] = field(default_factory=dict)


def signed_in(status: int, **overrides: int) -> dict[str, int]:
    """`status` for every signed-in caller (unless overridden); 401 for the anonymous one."""
    return {"anonymous": 401, **dict.fromkeys(SIGNED_IN, status), **overrides}


def admins_only(status: int, *, outsider: int) -> dict[str, int]:
    return signed_in(status, sam=403, nora=403, outsider=outsider)


def shared_only(status: int) -> dict[str, int]:
    """Conversation endpoints of I: shared access, else 404 (never revealing it exists)."""
    return signed_in(status, nora=404, outsider=404)


def ids_of(r: httpx.Response) -> list[int]:
    return [item["id"] for item in r.json()["items"]]


def visible_integrations(world: World, caller: str) -> list[int]:
    return [world.integration["id"]] if caller in ("admin", "admin2", "sam") else []


def visible_conversations(world: World, caller: str) -> list[int]:
    return [world.conversation_id] if caller in ("admin", "admin2", "sam") else []


def account_user_ids(world: World, caller: str) -> set[int]:
    team = world.b if caller == "outsider" else world.a
    return {m.id for m in team.members.values()}


def check_signup(world: World, caller: str, r: httpx.Response) -> None:
    body = r.json()
    assert body["user"]["role"] == "admin"
    assert body["account"]["id"] not in (world.a.account_id, world.b.account_id)


def check_login(world: World, caller: str, r: httpx.Response) -> None:
    assert r.json()["user"]["id"] == world.a.admin.id


def check_me(world: World, caller: str, r: httpx.Response) -> None:
    assert r.json()["id"] == world.user_id(caller)


def check_users(world: World, caller: str, r: httpx.Response) -> None:
    assert set(ids_of(r)) == account_user_ids(world, caller)


def check_created_user(world: World, caller: str, r: httpx.Response) -> None:
    new_id = r.json()["user"]["id"]
    listed = world.api.get("/api/v1/users?limit=100", world.token(caller))
    assert new_id in ids_of(listed)
    assert set(ids_of(listed)) - {new_id} == account_user_ids(world, caller)


def check_availability(world: World, caller: str, r: httpx.Response) -> None:
    assert (r.json()["id"], r.json()["available"]) == (world.user_id(caller), False)


def check_notification_settings(world: World, caller: str, r: httpx.Response) -> None:
    assert {"desktop", "email"} <= set(r.json())


def check_changed_notification_settings(world: World, caller: str, r: httpx.Response) -> None:
    assert r.json()["desktop"]["message_assigned_to_others"] is True


def check_tokens(world: World, caller: str, r: httpx.Response) -> None:
    items = r.json()["items"]
    assert [t["current"] for t in items].count(True) == 1
    assert all("token" not in t and "token_hash" not in t for t in items)


def check_new_token(world: World, caller: str, r: httpx.Response) -> None:
    me = world.api.get("/api/v1/me", r.json()["token"])
    assert me.json()["id"] == world.user_id(caller)


def admins_token_id(world: World) -> int:
    r = world.api.get("/api/v1/me/tokens", world.a.admin.token)
    token_id: int = next(t["id"] for t in r.json()["items"] if t["current"])
    return token_id


def check_notifications(world: World, caller: str, r: httpx.Response) -> None:
    # The conversation's first message was unassigned: everyone with shared access heard of it.
    expected = [world.conversation_id] if caller in ("admin", "admin2", "sam") else []
    assert [n["conversation_id"] for n in r.json()["items"]] == expected


def check_unread_notifications(world: World, caller: str, r: httpx.Response) -> None:
    assert r.json() == {"unread": 1 if caller in ("admin", "admin2", "sam") else 0}


def check_notifications_read(world: World, caller: str, r: httpx.Response) -> None:
    assert r.json()["unread"] == 0
    unread = world.api.get("/api/v1/notifications/unread-count", world.token(caller))
    assert unread.json() == {"unread": 0}
    if caller != "admin":  # the others' notifications are untouched
        others = world.api.get("/api/v1/notifications/unread-count", world.a.admin.token)
        assert others.json() == {"unread": 1}


def check_installed(world: World, caller: str, r: httpx.Response) -> None:
    body = r.json()
    assert body["installed_by"] == world.user_id(caller)
    assert body["id"] != world.integration["id"]


def check_integration_list(world: World, caller: str, r: httpx.Response) -> None:
    assert ids_of(r) == visible_integrations(world, caller)


def check_integration(world: World, caller: str, r: httpx.Response) -> None:
    assert r.json()["id"] == world.integration["id"]
    assert r.json()["installed_by"] == world.a.admin.id


def check_patched(world: World, caller: str, r: httpx.Response) -> None:
    assert (r.json()["id"], r.json()["name"]) == (world.integration["id"], "Renamed")


def check_integration_gone(world: World, caller: str, r: httpx.Response) -> None:
    path = f"/api/v1/integrations/{world.integration['id']}"
    assert world.api.get(path, world.a.admin.token).status_code == 404


def check_conversation_list(world: World, caller: str, r: httpx.Response) -> None:
    assert ids_of(r) == visible_conversations(world, caller)


def check_summary(world: World, caller: str, r: httpx.Response) -> None:
    sections = r.json()["sections"]
    assert sections["unassigned"]["count"] == len(visible_conversations(world, caller))
    assert sum(s["count"] for s in sections.values()) == len(visible_conversations(world, caller))


def check_conversation(world: World, caller: str, r: httpx.Response) -> None:
    assert r.json()["id"] == world.conversation_id
    assert r.json()["integration_id"] == world.integration["id"]


def check_messages(world: World, caller: str, r: httpx.Response) -> None:
    items = r.json()["items"]
    assert [m["text"] for m in items] == ["Hello from Carla"]
    assert all(m["conversation_id"] == world.conversation_id for m in items)


def check_sent(world: World, caller: str, r: httpx.Response) -> None:
    body = r.json()
    assert (body["conversation_id"], body["direction"], body["text"]) == (
        world.conversation_id,
        "outbound",
        "Hi Carla",
    )
    assert body["sender"]["id"] == world.user_id(caller)


def check_read(world: World, caller: str, r: httpx.Response) -> None:
    path = f"/api/v1/conversations/{world.conversation_id}"
    assert world.api.get(path, world.token(caller)).json()["unread_count"] == 0


def check_assigned(world: World, caller: str, r: httpx.Response) -> None:
    check_conversation(world, caller, r)
    assert r.json()["assignee_id"] == world.a["sam"].id


def check_unassigned(world: World, caller: str, r: httpx.Response) -> None:
    check_conversation(world, caller, r)
    assert r.json()["assignee_id"] is None


def check_closed(world: World, caller: str, r: httpx.Response) -> None:
    check_conversation(world, caller, r)
    assert r.json()["status"] == "closed"


def check_open(world: World, caller: str, r: httpx.Response) -> None:
    check_conversation(world, caller, r)
    assert r.json()["status"] == "open"


def check_conversation_gone(world: World, caller: str, r: httpx.Response) -> None:
    path = f"/api/v1/conversations/{world.conversation_id}"
    assert world.api.get(path, world.a.admin.token).status_code == 404


def crm_list(kind: str) -> Check:
    def check(world: World, caller: str, r: httpx.Response) -> None:
        assert ids_of(r) == ([] if caller == "outsider" else [world.crm[kind]])

    return check


def crm_one(kind: str) -> Check:
    def check(world: World, caller: str, r: httpx.Response) -> None:
        assert r.json()["id"] == world.crm[kind]

    return check


def crm_created(kind: str) -> Check:
    def check(world: World, caller: str, r: httpx.Response) -> None:
        new_id = r.json()["id"]
        assert new_id != world.crm[kind]
        assert world.api.get(f"/api/v1/{kind}s/{new_id}", world.token(caller)).status_code == 200

    return check


def check_linked(world: World, caller: str, r: httpx.Response) -> None:
    link = r.json()["link"]
    assert (link["target"], link["target_id"]) == ("lead", world.crm["lead"])
    conv = world.api.get(f"/api/v1/conversations/{world.conversation_id}", world.token(caller))
    assert [x["target"] for x in conv.json()["links"]] == ["person", "lead"]


def check_unlinked(world: World, caller: str, r: httpx.Response) -> None:
    conv = world.api.get(f"/api/v1/conversations/{world.conversation_id}", world.a.admin.token)
    assert conv.json()["links"] == []


def check_notes(world: World, caller: str, r: httpx.Response) -> None:
    assert ids_of(r) == [world.crm["note"]]


def check_note_edited(world: World, caller: str, r: httpx.Response) -> None:
    assert (r.json()["id"], r.json()["content"]) == (world.crm["note"], "Edited")


def check_note_gone(world: World, caller: str, r: httpx.Response) -> None:
    notes = world.api.get(
        "/api/v1/notes",
        world.a.admin.token,
        params={"target": "person", "target_id": world.crm["person"]},
    )
    assert ids_of(notes) == []


def new_account(world: World, caller: str) -> dict[str, Any]:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    return {"company_name": "New", "name": "Nina New", "email": email, "password": PASSWORD}


def new_user(world: World, caller: str) -> dict[str, Any]:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    return {"name": "Nick New", "email": email, "password": PASSWORD, "role": "agent"}


def new_integration(world: World, caller: str) -> dict[str, Any]:
    return {
        "provider": "api",
        "name": "Another channel",
        "config": {"webhook_secret": "another-secret"},
        "shared_with": [],
    }


def constant(value: Any) -> Body:
    return lambda world, caller: value


CONV = "/api/v1/conversations/{id:int}"
INTEGRATION = "/api/v1/integrations/{id:int}"

EXPECTATIONS: dict[tuple[str, str], Case] = {
    # Accounts, users, roles
    ("POST", "/api/v1/signup"): Case(
        dict.fromkeys(CALLERS, 201), body=new_account, check=check_signup
    ),
    ("POST", "/api/v1/login"): Case(
        dict.fromkeys(CALLERS, 200),
        body=lambda world, caller: {"email": world.a.admin.email, "password": PASSWORD},
        check=check_login,
    ),
    ("POST", "/api/v1/logout"): Case(signed_in(204)),
    ("GET", "/api/v1/me"): Case(signed_in(200), check=check_me),
    ("GET", "/api/v1/users"): Case(signed_in(200), check=check_users),
    ("POST", "/api/v1/users"): Case(
        admins_only(201, outsider=201), body=new_user, check=check_created_user
    ),
    ("PUT", "/api/v1/me/availability"): Case(
        signed_in(200), body=constant({"available": False}), check=check_availability
    ),
    ("GET", "/api/v1/me/notification-settings"): Case(
        signed_in(200), check=check_notification_settings
    ),
    ("PUT", "/api/v1/me/notification-settings"): Case(
        signed_in(200),
        body=constant({"desktop": {"message_assigned_to_others": True}}),
        check=check_changed_notification_settings,
    ),
    # Tokens: each user's own; the one to revoke is A's admin's (in use by that very call).
    ("GET", "/api/v1/me/tokens"): Case(signed_in(200), check=check_tokens),
    ("POST", "/api/v1/me/tokens"): Case(
        signed_in(201), body=constant({"name": "CI"}), check=check_new_token
    ),
    ("DELETE", "/api/v1/me/tokens/{id:int}"): Case(signed_in(404, admin=204)),
    # Notifications: each user's own
    ("GET", "/api/v1/notifications"): Case(signed_in(200), check=check_notifications),
    ("GET", "/api/v1/notifications/unread-count"): Case(
        signed_in(200), check=check_unread_notifications
    ),
    ("POST", "/api/v1/notifications/read"): Case(
        signed_in(200), body=constant({}), check=check_notifications_read
    ),
    # Messaging integrations: admins see all of their account's, agents the shared ones.
    ("POST", "/api/v1/integrations"): Case(
        admins_only(201, outsider=201), body=new_integration, check=check_installed
    ),
    ("GET", "/api/v1/integrations"): Case(signed_in(200), check=check_integration_list),
    ("GET", INTEGRATION): Case(signed_in(200, nora=404, outsider=404), check=check_integration),
    ("PATCH", INTEGRATION): Case(
        admins_only(200, outsider=404), body=constant({"name": "Renamed"}), check=check_patched
    ),
    ("DELETE", INTEGRATION): Case(admins_only(204, outsider=404), check=check_integration_gone),
    # Conversations of I
    ("GET", "/api/v1/conversations"): Case(signed_in(200), check=check_conversation_list),
    ("GET", "/api/v1/inbox/summary"): Case(signed_in(200), check=check_summary),
    ("GET", CONV): Case(shared_only(200), check=check_conversation),
    ("GET", CONV + "/messages"): Case(shared_only(200), check=check_messages),
    ("POST", CONV + "/messages"): Case(
        shared_only(201), body=constant({"text": "Hi Carla"}), check=check_sent
    ),
    ("POST", CONV + "/read"): Case(shared_only(204), check=check_read),
    ("POST", CONV + "/assign"): Case(
        shared_only(200),
        body=lambda world, caller: {"user_id": world.a["sam"].id},
        check=check_assigned,
    ),
    ("POST", CONV + "/unassign"): Case(shared_only(200), body=constant({}), check=check_unassigned),
    ("POST", CONV + "/close"): Case(shared_only(200), check=check_closed),
    ("POST", CONV + "/reopen"): Case(shared_only(200), check=check_open),
    # CRM: records and notes are the account's; links need shared access to the conversation.
    ("POST", "/api/v1/persons"): Case(
        signed_in(201), body=constant({"name": "Pat New"}), check=crm_created("person")
    ),
    ("GET", "/api/v1/persons"): Case(signed_in(200), check=crm_list("person")),
    ("GET", "/api/v1/persons/{id:int}"): Case(
        signed_in(200, outsider=404), check=crm_one("person")
    ),
    ("POST", "/api/v1/leads"): Case(
        signed_in(201), body=constant({"title": "New lead"}), check=crm_created("lead")
    ),
    ("GET", "/api/v1/leads"): Case(signed_in(200), check=crm_list("lead")),
    ("GET", "/api/v1/leads/{id:int}"): Case(signed_in(200, outsider=404), check=crm_one("lead")),
    ("POST", "/api/v1/deals"): Case(
        signed_in(201), body=constant({"title": "New deal", "value": 10}), check=crm_created("deal")
    ),
    ("GET", "/api/v1/deals"): Case(signed_in(200), check=crm_list("deal")),
    ("GET", "/api/v1/deals/{id:int}"): Case(signed_in(200, outsider=404), check=crm_one("deal")),
    ("POST", CONV + "/links"): Case(
        shared_only(201),
        body=lambda world, caller: {"target": "lead", "target_id": world.crm["lead"]},
        check=check_linked,
    ),
    ("DELETE", CONV + "/links/{link_id:int}"): Case(shared_only(204), check=check_unlinked),
    ("GET", "/api/v1/notes"): Case(signed_in(200, outsider=404), check=check_notes),
    ("PATCH", "/api/v1/notes/{id:int}"): Case(
        signed_in(200, outsider=404), body=constant({"content": "Edited"}), check=check_note_edited
    ),
    ("DELETE", "/api/v1/notes/{id:int}"): Case(signed_in(204, outsider=404), check=check_note_gone),
    # Only the installer deletes; shared users get 403, everyone else 404.
    ("DELETE", CONV): Case(
        signed_in(204, admin2=403, sam=403, nora=404, outsider=404),
        check=check_conversation_gone,
    ),
}


def in_matrix(endpoint: Endpoint) -> bool:
    """Every route except the operations endpoints and the signature-checked webhooks."""
    return endpoint.path not in NOT_IN_MATRIX and not endpoint.path.startswith("/webhooks/")


ROUTES = [e for e in ENDPOINTS if in_matrix(e)]


def route_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


def concrete_path(world: World, path: str) -> str:
    if path.startswith("/api/v1/integrations/"):
        return path.replace("{id:int}", str(world.integration["id"]))
    if path.startswith("/api/v1/conversations/"):
        path = path.replace("{link_id:int}", str(world.crm["link"]))
        return path.replace("{id:int}", str(world.conversation_id))
    for kind in ("person", "lead", "deal", "note"):
        if path.startswith(f"/api/v1/{kind}s/"):
            return path.replace("{id:int}", str(world.crm[kind]))
    if path.startswith("/api/v1/me/tokens/"):
        return path.replace("{id:int}", str(admins_token_id(world)))
    if path == "/api/v1/notes":  # the list needs its record
        return f"{path}?target=person&target_id={world.crm['person']}"
    assert "{" not in path, f"no id known for {path}: extend concrete_path"
    return path


# Tests ---------------------------------------------------------------------------------------


def test_the_matrix_covers_exactly_the_route_table() -> None:
    routes = {(e.method, e.path) for e in ROUTES}
    missing = sorted(routes - set(EXPECTATIONS))
    stale = sorted(set(EXPECTATIONS) - routes)
    assert not missing, f"routes without authorization expectations: {missing}"
    assert not stale, f"expectations for routes that no longer exist: {stale}"
    for key, case in EXPECTATIONS.items():
        assert set(case.expect) == set(CALLERS), f"{key}: expectations for every caller"


def call(world: World, endpoint: Endpoint, case: Case, caller: str) -> httpx.Response:
    # (no empty `params`: httpx would drop a query that concrete_path put into the path)
    kwargs: dict[str, Any] = {"params": case.params} if case.params else {}
    if case.body is not None:
        kwargs["json"] = case.body(world, caller)
    path = concrete_path(world, endpoint.path)
    return world.api.request(endpoint.method, path, world.token(caller), **kwargs)


def problems_with(
    world: World, case: Case, caller: str, r: httpx.Response, before: dict[str, Any] | None
) -> list[str]:
    """What is wrong with the answer `caller` got (nothing if it is what the matrix says)."""
    expected = case.expect[caller]
    if r.status_code != expected:
        return [f"expected {expected}, got {r.status_code}: {r.text[:300]}"]
    problems: list[str] = []
    if expected >= 400:
        body = r.json()
        error = body.get("error") if isinstance(body, dict) else None
        if set(body) != {"error"} or not isinstance(error, dict):
            return [f"not an error envelope: {body}"]
        if error.get("code") != ERROR_CODES[expected]:
            problems.append(f"error code {error.get('code')!r}, wanted {ERROR_CODES[expected]!r}")
        if not isinstance(error.get("message"), str) or not error["message"]:
            problems.append(f"no error message: {body}")
        if snapshot(world) != before:
            problems.append("the refused call changed something")
    elif expected == 204:
        if r.content != b"":
            problems.append(f"204 with a body: {r.content[:200]!r}")
    elif case.check is not None:
        try:
            case.check(world, caller, r)
        except AssertionError as exc:
            problems.append(f"wrong answer ({exc}): {r.text[:300]}")
    return problems


@pytest.mark.parametrize("endpoint", ROUTES, ids=route_id)
def test_authorization(api: Api, endpoint: Endpoint) -> None:
    """Every caller gets exactly the matrix's status (and error code) on this endpoint.

    A world serves callers until a call may have changed it (a write that succeeded, or any
    unexpected answer); then the next caller gets a fresh one. Refused calls must change
    nothing, which is checked against a snapshot of account A.
    """
    case = EXPECTATIONS.get((endpoint.method, endpoint.path))
    if case is None:
        pytest.fail(f"{route_id(endpoint)} has no entry in EXPECTATIONS: add one")
    failures: list[str] = []
    world: World | None = None
    before: dict[str, Any] | None = None
    for caller in CALLERS:
        if world is None:
            world = build_world(api)
            before = snapshot(world)
        r = call(world, endpoint, case, caller)
        problems = problems_with(world, case, caller, r, before)
        failures.extend(f"{caller}: {p}" for p in problems)
        if problems or (endpoint.method != "GET" and r.status_code < 400):
            world = None
    assert not failures, f"{route_id(endpoint)}:\n" + "\n".join(failures)


ID_ROUTES = [e for e in ROUTES if "{id:int}" in e.path]


@pytest.mark.parametrize("endpoint", ID_ROUTES, ids=route_id)
def test_another_accounts_ids_look_like_missing_ones(api: Api, endpoint: Endpoint) -> None:
    """The outsider learns nothing from A's ids: the same 404 as for an id that never existed."""
    case = EXPECTATIONS[(endpoint.method, endpoint.path)]
    world = build_world(api)
    real = call(world, endpoint, case, "outsider")
    kwargs: dict[str, Any] = {"params": case.params}
    if case.body is not None:
        kwargs["json"] = case.body(world, "outsider")
    token = world.token("outsider")
    missing_path = endpoint.path.replace("{id:int}", "987654321").replace(
        "{link_id:int}", "987654321"
    )
    missing = api.request(endpoint.method, missing_path, token, **kwargs)
    assert real.status_code == missing.status_code == 404, (real.text, missing.text)
    assert real.json() == missing.json()
    assert real.json()["error"]["code"] == "not_found"
