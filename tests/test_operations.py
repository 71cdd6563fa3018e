"""Operations: probes, metrics, OpenAPI, routing errors, migrations, settings, embedded Redis."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from alembic.script import ScriptDirectory

from server.clock import system_clock
from server.config import Settings
from server.handlers.routes import ENDPOINTS
from server.logs import JsonFormatter
from server.serving import GC_THRESHOLDS
from server.state.migrate import MIGRATIONS
from tests.support import TABLES, Api, LiveServer, settings_for, wait_for
from tests.support import TestClock as FakeClock  # not collected as a test class

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "PUBLIC_URL",
    "SECRET_KEY",
    "SMTP_URL",
    "EMAIL_FROM",
    "TWILIO_API_BASE",
    "MESSENGER_API_BASE",
    "ALLOWED_ORIGINS",
    "ALLOW_SIGNUP",
    "METRICS_TOKEN",
    "SWITCHBOARD_DATA_DIR",
)


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, r.text
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of its own: no sign-up, metrics behind a token, a fresh SQLite database."""
    settings = settings_for(
        f"sqlite:///{tmp_path / 'closed.db'}",
        tmp_path / "data",
        ALLOW_SIGNUP="false",
        METRICS_TOKEN="metrics-token",
    )
    server = LiveServer(settings, FakeClock())
    server.start()
    yield server
    server.stop()


# Probes and metrics ----------------------------------------------------------------------------


def test_healthz(api: Api) -> None:
    r = api.get("/healthz")
    assert r.status_code == 200, r.text


def test_readyz_reports_database_and_redis(api: Api) -> None:
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"database": "ok", "redis": "ok"}


def test_metrics_are_prometheus_text(api: Api) -> None:
    team = api.signup()
    integration = team.install()
    assert team.inbound(integration).status_code == 200
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    names = set(re.findall(r"^# TYPE (switchboard_\w+) \w+$", r.text, re.MULTILINE))
    assert names, r.text
    # Samples follow the Prometheus text format: `name{labels} value`.
    samples = [line for line in r.text.splitlines() if line.startswith("switchboard_")]
    assert samples
    for line in samples:
        # Label values are quoted and may hold braces (route templates such as `/x/{id}`).
        labels = r'(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?'
        assert re.match(rf"^switchboard_\w+{labels} ([-+0-9.eE]+|NaN|[+-]Inf)$", line), line
    assert 'switchboard_events_published_total{type="message.created"}' in r.text


# OpenAPI ---------------------------------------------------------------------------------------


def test_openapi_lists_every_endpoint(api: Api) -> None:
    r = api.get("/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    paths = doc["paths"]
    for endpoint in ENDPOINTS:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", endpoint.path)
        assert path in paths, path
        operation = paths[path].get(endpoint.method.lower())
        assert operation is not None, (endpoint.method, path)
        assert operation["responses"], (endpoint.method, path)
        for name in re.findall(r"\{(\w+)\}", path):
            params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
            assert name in {p["name"] for p in params}, (endpoint.method, path, name)
    for path in paths:
        assert ":" not in path, path

    # Every reference points at a schema that is there.
    schemas = doc.get("components", {}).get("schemas", {})
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', r.text))
    assert refs <= set(schemas), refs - set(schemas)


# Routing errors --------------------------------------------------------------------------------


def test_an_unknown_path_is_404_in_the_envelope(api: Api) -> None:
    for path in ("/api/v1/nothing-here", "/nothing-here", "/api/v1/integrations/abc"):
        assert_error(api.get(path), 404, "not_found")


def test_a_post_to_an_unknown_path_is_404(api: Api) -> None:
    assert_error(api.post("/api/v1/nothing-here", json={}), 404, "not_found")
    assert_error(api.post("/webhooks/carrier-pigeon/1", content=b"{}"), 404, "not_found")


def test_a_wrong_method_is_405_in_the_envelope(api: Api) -> None:
    for method, path in (
        ("DELETE", "/healthz"),
        ("POST", "/readyz"),
        ("PUT", "/api/v1/me"),
        ("PUT", "/api/v1/integrations"),
        ("POST", "/api/v1/conversations/1"),
    ):
        assert_error(api.request(method, path), 405, "method_not_allowed")


def test_a_started_server_collects_rarely_and_never_rescans_its_startup_objects(
    api: Api,
) -> None:
    """docs/PERFORMANCE.md: the default thresholds collected several times per inbound message,
    each full collection rescanning every module and mapper."""
    assert api.get("/healthz").status_code == 200
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 10_000


def test_get_on_a_post_only_endpoint_is_405(api: Api) -> None:
    for path in ("/api/v1/signup", "/api/v1/logout", "/webhooks/api/1"):
        assert_error(api.get(path), 405, "method_not_allowed")


# Migrations ------------------------------------------------------------------------------------


def test_migrate_command_creates_the_schema_and_is_repeatable(tmp_path: Path) -> None:
    database = tmp_path / "migrated.db"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{database}",
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "migration-test-key",
    }
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "server", "migrate"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with sqlite3.connect(database) as conn:
            names = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert set(TABLES) <= names, set(TABLES) - names
        # Parallel work may leave several heads (branches of one parent): all of them applied.
        heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
        assert {v for (v,) in version} == heads


