"""Test helpers: a live server in a thread, a test clock, databases, and an API client."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import uvicorn
from sqlalchemy import text
from sqlmodel import SQLModel

from server.app import create_app
from server.config import Settings
from server.security.signatures import sign_sha256
from server.serving import UVICORN_OPTIONS, Server
from server.state import models  # noqa: F401  (registers every table)
from server.state.db import Database

PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_ALL = os.environ.get("SWITCHBOARD_REQUIRE_ALL") == "1"


class TestClock:
    """A clock the tests move: real time plus an offset."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)

    def reset(self) -> None:
        self.offset = timedelta()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def create_pg_database(prefix: str = "switchboard_test") -> str:
    """A fresh database of our own; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Every table, children first (derived from the models, so new tables are never missed).
TABLES = tuple(t.name for t in reversed(SQLModel.metadata.sorted_tables))


def wipe(db: Database) -> None:
    """Empty every table between tests (much faster than a new database)."""
    with db.write_engine.begin() as conn:
        if db.sqlite:
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
        else:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))


@dataclass
class LiveServer:
    """The real app under a real uvicorn, in a background thread of the test process."""

    settings: Settings
    clock: TestClock
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.app = create_app(self.settings, clock=self.clock)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            **UVICORN_OPTIONS,
        )
        self.server = Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def run_coroutine(self, coro: Any) -> Any:
        """Run a coroutine on the server's event loop (e.g. to poke a worker)."""
        loop: asyncio.AbstractEventLoop = self.runtime.loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)


def settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "SECRET_KEY": "test-secret-key",
        "PASSWORD_HASH_PROFILE": "fast",
        "PUBLIC_URL": "http://testserver.local",
        # Servers of one run may share a Redis: each keeps to its own keys and channels.
        "REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        # The suite signs up and logs in far more than a person would, from one address:
        # limits high enough never to get in the way (tests/test_abuse.py sets small ones).
        "RATE_LIMIT_SIGNUP": "100000/hour",
        "RATE_LIMIT_LOGIN": "100000/hour",
        "RATE_LIMIT_WEBHOOK": "100000/minute",
        "LOGIN_DELAY_BASE": "0.001",
    }
    if os.environ.get("TEST_REDIS_URL"):
        env["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)


class Api:
    """An HTTP client for one server, with shortcuts for the common set-ups."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, token, **kw)

    def put(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, token, **kw)

    def patch(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, token, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, token, **kw)

    # Set-ups ---------------------------------------------------------------------------------

    def signup(
        self, company: str = "Acme", name: str = "Ada Admin", email: str | None = None
    ) -> Team:
        email = email or f"admin-{uuid.uuid4().hex[:8]}@example.com"
        r = self.post(
            "/api/v1/signup",
            json={
                "company_name": company,
                "name": name,
                "email": email,
                "password": "correct horse",
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        team = Team(self, body["account"]["id"])
        team.members["admin"] = Member(body["user"]["id"], body["token"], email, name)
        return team

    def inbound(
        self,
        integration_id: int,
        secret: str,
        *,
        text: str = "Hello!",
        contact: str = "cust-1",
        name: str | None = "Carla Customer",
        message_id: str | None = None,
        sent_at: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """A signed inbound message on the `api` channel."""
        payload: dict[str, Any] = {
            "message_id": message_id or uuid.uuid4().hex,
            "contact": {"id": contact},
            "text": text,
        }
        if name is not None:
            payload["contact"]["name"] = name
        if sent_at is not None:
            payload["sent_at"] = sent_at
        body = orjson.dumps(payload)
        return self.post(
            f"/webhooks/api/{integration_id}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Signature-256": signature
                if signature is not None
                else sign_sha256(secret, body),
            },
        )


@dataclass
class Member:
    id: int
    token: str
    email: str
    name: str


@dataclass
class Team:
    """An account with named members: `admin` (its creator) plus whoever `add` creates."""

    api: Api
    account_id: int
    members: dict[str, Member] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Member:
        return self.members[key]

    @property
    def admin(self) -> Member:
        return self.members["admin"]

    def add(self, key: str, role: str = "agent") -> Member:
        email = f"{key}-{uuid.uuid4().hex[:8]}@example.com"
        r = self.api.post(
            "/api/v1/users",
            self.admin.token,
            json={"name": key.title(), "email": email, "password": "correct horse", "role": role},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        self.members[key] = Member(body["user"]["id"], body["token"], email, key.title())
        return self.members[key]

    def install(
        self,
        shared_with: list[str] = (),
        by: str = "admin",
        secret: str = "s3cret",  # type: ignore[assignment]
        callback_url: str | None = None,
        name: str = "Website chat",
    ) -> dict[str, Any]:
        config: dict[str, Any] = {"webhook_secret": secret}
        if callback_url:
            config["callback_url"] = callback_url
        r = self.api.post(
            "/api/v1/integrations",
            self.members[by].token,
            json={
                "provider": "api",
                "name": name,
                "config": config,
                "shared_with": [self.members[k].id for k in shared_with],
            },
        )
        assert r.status_code == 201, r.text
        integration: dict[str, Any] = r.json()
        integration["secret"] = secret
        return integration

    def inbound(self, integration: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.api.inbound(integration["id"], integration["secret"], **kwargs)

    def conversation_from(self, integration: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """A new conversation started by an inbound message; returns it as the admin sees it."""
        r = self.inbound(integration, **kwargs)
        assert r.status_code == 200, r.text
        token = self.members[_installer_key(self, integration)].token
        conv = self.api.get(f"/api/v1/conversations/{r.json()['conversation_id']}", token)
        assert conv.status_code == 200, conv.text
        result: dict[str, Any] = conv.json()
        return result


def _installer_key(team: Team, integration: dict[str, Any]) -> str:
    return next(k for k, m in team.members.items() if m.id == integration["installed_by"])


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def event_log(db: Database, account_id: int, after: int = 0) -> list[dict[str, Any]]:
    """The account's retained events, decoded, in seq order."""
    with db.read_engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT frame FROM events WHERE account_id = :a AND seq > :s ORDER BY seq"),
                {"a": account_id, "s": after},
            )
            .scalars()
            .all()
        )
    return [orjson.loads(r) for r in rows]


def iter_backends() -> Iterator[str]:
    yield "sqlite"
    yield "postgresql"
