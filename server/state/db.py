"""The database engine and the one way to run work in a transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from psycopg import pq
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, create_engine

T = TypeVar("T")

# Session.info key under which domain actions leave events to publish after commit.
PENDING_EVENTS = "pending_events"


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 (SQLAlchemy would pick psycopg2, which we don't ship)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    """WAL for concurrent readers; writers lock up front, so they queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN itself
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _begin_on_checkout(engine: Engine) -> None:
    """PostgreSQL: each checkout sends the transaction's BEGIN itself, and treats a failure as
    the pool's liveness check would (`pool_pre_ping`): the connection is replaced, up to three
    times. One round trip where the ping and psycopg's own BEGIN took two; a round trip costs
    the node 0.1-0.2 ms of CPU, and every webhook and read is one transaction. psycopg sends
    no BEGIN of its own on a connection already in a transaction."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        pgconn = dbapi_conn.pgconn
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return  # not ours to touch (the pool's reset on return leaves none such)
        try:
            result = pgconn.exec_(b"BEGIN")
        except Exception as exc:  # the socket is gone
            raise DisconnectionError(str(exc)) from exc
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise DisconnectionError(pgconn.error_message.decode(errors="replace"))


class Database:
    """Engines and session factories. Work runs through `write` or `read` on a worker thread."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        self.sqlite = is_sqlite(self.url)
        if self.sqlite:
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
            self.write_engine = create_engine(self.url, **kwargs)
            self.read_engine = create_engine(self.url, **kwargs)
            _configure_sqlite(self.write_engine, immediate=True)
            _configure_sqlite(self.read_engine, immediate=False)
        else:
            self.write_engine = create_engine(self.url, pool_size=pool_size, max_overflow=20)
            _begin_on_checkout(self.write_engine)
            self.read_engine = self.write_engine
        self._writer = sessionmaker(self.write_engine, class_=Session, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, class_=Session, expire_on_commit=False)

    def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one write transaction, committed when it returns."""
        with self._writer() as session, session.begin():
            return work(session)

    def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a read-only transaction."""
        with self._reader() as session:
            return work(session)  # closing the session rolls the read transaction back

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