# Settings --------------------------------------------------------------------------------------


def test_settings_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"SWITCHBOARD_DATA_DIR": str(tmp_path)})
    assert settings.data_dir == tmp_path
    assert settings.database_url.startswith("sqlite:///")
    db_file = Path(settings.database_url.removeprefix("sqlite:///"))
    assert db_file.parent == tmp_path
    assert settings.redis_url is None
    assert settings.embedded_redis
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.allowed_origins == frozenset({"http://127.0.0.1:8000"})
    assert settings.allow_signup is True
    assert settings.smtp_url is None
    assert settings.email_from == "switchboard@localhost"
    assert settings.twilio_api_base == "https://api.twilio.com"
    assert settings.messenger_api_base == "https://graph.facebook.com"
    assert settings.metrics_token is None
    assert settings.max_body_bytes == 1024 * 1024

    key_file = tmp_path / "secret_key"
    assert key_file.is_file()
    assert len(settings.secret_key) >= 32
    assert key_file.read_text(encoding="utf-8").strip() == settings.secret_key
    assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0
    again = Settings.from_env({"SWITCHBOARD_DATA_DIR": str(tmp_path)})
    assert again.secret_key == settings.secret_key

    elsewhere = Settings.from_env({"SWITCHBOARD_DATA_DIR": str(tmp_path / "other")})
    assert elsewhere.secret_key != settings.secret_key


def test_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "SWITCHBOARD_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://u:p@db.example:5432/inbox",
            "REDIS_URL": "redis://cache.example:6379/2",
            "PUBLIC_URL": "https://inbox.example.com/",
            "SECRET_KEY": "given-key",
            "ALLOWED_ORIGINS": "https://app.example.com, https://admin.example.com/ ,",
            "ALLOW_SIGNUP": "false",
            "METRICS_TOKEN": "m",
        }
    )
    assert settings.database_url == "postgresql://u:p@db.example:5432/inbox"
    assert settings.redis_url == "redis://cache.example:6379/2"
    assert not settings.embedded_redis
    assert settings.public_url == "https://inbox.example.com"
    assert settings.secret_key == "given-key"
    assert not (tmp_path / "secret_key").exists()
    assert settings.allowed_origins == frozenset(
        {"https://inbox.example.com", "https://app.example.com", "https://admin.example.com"}
    )
    assert settings.allow_signup is False
    assert settings.metrics_token == "m"


def test_settings_read_a_dotenv_file_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CONTRACT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "# comment\nPUBLIC_URL=https://from-file.example\nSECRET_KEY='file-key'\n"
        f"SWITCHBOARD_DATA_DIR={tmp_path}\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", "env-key")
    settings = Settings.from_env()
    assert settings.public_url == "https://from-file.example"
    assert settings.secret_key == "env-key"
    assert settings.data_dir == tmp_path


