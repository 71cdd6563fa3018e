"""Messaging integrations: install, see, change and remove; secrets are write-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from server.security.secret_box import SecretBox
from server.state.db import Database
from tests.support import Api, Team, event_log

INTEGRATIONS = "/api/v1/integrations"
FIELDS = {"id", "provider", "name", "installed_by", "shared_with", "webhook_url", "created_at"}
# settings_for() in tests/support.py sets these for the test servers.
PUBLIC_URL = "http://testserver.local"
SECRET_KEY = "test-secret-key"


def unique_secret() -> str:
    return f"whsec-{uuid.uuid4().hex}"


def install_raw(api: Api, team: Team, body: dict[str, Any], by: str = "admin") -> httpx.Response:
    return api.post(INTEGRATIONS, team[by].token, json=body)


def api_install_body(
    secret: str, *, shared_with: list[int] | None = None, **config: str
) -> dict[str, Any]:
    return {
        "provider": "api",
        "name": "Website chat",
        "config": {"webhook_secret": secret, **config},
        "shared_with": shared_with or [],
    }


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, r.text
    return error


def config_secret_of(db: Database, integration_id: int) -> str:
    with db.read_engine.connect() as conn:
        value: str = conn.execute(
            text("SELECT config_secret FROM integrations WHERE id = :i"), {"i": integration_id}
        ).scalar_one()
    return value


def rows(db: Database, table: str, integration_id: int) -> int:
    with db.read_engine.connect() as conn:
        value: int = conn.execute(
            text(f"SELECT COUNT(*) FROM {table} WHERE integration_id = :i"), {"i": integration_id}
        ).scalar_one()
    return value


def listed_ids(api: Api, token: str) -> list[int]:
    r = api.get(INTEGRATIONS, token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None or isinstance(body["next_cursor"], str)
    return [i["id"] for i in body["items"]]


# Install ---------------------------------------------------------------------------------------


def test_an_admin_installs_an_api_integration(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    before = datetime.now(UTC) - timedelta(seconds=2)
    r = install_raw(api, team, api_install_body(unique_secret(), shared_with=[bob.id]))
    assert r.status_code == 201, r.text
    integration = r.json()
    assert set(integration) >= FIELDS
    assert isinstance(integration["id"], int)
    assert integration["provider"] == "api"
    assert integration["name"] == "Website chat"
    assert integration["installed_by"] == team.admin.id
    assert set(integration["shared_with"]) - {team.admin.id} == {bob.id}
    assert integration["webhook_url"] == f"{PUBLIC_URL}/webhooks/api/{integration['id']}"
    assert integration["created_at"].endswith("Z")
    created = datetime.fromisoformat(integration["created_at"].replace("Z", "+00:00"))
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=2)

    one = api.get(f"{INTEGRATIONS}/{integration['id']}", team.admin.token)
    assert one.status_code == 200, one.text
    assert one.json() == integration
    assert listed_ids(api, team.admin.token) == [integration["id"]]


def test_secrets_never_appear_in_any_response(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    secret = unique_secret()
    created = install_raw(
        api, team, api_install_body(secret, callback_url="https://example.com/hook")
    )
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    path = f"{INTEGRATIONS}/{integration_id}"

    responses = [
        created,
        api.get(INTEGRATIONS, team.admin.token),
        api.get(path, team.admin.token),
        api.patch(path, team.admin.token, json={"name": "Renamed"}),
        api.patch(path, team.admin.token, json={"shared_with": [bob.id]}),
        api.patch(path, team.admin.token, json={"config": {"callback_url": "https://x.org/h"}}),
        api.get(INTEGRATIONS, bob.token),
        api.get(path, bob.token),
    ]
    for r in responses:
        assert r.status_code in (200, 201), r.text
        assert secret not in r.text, r.request.url
        assert "webhook_secret" not in r.text, r.request.url

    new_secret = unique_secret()
    r = api.patch(path, team.admin.token, json={"config": {"webhook_secret": new_secret}})
    assert r.status_code == 200, r.text
    assert new_secret not in r.text and secret not in r.text
    assert new_secret not in api.get(path, team.admin.token).text


def test_the_secret_is_stored_encrypted(api: Api, db: Database) -> None:
    team = api.signup()
    secret = unique_secret()
    r = install_raw(api, team, api_install_body(secret))
    assert r.status_code == 201, r.text
    sealed = config_secret_of(db, r.json()["id"])
    assert sealed.strip()
    assert secret not in sealed
    assert secret.removeprefix("whsec-") not in sealed
    # It is really the secret, encrypted with the server's key (not a hash, not thrown away).
    assert SecretBox(SECRET_KEY).open(sealed) == {"webhook_secret": secret}
    with db.read_engine.connect() as conn:
        public = conn.execute(
            text("SELECT config_public FROM integrations WHERE id = :i"), {"i": r.json()["id"]}
        ).scalar_one()
    assert secret not in str(public)


def test_an_unknown_provider_is_422(api: Api) -> None:
    team = api.signup()
    body = {**api_install_body(unique_secret()), "provider": "carrier_pigeon"}
    error = assert_error(install_raw(api, team, body), 422, "validation_error")
    assert "provider" in error["fields"]
    assert listed_ids(api, team.admin.token) == []


def test_a_missing_webhook_secret_is_422(api: Api) -> None:
    team = api.signup()
    body = {**api_install_body("x"), "config": {"callback_url": "https://example.com/hook"}}
    error = assert_error(install_raw(api, team, body), 422, "validation_error")
    assert "config.webhook_secret" in error["fields"]
    body = {**api_install_body("x"), "config": {}}
    error = assert_error(install_raw(api, team, body), 422, "validation_error")
    assert "config.webhook_secret" in error["fields"]
    for blank in ("", "   ", 123):
        body = {**api_install_body("x"), "config": {"webhook_secret": blank}}
        error = assert_error(install_raw(api, team, body), 422, "validation_error")
        assert "config.webhook_secret" in error["fields"], blank
    assert listed_ids(api, team.admin.token) == []


def test_a_callback_url_that_is_not_http_is_422(api: Api) -> None:
    team = api.signup()
    for url in ("ftp://example.com/hook", "javascript:alert(1)", "example.com/hook"):
        body = api_install_body(unique_secret(), callback_url=url)
        error = assert_error(install_raw(api, team, body), 422, "validation_error")
        assert any("callback_url" in key for key in error["fields"]), (url, error)
    for url in ("http://example.com/hook", "https://example.com/hook"):
        r = install_raw(api, team, api_install_body(unique_secret(), callback_url=url))
        assert r.status_code == 201, r.text


def test_malformed_install_bodies(api: Api) -> None:
    team = api.signup()
    r = api.post(
        INTEGRATIONS,
        team.admin.token,
        content=b'{"provider": "api",',
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "bad_request")
    error = assert_error(
        install_raw(api, team, {"provider": "api", "config": {"webhook_secret": "x"}}),
        422,
        "validation_error",
    )
    assert "name" in error["fields"]
    body = {**api_install_body("x"), "config": "webhook_secret=x"}
    error = assert_error(install_raw(api, team, body), 422, "validation_error")
    assert "config" in error["fields"]
    body = {**api_install_body("x"), "shared_with": ["2"]}
    error = assert_error(install_raw(api, team, body), 422, "validation_error")
    assert any(key.startswith("shared_with") for key in error["fields"])


def test_shared_with_only_takes_users_of_the_account(api: Api) -> None:
    team = api.signup()
    other = api.signup(company="Rival")
    stranger = other.add("stranger")
    for user_ids in ([999_999], [other.admin.id], [stranger.id]):
        body = api_install_body(unique_secret(), shared_with=user_ids)
        error = assert_error(install_raw(api, team, body), 422, "validation_error")
        assert "shared_with" in error["fields"], (user_ids, error)
    assert listed_ids(api, team.admin.token) == []
    assert listed_ids(api, other.admin.token) == []


def test_only_admins_install(api: Api) -> None:
    team = api.signup()
    team.add("bob")
    r = install_raw(api, team, api_install_body(unique_secret()), by="bob")
    assert_error(r, 403, "forbidden")
    assert listed_ids(api, team.admin.token) == []
    r = api.post(INTEGRATIONS, json=api_install_body(unique_secret()))
    assert_error(r, 401, "unauthenticated")
    team.add("second_admin", role="admin")
    r = install_raw(api, team, api_install_body(unique_secret()), by="second_admin")
    assert r.status_code == 201, r.text
    assert r.json()["installed_by"] == team["second_admin"].id


# Change ----------------------------------------------------------------------------------------


def test_patch_name_and_shared_with(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    carol = team.add("carol")
    integration = team.install(shared_with=["bob"])
    path = f"{INTEGRATIONS}/{integration['id']}"

    r = api.patch(path, team.admin.token, json={"name": "Support chat"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Support chat"
    assert set(r.json()["shared_with"]) - {team.admin.id} == {bob.id}
    assert r.json()["webhook_url"] == integration["webhook_url"]
    assert r.json()["created_at"] == integration["created_at"]

    r = api.patch(path, team.admin.token, json={"shared_with": [carol.id]})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Support chat"
    assert set(r.json()["shared_with"]) - {team.admin.id} == {carol.id}
    assert api.get(path, bob.token).status_code == 404
    assert api.get(path, carol.token).status_code == 200

    r = api.patch(path, team.admin.token, json={"shared_with": []})
    assert r.status_code == 200, r.text
    assert set(r.json()["shared_with"]) - {team.admin.id} == set()
    assert api.get(path, carol.token).status_code == 404

    error = assert_error(
        api.patch(path, team.admin.token, json={"shared_with": [999_999]}), 422, "validation_error"
    )
    assert "shared_with" in error["fields"]
    error = assert_error(
        api.patch(path, team.admin.token, json={"name": "  "}), 422, "validation_error"
    )
    assert "name" in error["fields"]
    assert api.get(path, team.admin.token).json()["name"] == "Support chat"


def test_patch_config_keeps_the_secret_unless_a_new_one_is_given(api: Api) -> None:
    team = api.signup()
    integration = team.install(secret="old-secret")
    path = f"{INTEGRATIONS}/{integration['id']}"

    r = api.patch(path, team.admin.token, json={"name": "Only the name"})
    assert r.status_code == 200, r.text
    assert api.inbound(integration["id"], "old-secret").status_code == 200

    r = api.patch(
        path, team.admin.token, json={"config": {"callback_url": "https://example.com/replies"}}
    )
    assert r.status_code == 200, r.text
    ok = api.inbound(integration["id"], "old-secret")
    assert ok.status_code == 200, ok.text

    error = assert_error(
        api.patch(path, team.admin.token, json={"config": {"callback_url": "gopher://x"}}),
        422,
        "validation_error",
    )
    assert any("callback_url" in key for key in error["fields"])
    assert api.inbound(integration["id"], "old-secret").status_code == 200

    r = api.patch(path, team.admin.token, json={"config": {"webhook_secret": "new-secret"}})
    assert r.status_code == 200, r.text
    assert_error(api.inbound(integration["id"], "old-secret"), 403, "forbidden")
    accepted = api.inbound(integration["id"], "new-secret")
    assert accepted.status_code == 200, accepted.text


def test_only_admins_of_the_account_change_or_delete(api: Api) -> None:
    team = api.signup()
    team.add("bob")
    other = api.signup(company="Rival")
    integration = team.install(shared_with=["bob"])
    path = f"{INTEGRATIONS}/{integration['id']}"

    assert_error(api.patch(path, team["bob"].token, json={"name": "Mine"}), 403, "forbidden")
    assert_error(api.delete(path, team["bob"].token), 403, "forbidden")
    assert_error(api.patch(path, other.admin.token, json={"name": "Mine"}), 404, "not_found")
    assert_error(api.delete(path, other.admin.token), 404, "not_found")
    r = api.get(path, team.admin.token)
    assert r.status_code == 200
    assert r.json()["name"] == integration["name"]
    assert_error(api.patch(f"{INTEGRATIONS}/999999", team.admin.token, json={}), 404, "not_found")


# Visibility ------------------------------------------------------------------------------------


def test_agents_see_only_shared_integrations_and_admins_see_all(api: Api) -> None:
    team = api.signup()
    bob = team.add("bob")
    carol = team.add("carol")
    dan = team.add("dan", role="admin")
    shared = team.install(shared_with=["bob"], name="Shared with Bob")
    private = team.install(name="Admin only")
    other = api.signup(company="Rival")
    foreign = other.install(name="Rival chat")

    assert listed_ids(api, team.admin.token) == [shared["id"], private["id"]]
    assert listed_ids(api, dan.token) == [shared["id"], private["id"]]
    assert listed_ids(api, bob.token) == [shared["id"]]
    assert listed_ids(api, carol.token) == []
    assert listed_ids(api, other.admin.token) == [foreign["id"]]

    def status(token: str, integration: dict[str, Any]) -> int:
        return api.get(f"{INTEGRATIONS}/{integration['id']}", token).status_code

    assert status(bob.token, shared) == 200
    assert status(bob.token, private) == 404
    assert status(carol.token, shared) == 404
    assert status(carol.token, private) == 404
    assert status(dan.token, private) == 200
    assert status(team.admin.token, foreign) == 404
    assert status(other.admin.token, shared) == 404
    assert_error(api.get(f"{INTEGRATIONS}/{shared['id']}", carol.token), 404, "not_found")
    assert_error(api.get(INTEGRATIONS), 401, "unauthenticated")

    # The sharing decides who sees the conversations too.
    conversation = team.conversation_from(shared)
    conv_path = f"/api/v1/conversations/{conversation['id']}"
    assert api.get(conv_path, bob.token).status_code == 200
    assert api.get(conv_path, carol.token).status_code == 404


# Remove ----------------------------------------------------------------------------------------


def test_delete_removes_the_integration_and_its_conversations(api: Api, db: Database) -> None:
    team = api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    kept = team.install(name="Kept")
    first = team.conversation_from(integration, contact="c-1")
    second = team.conversation_from(integration, contact="c-2")
    survivor = team.conversation_from(kept, contact="c-1")
    path = f"{INTEGRATIONS}/{integration['id']}"

    r = api.delete(path, team.admin.token)
    assert r.status_code == 204, r.text
    assert r.content == b""

    assert_error(api.get(path, team.admin.token), 404, "not_found")
    assert_error(api.get(path, bob.token), 404, "not_found")
    assert listed_ids(api, team.admin.token) == [kept["id"]]
    for conv in (first, second):
        for token in (team.admin.token, bob.token):
            assert_error(api.get(f"/api/v1/conversations/{conv['id']}", token), 404, "not_found")
    items = api.get("/api/v1/conversations", team.admin.token).json()["items"]
    assert [c["id"] for c in items] == [survivor["id"]]
    for table in ("contacts", "conversations", "messages"):
        assert rows(db, table, integration["id"]) == 0, table
    assert rows(db, "messages", kept["id"]) == 1

    assert_error(api.inbound(integration["id"], integration["secret"]), 404, "not_found")
    assert_error(api.delete(path, team.admin.token), 404, "not_found")
    assert team.inbound(kept).status_code == 200

    deleted = [e for e in event_log(db, team.account_id) if e["type"] == "integration.deleted"]
    assert len(deleted) == 1
    assert deleted[0]["data"]["integration_id"] == integration["id"]
    assert isinstance(deleted[0]["seq"], int)
