"""The outbound worker when something other than the provider's answer goes wrong."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from server.domain.delivery import MAX_ATTEMPTS
from server.state.db import Database
from tests.support import Api, LiveServer, event_log, wait_for


def _job(db: Database) -> dict[str, Any] | None:
    with db.read_engine.connect() as conn:
        row = conn.execute(text("SELECT attempts, last_error FROM outbound_jobs")).first()
    return dict(row._mapping) if row else None


def test_unreadable_credentials_fail_the_reply_after_the_last_attempt(
    api: Api, server: LiveServer, db: Database
) -> None:
    """Stored credentials that cannot be decrypted (SECRET_KEY changed): the reply is retried
    like an outage and ends `failed` with the reason, instead of waiting for ever."""
    team = api.signup()
    integration = team.install()
    conversation = team.conversation_from(integration)
    with db.write_engine.begin() as conn:
        conn.execute(
            text("UPDATE integrations SET config_secret = 'not-a-fernet-token' WHERE id = :i"),
            {"i": integration["id"]},
        )
    path = f"/api/v1/conversations/{conversation['id']}/messages"
    r = api.post(path, team.admin.token, json={"text": "Hello"})
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]
    for attempt in range(1, MAX_ATTEMPTS):

        def failed_attempts(n: int = attempt) -> dict[str, Any] | None:
            job = _job(db)
            return job if job and job["attempts"] >= n and job["last_error"] else None

        job = wait_for(failed_attempts)
        assert job["last_error"] == "internal error: RuntimeError", job
        server.clock.advance(hours=1)  # past any backoff: the retry is due now

    def final() -> dict[str, Any] | None:
        (message,) = [
            m for m in api.get(path, team.admin.token).json()["items"] if m["id"] == message_id
        ]
        return message if message["status"] == "failed" else None

    message = wait_for(final, timeout=20)
    assert message["error"] == "internal error: RuntimeError"
    assert _job(db) is None
    updates = [e for e in event_log(db, team.account_id) if e["type"] == "message.updated"]
    assert [e["data"]["message"]["status"] for e in updates] == ["failed"]


def test_a_callback_url_that_is_no_url_is_refused_at_install(api: Api) -> None:
    team = api.signup()
    for bad in ("http://[::1", "http://", "ftp://example.com/x", "example.com/hook"):
        r = api.post(
            "/api/v1/integrations",
            team.admin.token,
            json={
                "provider": "api",
                "name": "Chat",
                "config": {"webhook_secret": "s", "callback_url": bad},
            },
        )
        assert r.status_code == 422, (bad, r.text)
        assert "config.callback_url" in r.json()["error"]["fields"]
