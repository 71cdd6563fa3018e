"""Migrations: on SQLite and on PostgreSQL they build exactly the schema the models describe,
and the ones that rebuild a table keep its rows, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel

from server.state.db import Database
from server.state.migrate import alembic_config, upgrade
from server.state.models import (
    Account,
    Contact,
    Conversation,
    Integration,
    Notification,
    User,
)
from tests.support import create_pg_database, drop_pg_database, postgres_available


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database of this test's own, with no tables yet."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield database
        database.write_engine.dispose()
        database.read_engine.dispose()
        return
    if not postgres_available():
        pytest.skip("PostgreSQL is not available here")
    url = create_pg_database("switchboard_migrations")
    database = Database(url)
    try:
        yield database
    finally:
        database.write_engine.dispose()
        drop_pg_database(url)


def test_the_migrations_build_the_schema_the_models_describe(empty_db: Database) -> None:
    upgrade(empty_db.write_engine)
    with empty_db.write_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def _notification_keys(db: Database) -> list[str]:
    with db.write_engine.connect() as connection:
        keys = inspect(connection).get_foreign_keys("notifications")
    return sorted(key["referred_table"] for key in keys)


def _downgrade(db: Database, revision: str) -> None:
    config = alembic_config(db.write_engine)
    with db.write_engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
        connection.commit()


def test_notifications_lose_their_foreign_keys_and_keep_their_rows(empty_db: Database) -> None:
    upgrade(empty_db.write_engine)
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    with Session(empty_db.write_engine) as s:
        account = Account(name="Acme", created_at=now)
        s.add(account)
        s.flush()
        assert account.id is not None
        user = User(
            account_id=account.id,
            name="Ann",
            email="ann@example.test",
            password_hash="x",
            role="admin",
            created_at=now,
        )
        s.add(user)
        s.flush()
        assert user.id is not None
        integration = Integration(
            account_id=account.id, provider="api", name="Api", installed_by=user.id, created_at=now
        )
        s.add(integration)
        s.flush()
        assert integration.id is not None
        contact = Contact(integration_id=integration.id, handle="c1", name="C", created_at=now)
        s.add(contact)
        s.flush()
        assert contact.id is not None
        conversation = Conversation(
            account_id=account.id,
            integration_id=integration.id,
            contact_id=contact.id,
            last_message_at=now,
            created_at=now,
            updated_at=now,
        )
        s.add(conversation)
        s.flush()
        assert conversation.id is not None
        for title in ("first", "second"):
            s.add(
                Notification(
                    user_id=user.id,
                    kind="message_unassigned",
                    conversation_id=conversation.id,
                    title=title,
                    body="hello",
                    created_at=now,
                )
            )
        # A row whose conversation is gone: possible without foreign keys, and dropped by the
        # downgrade, which could not restore them otherwise.
        s.add(
            Notification(
                user_id=user.id,
                kind="message_unassigned",
                conversation_id=conversation.id + 1000,
                title="orphan",
                body="",
                created_at=now,
            )
        )
        s.commit()

    def titles() -> list[str]:
        with empty_db.write_engine.connect() as connection:
            rows = connection.execute(text("SELECT title FROM notifications ORDER BY id"))
            return [row[0] for row in rows]

    assert _notification_keys(empty_db) == []
    _downgrade(empty_db, "0006")
    assert _notification_keys(empty_db) == ["conversations", "users"]
    assert titles() == ["first", "second"]
    upgrade(empty_db.write_engine)
    assert _notification_keys(empty_db) == []
    assert titles() == ["first", "second"]
