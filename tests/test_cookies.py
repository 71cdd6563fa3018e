"""The session cookie's flags: HttpOnly and SameSite always, Secure behind https."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import LiveServer, settings_for
from tests.support import TestClock as FakeClock


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = settings_for(
        f"sqlite:///{tmp_path / 'cookies.db'}", tmp_path, PUBLIC_URL="https://inbox.example.com"
    )
    server = LiveServer(settings, FakeClock())
    server.start()
    yield server
    server.stop()


def test_the_session_cookie_is_secure_when_public_url_is_https(https_server: LiveServer) -> None:
    with httpx.Client(base_url=https_server.url, timeout=30) as client:
        r = client.post(
            "/api/v1/signup",
            json={
                "company_name": "Acme",
                "name": "Ada",
                "email": "ada@example.com",
                "password": "a much longer passphrase",
            },
        )
        assert r.status_code == 201, r.text
        r = client.post(
            "/api/v1/login",
            json={"email": "ada@example.com", "password": "a much longer passphrase"},
        )
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
        # A cookie-authenticated write must come from the https origin, not the http one.
        token = r.cookies["switchboard_session"]
        client.cookies.set("switchboard_session", token)
        write = {"available": False}
        bad = client.put(
            "/api/v1/me/availability", json=write, headers={"Origin": "http://inbox.example.com"}
        )
        assert bad.status_code == 403, bad.text
        good = client.put(
            "/api/v1/me/availability", json=write, headers={"Origin": "https://inbox.example.com"}
        )
        assert good.status_code == 200, good.text