# Servers of their own --------------------------------------------------------------------------


def test_signup_can_be_closed(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        r = client.post(
            "/api/v1/signup",
            json={
                "company_name": "Acme",
                "name": "Ada",
                "email": "ada@example.com",
                "password": "correct horse",
            },
        )
        assert_error(r, 403, "forbidden")
        assert client.get("/readyz").json() == {"database": "ok", "redis": "ok"}


def test_metrics_token(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        assert_error(client.get("/metrics"), 401, "unauthenticated")
        r = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert_error(r, 401, "unauthenticated")
        r = client.get("/metrics", headers={"Authorization": "Bearer metrics-token"})
        assert r.status_code == 200, r.text
        assert "switchboard_" in r.text


def test_embedded_redis_starts_and_stops_with_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.from_env(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.db'}",
            "SWITCHBOARD_DATA_DIR": str(data_dir),
            "SECRET_KEY": "embedded-test-key",
            "PASSWORD_HASH_PROFILE": "fast",
        }
    )
    assert settings.redis_url is None
    server = LiveServer(settings, FakeClock())
    server.start()
    socket_path = data_dir / "redis" / "redis.sock"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            r = client.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json() == {"database": "ok", "redis": "ok"}
            # It really works as the server's Redis: sign-up and an inbound message go through.
            signup = client.post(
                "/api/v1/signup",
                json={
                    "company_name": "Solo",
                    "name": "Sol",
                    "email": "sol@example.com",
                    "password": "correct horse",
                },
            )
            assert signup.status_code == 201, signup.text
        assert socket_path.exists()
        with redis.Redis(unix_socket_path=str(socket_path)) as probe:
            pid = int(probe.info("server")["process_id"])
        assert pid != os.getpid()
    finally:
        server.stop()
    assert not server.thread.is_alive()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10)
    assert not socket_path.exists()


# Logs and request ids --------------------------------------------------------------------------


def test_every_response_carries_a_request_id(api: Api) -> None:
    r = api.get("/healthz", headers={"X-Request-ID": "lb-1234"})
    assert r.headers["x-request-id"] == "lb-1234"
    mine = api.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", mine)
    # A hostile id is not echoed (log injection); a fresh one is used instead.
    hostile = api.get("/healthz", headers={"X-Request-ID": "a\tb" + "x" * 100})
    assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["x-request-id"])


def test_logs_are_json_lines_without_secrets(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    password = "correct horse"  # the password tests.support.Api.signup uses
    team = api.signup()
    integration = team.install(secret="webhook-secret-value")
    r = api.post("/api/v1/login", json={"email": team.admin.email, "password": password})
    token = r.json()["token"]
    assert team.inbound(integration, text="my card is 4111 1111 1111 1111").status_code == 200
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    access = [orjson.loads(line) for line in lines if '"message":"request"' in line]
    assert access, lines
    assert {"method", "path", "route", "status", "ms", "request_id"} <= set(access[0])
    text = "\n".join(lines)
    for secret in (password, token, team.admin.token, "webhook-secret-value", "4111 1111"):
        assert secret not in text


def test_a_failed_start_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a part fails to start, the parts already started (the embedded redis-server, pools)
    are stopped again: nothing is left behind."""
    from server.lifecycle import running
    from server.realtime.service import Realtime

    async def broken(self: Realtime) -> None:
        raise RuntimeError("the hub could not start")

    monkeypatch.setattr(Realtime, "start", broken)
    settings = Settings.from_env(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'start.db'}",
            "SWITCHBOARD_DATA_DIR": str(tmp_path),
            "SECRET_KEY": "k",
        }
    )

    async def start() -> None:
        async with running(settings, system_clock):
            raise AssertionError("should not have started")

    with pytest.raises(RuntimeError, match="could not start"):
        asyncio.run(start())
    socket_file = tmp_path / "redis" / "redis.sock"
    assert not socket_file.exists()
    survivors = subprocess.run(["pgrep", "-f", str(socket_file)], capture_output=True, text=True)
    assert survivors.stdout.strip() == ""
