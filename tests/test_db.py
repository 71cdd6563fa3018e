"""The PostgreSQL pool: each checkout begins the transaction, and a dead connection is replaced.

`Database` does not ping a pooled connection before use (`pool_pre_ping`, one round trip); the
checkout sends the transaction's BEGIN instead, and a failed BEGIN replaces the connection as a
failed ping would. These tests hold it to both halves.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import text
from sqlmodel import Session

from server.state.db import Database
from tests.support import (
    PG_ADMIN_URL,
    create_pg_database,
    drop_pg_database,
    postgres_available,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def db() -> Iterator[Database]:
    assert postgres_available(), "PostgreSQL does not answer: these tests need it"
    url = create_pg_database("switchboard_pool")
    database = Database(url, pool_size=2)
    try:
        database.write(lambda s: s.execute(text("CREATE TABLE kept (value int)")))
        yield database
    finally:
        database.dispose()
        drop_pg_database(url)


def _backend_pid(session: Session) -> int:
    pid: int = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _terminate(url: str, pid: int | None = None) -> int:
    """Cut the database's connections (or the one with this pid): how many were cut."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND (%s::int IS NULL OR pid = %s::int)",
            (url.rsplit("/", 1)[1], pid, pid),
        ).fetchall()
    return len(rows)


def test_a_checkout_is_already_in_a_transaction(db: Database) -> None:
    def status(session: Session) -> int:
        dbapi = session.connection().connection.dbapi_connection
        assert dbapi is not None
        value: int = dbapi.pgconn.transaction_status  # type: ignore[attr-defined]
        return value

    # Begun before any statement: psycopg sends no BEGIN of its own, the checkout did.
    assert db.write(status) == pq.TransactionStatus.INTRANS
    assert db.read(status) == pq.TransactionStatus.INTRANS


def test_writes_commit_and_failures_roll_back(db: Database) -> None:
    db.write(lambda s: s.execute(text("INSERT INTO kept VALUES (1)")))

    def fails(session: Session) -> None:
        session.execute(text("INSERT INTO kept VALUES (2)"))
        raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError):
        db.write(fails)
    values = db.read(lambda s: s.execute(text("SELECT value FROM kept")).scalars().all())
    assert values == [1]


def test_a_pooled_connection_cut_meanwhile_is_replaced_unnoticed(db: Database) -> None:
    first = db.write(_backend_pid)
    # E.g. PostgreSQL restarted, or a proxy dropped the idle connection.
    assert _terminate(db.url, first) == 1

    # The next transaction gets a live connection: no error reaches the caller.
    second = db.write(lambda s: (s.execute(text("INSERT INTO kept VALUES (3)")), _backend_pid(s)))
    assert second[1] != first
    assert db.read(lambda s: s.execute(text("SELECT count(*) FROM kept")).scalar_one()) == 1

    # Every connection in the pool, cut at once: still nothing reaches the caller.
    assert _terminate(db.url) >= 1
    assert db.read(lambda s: s.execute(text("SELECT count(*) FROM kept")).scalar_one()) == 1
