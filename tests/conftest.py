"""Fixtures: the app under real uvicorn on SQLite and on PostgreSQL, emptied between tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.state.db import Database
from tests.support import (
    REQUIRE_ALL,
    Api,
    LiveServer,
    TestClock,
    create_pg_database,
    drop_pg_database,
    postgres_available,
    settings_for,
    wipe,
)

BACKENDS = ("sqlite", "postgresql")
LEFT_OUT: list[str] = []


def pytest_report_header() -> list[str]:
    pg = "available" if postgres_available() else "NOT AVAILABLE (PostgreSQL tests will be skipped)"
    return [f"switchboard: PostgreSQL {pg}; require all parts: {REQUIRE_ALL}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in LEFT_OUT:
        terminalreporter.write_line(f"!!! {line}", red=True, bold=True)


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    """One SQLite file and one PostgreSQL database for the whole run."""
    urls: dict[str, str | None] = {
        "sqlite": f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    }
    pg_url = None
    if postgres_available():
        pg_url = create_pg_database()
    elif REQUIRE_ALL:
        pytest.exit(
            "PostgreSQL is required (SWITCHBOARD_REQUIRE_ALL=1) but does not answer", returncode=3
        )
    else:
        LEFT_OUT.append("PostgreSQL is not reachable: every PostgreSQL variant was LEFT OUT")
    urls["postgresql"] = pg_url
    yield urls
    if pg_url:
        drop_pg_database(pg_url)


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest,
    database_urls: dict[str, str | None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """A live server per database backend, shared by the tests of that backend."""
    url = database_urls[request.param]
    if url is None:
        pytest.skip(
            f"{request.param} is not available here (set SWITCHBOARD_REQUIRE_ALL=1 to fail instead)"
        )
    data_dir: Path = tmp_path_factory.mktemp(f"data-{request.param}")
    live = LiveServer(settings_for(url, data_dir), TestClock())
    live.start()
    yield live
    live.stop()


@pytest.fixture
def db(server: LiveServer) -> Database:
    database: Database = server.runtime.db
    return database


@pytest.fixture
def api(server: LiveServer, db: Database) -> Iterator[Api]:
    """A client of a freshly emptied server, with the clock back at real time."""
    wipe(db)
    server.clock.reset()
    client = Api(server)
    yield client
    client.close()
