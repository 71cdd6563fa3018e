"""Accounts, users, sessions and per-user settings (API.md: "Accounts, users, roles")."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support import Api, LiveServer, Team

PASSWORD = "correct horse"  # what tests.support gives every user it creates
ALLOWED_ORIGIN = "http://testserver.local"  # the origin of the tests' PUBLIC_URL
USER_KEYS = {"id", "name", "email", "role", "available", "online", "last_seen_at"}
NOTIFICATION_KINDS = {
    "assigned_to_me",
    "message_assigned_to_me",
    "message_assigned_to_others",
    "message_unassigned",
}


# Helpers -------------------------------------------------------------------------------------


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error envelope with `status` and `code`; returns the inner error."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


def assert_validation(r: httpx.Response, *fields: str) -> dict[str, Any]:
    error = assert_error(r, 422, "validation_error")
    assert isinstance(error.get("fields"), dict), error
    for name in fields:
        assert name in error["fields"], error
    return error


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def set_cookie_headers(r: httpx.Response) -> list[str]:
    return r.headers.get_list("set-cookie")


def session_cookie(r: httpx.Response) -> tuple[str, str, list[str]]:
    """(name, value, attributes) of the one cookie a login sets."""
    headers = set_cookie_headers(r)
    assert len(headers) == 1, headers
    first, *attributes = (part.strip() for part in headers[0].split(";"))
    name, _, value = first.partition("=")
    assert name and value, headers
    return name, value, attributes


def login(api: Api, email: str, password: str = PASSWORD) -> httpx.Response:
    """POST /login without letting the client keep the cookie: every cookie sent is explicit."""
    r = api.post("/api/v1/login", json={"email": email, "password": password})
    api.http.cookies.clear()
    return r


def cookie_session(api: Api, email: str) -> dict[str, str]:
    """The Cookie header of a fresh session of `email`."""
    r = login(api, email)
    assert r.status_code == 200, r.text
    name, value, _ = session_cookie(r)
    return {"Cookie": f"{name}={value}"}


def me(api: Api, token: str) -> dict[str, Any]:
    r = api.get("/api/v1/me", token)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def all_users(api: Api, token: str) -> list[dict[str, Any]]:
    r = api.get("/api/v1/users?limit=100", token)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def create_user(api: Api, team: Team, **overrides: Any) -> httpx.Response:
    body = {"name": "Bob", "email": unique_email("bob"), "password": PASSWORD, "role": "agent"}
    body.update(overrides)
    return api.post("/api/v1/users", team.admin.token, json=body)


# Signup --------------------------------------------------------------------------------------


def test_signup_answers_201_with_account_admin_user_and_token(api: Api) -> None:
    email = unique_email("founder")
    r = api.post(
        "/api/v1/signup",
        json={"company_name": "Acme", "name": "Ada Admin", "email": email, "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) >= {"account", "user", "token"}
    assert isinstance(body["account"]["id"], int)
    user = body["user"]
    assert set(user) >= USER_KEYS
    assert isinstance(user["id"], int)
    assert user["name"] == "Ada Admin"
    assert user["email"] == email
    assert user["role"] == "admin"
    assert user["available"] is True
    assert user["online"] is False
    assert isinstance(body["token"], str) and body["token"]
    # The token is a working bearer token of that user.
    assert me(api, body["token"])["id"] == user["id"]


def test_signup_with_a_taken_email_is_409_email_taken(api: Api) -> None:
    team = api.signup(email="taken@example.com")
    for email in ("taken@example.com", "TAKEN@Example.COM"):
        r = api.post(
            "/api/v1/signup",
            json={"company_name": "Other", "name": "Eve", "email": email, "password": PASSWORD},
        )
        assert_error(r, 409, "email_taken")
    # Nothing was created: the original admin is still the only user with that email.
    assert [u["email"] for u in all_users(api, team.admin.token)] == ["taken@example.com"]
    r = login(api, "taken@example.com")
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == team.admin.id


def test_emails_are_unique_across_accounts(api: Api) -> None:
    first = api.signup(company="First")
    bob = first.add("bob")
    second = api.signup(company="Second")
    for email in (bob.email, bob.email.upper(), first.admin.email.upper()):
        assert_error(create_user(api, second, email=email), 409, "email_taken")
    assert [u["id"] for u in all_users(api, second.admin.token)] == [second.admin.id]
    # ... and within one account.
    assert_error(create_user(api, first, email=bob.email), 409, "email_taken")


# Login, sessions, logout ---------------------------------------------------------------------


def test_login_answers_user_and_token_and_sets_a_httponly_lax_session_cookie(api: Api) -> None:
    team = api.signup()
    r = login(api, team.admin.email)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"user", "token"}
    assert body["user"]["id"] == team.admin.id
    assert set(body["user"]) >= USER_KEYS
    assert isinstance(body["token"], str) and body["token"]
    _, _, attributes = session_cookie(r)
    lowered = [a.lower() for a in attributes]
    assert "httponly" in lowered, attributes
    assert "samesite=lax" in lowered, attributes
    # The returned token is a working bearer token.
    assert me(api, body["token"])["id"] == team.admin.id


def test_login_email_is_case_insensitive(api: Api) -> None:
    team = api.signup()
    r = login(api, team.admin.email.upper())
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == team.admin.id


@pytest.mark.parametrize("wrong", ["password", "email"])
def test_login_with_bad_credentials_is_401(api: Api, wrong: str) -> None:
    team = api.signup()
    email = team.admin.email if wrong == "password" else unique_email("nobody")
    password = "wrong password" if wrong == "password" else PASSWORD
    r = login(api, email, password)
    assert_error(r, 401, "unauthenticated")
    assert "token" not in r.json()
    assert set_cookie_headers(r) == []


def test_cookie_authenticated_get_works(api: Api) -> None:
    team = api.signup()
    cookie = cookie_session(api, team.admin.email)
    r = api.get("/api/v1/me", headers=cookie)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == team.admin.id
    r = api.get("/api/v1/users", headers=cookie)
    assert r.status_code == 200, r.text
    assert [u["id"] for u in r.json()["items"]] == [team.admin.id]


def test_no_credentials_is_401(api: Api) -> None:
    assert_error(api.get("/api/v1/me"), 401, "unauthenticated")
    assert_error(api.get("/api/v1/me", "sb_not-a-real-token"), 401, "unauthenticated")


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "http://evil.example",
        "http://testserver.local.evil.example",
        "https://testserver.local",
    ],
)
def test_cookie_authenticated_write_without_an_allowed_origin_is_403(
    api: Api, origin: str | None
) -> None:
    team = api.signup()
    headers = cookie_session(api, team.admin.email)
    if origin is not None:
        headers["Origin"] = origin
    r = api.put("/api/v1/me/availability", json={"available": False}, headers=headers)
    assert_error(r, 403, "forbidden")
    assert me(api, team.admin.token)["available"] is True  # nothing changed


def test_cookie_authenticated_write_with_the_public_origin_works(api: Api) -> None:
    team = api.signup()
    headers = {**cookie_session(api, team.admin.email), "Origin": ALLOWED_ORIGIN}
    r = api.put("/api/v1/me/availability", json={"available": False}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == team.admin.id
    assert r.json()["available"] is False
    assert me(api, team.admin.token)["available"] is False


def test_bearer_writes_need_no_origin(api: Api) -> None:
    team = api.signup()
    r = api.put("/api/v1/me/availability", team.admin.token, json={"available": False})
    assert r.status_code == 200, r.text
    r = api.put(
        "/api/v1/me/availability",
        team.admin.token,
        json={"available": True},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 200, r.text


def test_a_tampered_session_cookie_is_401(api: Api) -> None:
    team = api.signup()
    r = login(api, team.admin.email)
    name, value, _ = session_cookie(r)
    token = r.json()["token"]
    # Not the last character: its low bits are base64 padding, which decoders ignore.
    mid = value[-5]
    tampered = [
        value[:-5] + ("A" if mid != "A" else "Q") + value[-4:],  # a broken signature
        value[:5] + ("x" if value[5] != "x" else "y") + value[6:],  # a changed payload
        token,  # the bare token, unsigned
        "garbage",
    ]
    for bad in tampered:
        r = api.get("/api/v1/me", headers={"Cookie": f"{name}={bad}"})
        assert_error(r, 401, "unauthenticated")
    # The genuine cookie still works.
    assert api.get("/api/v1/me", headers={"Cookie": f"{name}={value}"}).status_code == 200


def test_logout_of_a_cookie_session_ends_it(api: Api) -> None:
    team = api.signup()
    cookie = cookie_session(api, team.admin.email)
    other = cookie_session(api, team.admin.email)  # a second session of the same user
    r = api.post("/api/v1/logout", headers={**cookie, "Origin": ALLOWED_ORIGIN})
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(api.get("/api/v1/me", headers=cookie), 401, "unauthenticated")
    # Other sessions and the API token are not affected.
    assert api.get("/api/v1/me", headers=other).status_code == 200
    assert me(api, team.admin.token)["id"] == team.admin.id


def test_logout_with_a_bearer_token_revokes_it(api: Api) -> None:
    team = api.signup()
    r = login(api, team.admin.email)
    token = r.json()["token"]
    assert me(api, token)["id"] == team.admin.id
    r = api.post("/api/v1/logout", token)
    assert r.status_code == 204, r.text
    assert_error(api.get("/api/v1/me", token), 401, "unauthenticated")
    assert_error(api.post("/api/v1/logout", token), 401, "unauthenticated")
    assert me(api, team.admin.token)["id"] == team.admin.id


def test_logout_needs_authentication(api: Api) -> None:
    assert_error(api.post("/api/v1/logout"), 401, "unauthenticated")


def test_logout_by_cookie_without_an_allowed_origin_is_403(api: Api) -> None:
    team = api.signup()
    cookie = cookie_session(api, team.admin.email)
    assert_error(api.post("/api/v1/logout", headers=cookie), 403, "forbidden")
    assert api.get("/api/v1/me", headers=cookie).status_code == 200


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_users_created_by_an_admin_get_a_working_token_and_can_log_in(api: Api, role: str) -> None:
    team = api.signup()
    email = unique_email("bob")
    r = create_user(api, team, name="Bob Builder", email=email, role=role)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) >= {"user", "token"}
    user = body["user"]
    assert set(user) >= USER_KEYS
    assert (user["name"], user["email"], user["role"]) == ("Bob Builder", email, role)
    assert user["available"] is True
    assert user["online"] is False
    assert (me(api, body["token"])["id"], me(api, body["token"])["role"]) == (user["id"], role)
    r = login(api, email)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == user["id"]


# Login rate limiting -------------------------------------------------------------------------


def test_ten_failed_logins_lock_the_email_for_fifteen_minutes(api: Api, server: LiveServer) -> None:
    team = api.signup()
    bystander = team.add("bob")
    for _ in range(10):
        assert_error(login(api, team.admin.email, "wrong password"), 401, "unauthenticated")
    # The 11th attempt is refused even with the right password.
    r = login(api, team.admin.email)
    assert_error(r, 429, "rate_limited")
    retry_after = r.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), r.headers
    assert 0 < int(retry_after) <= 15 * 60
    assert "token" not in r.json()
    assert set_cookie_headers(r) == []
    # Other emails are not affected, and existing tokens keep working.
    assert login(api, bystander.email).status_code == 200
    assert me(api, team.admin.token)["id"] == team.admin.id
    # Still locked a bit later, then free again once the window has passed.
    server.clock.advance(minutes=5)
    assert_error(login(api, team.admin.email), 429, "rate_limited")
    server.clock.advance(minutes=11)
    r = login(api, team.admin.email)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == team.admin.id


def test_failed_logins_count_for_the_email_whatever_its_case(api: Api) -> None:
    team = api.signup()
    for i in range(10):
        email = team.admin.email.upper() if i % 2 else team.admin.email
        assert_error(login(api, email, "wrong password"), 401, "unauthenticated")
    assert_error(login(api, team.admin.email), 429, "rate_limited")


def test_nine_failures_then_success_does_not_lock(api: Api) -> None:
    team = api.signup()
    for _ in range(9):
        assert_error(login(api, team.admin.email, "wrong password"), 401, "unauthenticated")
    assert login(api, team.admin.email).status_code == 200


# Me and users --------------------------------------------------------------------------------


def test_me_is_the_calling_user(api: Api) -> None:
    team = api.signup(name="Ada Admin")
    bob = team.add("bob")
    body = me(api, team.admin.token)
    assert set(body) >= USER_KEYS
    assert (body["id"], body["name"], body["email"], body["role"]) == (
        team.admin.id,
        "Ada Admin",
        team.admin.email,
        "admin",
    )
    assert body["available"] is True
    assert body["online"] is False
    bob_view = me(api, bob.token)
    assert (bob_view["id"], bob_view["name"], bob_view["role"]) == (bob.id, "Bob", "agent")


def test_users_lists_only_the_accounts_own_users(api: Api) -> None:
    team = api.signup(company="Acme")
    bob = team.add("bob")
    other = api.signup(company="Other")
    other.add("mallory")
    for token in (team.admin.token, bob.token):
        users = all_users(api, token)
        assert sorted(u["id"] for u in users) == sorted([team.admin.id, bob.id])
        for user in users:
            assert set(user) >= USER_KEYS
    assert len(all_users(api, other.admin.token)) == 2
    assert not {u["id"] for u in all_users(api, other.admin.token)} & {team.admin.id, bob.id}


def test_users_paginate_with_limit_and_cursor(api: Api) -> None:
    team = api.signup()
    expected = {team.admin.id} | {team.add(f"user{i}").id for i in range(5)}
    api.signup(company="Other").add("outsider")
    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        r = api.get("/api/v1/users", team.admin.token, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {"items", "next_cursor"}
        assert 1 <= len(body["items"]) <= 2
        seen.extend(u["id"] for u in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert pages < 10, "pagination does not end"
    assert len(seen) == len(set(seen)), seen
    assert set(seen) == expected
    assert pages == 3


def test_users_default_page_holds_everyone_and_ends(api: Api) -> None:
    team = api.signup()
    team.add("bob")
    r = api.get("/api/v1/users", team.admin.token)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2
    assert r.json()["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1"])
def test_users_limit_out_of_range_is_422(api: Api, limit: str) -> None:
    team = api.signup()
    r = api.get("/api/v1/users", team.admin.token, params={"limit": limit})
    assert_validation(r, "limit")


@pytest.mark.parametrize("limit", ["1", "100"])
def test_users_limit_bounds_are_accepted(api: Api, limit: str) -> None:
    team = api.signup()
    r = api.get("/api/v1/users", team.admin.token, params={"limit": limit})
    assert r.status_code == 200, r.text
    assert [u["id"] for u in r.json()["items"]] == [team.admin.id]


# Creating users ------------------------------------------------------------------------------


def test_an_agent_may_not_create_users(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    r = api.post(
        "/api/v1/users",
        bob.token,
        json={"name": "Eve", "email": unique_email("eve"), "password": PASSWORD, "role": "admin"},
    )
    assert_error(r, 403, "forbidden")
    assert len(all_users(api, team.admin.token)) == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"role": "owner"}, "role"),
        ({"role": "ADMIN"}, "role"),
        ({"role": 1}, "role"),
        ({"password": "short"}, "password"),
        ({"password": "1234567"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "bob@"}, "email"),
        ({"email": ""}, "email"),
        ({"name": ""}, "name"),
    ],
)
def test_create_user_validation(api: Api, overrides: dict[str, Any], field: str) -> None:
    team = api.signup()
    assert_validation(create_user(api, team, **overrides), field)
    assert [u["id"] for u in all_users(api, team.admin.token)] == [team.admin.id]


def test_signup_validation(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"password": "short"}, "password"),
        ({"email": "nope"}, "email"),
        ({"company_name": ""}, "company_name"),
    ]
    for overrides, field in cases:
        body = {
            "company_name": "Acme",
            "name": "Ada",
            "email": unique_email("ada"),
            "password": PASSWORD,
            **overrides,
        }
        assert_validation(api.post("/api/v1/signup", json=body), field)


# Availability --------------------------------------------------------------------------------


def test_availability_toggles_and_persists(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    r = api.put("/api/v1/me/availability", bob.token, json={"available": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= USER_KEYS
    assert (body["id"], body["available"]) == (bob.id, False)
    assert me(api, bob.token)["available"] is False
    seen = {u["id"]: u["available"] for u in all_users(api, team.admin.token)}
    assert seen == {team.admin.id: True, bob.id: False}
    # Setting the same value again is fine.
    r = api.put("/api/v1/me/availability", bob.token, json={"available": False})
    assert r.status_code == 200, r.text
    assert r.json()["available"] is False
    r = api.put("/api/v1/me/availability", bob.token, json={"available": True})
    assert r.status_code == 200, r.text
    assert r.json()["available"] is True
    assert me(api, bob.token)["available"] is True
    seen = {u["id"]: u["available"] for u in all_users(api, bob.token)}
    assert seen == {team.admin.id: True, bob.id: True}


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_availability_wants_a_real_boolean(api: Api, value: Any) -> None:
    team = api.signup()
    r = api.put("/api/v1/me/availability", team.admin.token, json={"available": value})
    assert_validation(r, "available")
    assert me(api, team.admin.token)["available"] is True


def test_availability_needs_the_field(api: Api) -> None:
    team = api.signup()
    assert_validation(api.put("/api/v1/me/availability", team.admin.token, json={}), "available")


def test_availability_with_malformed_json_is_400(api: Api) -> None:
    team = api.signup()
    r = api.put(
        "/api/v1/me/availability",
        team.admin.token,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "bad_request")


# Notification settings -----------------------------------------------------------------------


def get_settings(api: Api, token: str) -> dict[str, dict[str, bool]]:
    r = api.get("/api/v1/me/notification-settings", token)
    assert r.status_code == 200, r.text
    body: dict[str, dict[str, bool]] = r.json()
    return body


def test_notification_settings_have_both_channels_with_four_booleans(api: Api) -> None:
    team = api.signup()
    settings = get_settings(api, team.admin.token)
    assert set(settings) >= {"desktop", "email"}
    for channel in ("desktop", "email"):
        assert set(settings[channel]) == NOTIFICATION_KINDS, settings
        assert all(isinstance(v, bool) for v in settings[channel].values()), settings


def test_notification_settings_put_merges_partial_changes(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    before = get_settings(api, team.admin.token)
    bob_before = get_settings(api, bob.token)
    flipped = not before["email"]["message_unassigned"]
    r = api.put(
        "/api/v1/me/notification-settings",
        team.admin.token,
        json={"email": {"message_unassigned": flipped}},
    )
    assert r.status_code == 200, r.text
    expected = {
        "desktop": dict(before["desktop"]),
        "email": {**before["email"], "message_unassigned": flipped},
    }
    assert {k: r.json()[k] for k in ("desktop", "email")} == expected
    assert {k: v for k, v in get_settings(api, team.admin.token).items() if k in expected} == (
        expected
    )
    # A second partial change keeps the first one.
    desktop_flip = not before["desktop"]["assigned_to_me"]
    r = api.put(
        "/api/v1/me/notification-settings",
        team.admin.token,
        json={"desktop": {"assigned_to_me": desktop_flip, "message_assigned_to_others": True}},
    )
    assert r.status_code == 200, r.text
    expected["desktop"].update(assigned_to_me=desktop_flip, message_assigned_to_others=True)
    assert {k: r.json()[k] for k in ("desktop", "email")} == expected
    assert {k: v for k, v in get_settings(api, team.admin.token).items() if k in expected} == (
        expected
    )
    # An empty change changes nothing; other users' settings are untouched.
    r = api.put("/api/v1/me/notification-settings", team.admin.token, json={})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("desktop", "email")} == expected
    assert get_settings(api, bob.token) == bob_before


@pytest.mark.parametrize(
    "body",
    [
        {"desktop": {"bogus": True}},
        {"email": {"assigned_to_me": True, "everything": False}},
        {"sms": {"assigned_to_me": True}},
    ],
)
def test_notification_settings_unknown_keys_are_422(api: Api, body: dict[str, Any]) -> None:
    team = api.signup()
    before = get_settings(api, team.admin.token)
    r = api.put("/api/v1/me/notification-settings", team.admin.token, json=body)
    assert_validation(r)
    assert get_settings(api, team.admin.token) == before


@pytest.mark.parametrize(
    "body",
    [
        {"desktop": {"assigned_to_me": "false"}},
        {"email": {"message_unassigned": 1}},
        {"desktop": True},
        {"desktop": "all"},
    ],
)
def test_notification_settings_non_booleans_are_422(api: Api, body: dict[str, Any]) -> None:
    team = api.signup()
    before = get_settings(api, team.admin.token)
    r = api.put("/api/v1/me/notification-settings", team.admin.token, json=body)
    assert_validation(r)
    assert get_settings(api, team.admin.token) == before
