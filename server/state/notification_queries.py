"""Keyword-only query helpers for in-app notifications and notification email. No rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, text, update
from sqlmodel import Session, col, select

from server.state.models import (
    Conversation,
    EmailDigest,
    Integration,
    IntegrationAccess,
    Notification,
    User,
    UTCDateTime,
)

# Notifications -------------------------------------------------------------------------------


def settings_of_users_with_access(
    session: Session, *, integration: Integration
) -> list[tuple[int, dict[str, Any] | None]]:
    """(user id, stored notification settings) of the installer and everyone it is shared with:
    two columns, not whole users, since a team may have thousands."""
    shared = select(IntegrationAccess.user_id).where(
        IntegrationAccess.integration_id == integration.id
    )
    rows = session.execute(
        select(User.id, User.notification_settings)
        .where(or_(col(User.id) == integration.installed_by, col(User.id).in_(shared)))
        .order_by(col(User.id))
    )
    return [(int(user_id), stored) for user_id, stored in rows]


# One statement for any number of rows: a short, constant text that PostgreSQL plans once,
# instead of a multi-row VALUES list that psycopg must parse afresh for every length.
_INSERT_UNNEST = text(
    "INSERT INTO notifications (user_id, kind, conversation_id, title, body, created_at) "
    "SELECT r.user_id, r.kind, :conversation_id, r.title, :body, :created_at "
    "FROM unnest(CAST(:user_ids AS integer[]), CAST(:kinds AS text[]), CAST(:titles AS text[]))"
    " AS r(user_id, kind, title) "
    "RETURNING id, user_id"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


def insert_notifications(
    session: Session,
    *,
    rows: Sequence[tuple[int, str, str]],
    conversation_id: int,
    body: str,
    created_at: datetime,
) -> dict[int, int]:
    """Add one unread notification per (user id, kind, title); returns user id → its id."""
    if not rows:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        result = session.execute(
            _INSERT_UNNEST,
            {
                "user_ids": [user_id for user_id, _, _ in rows],
                "kinds": [kind for _, kind, _ in rows],
                "titles": [title for _, _, title in rows],
                "conversation_id": conversation_id,
                "body": body,
                "created_at": created_at,
            },
        )
    else:
        table = cast(Table, Notification.__table__)  # type: ignore[attr-defined]
        result = session.execute(
            insert(table).returning(table.c.id, table.c.user_id),
            [
                {
                    "user_id": user_id,
                    "kind": kind,
                    "conversation_id": conversation_id,
                    "title": title,
                    "body": body,
                    "created_at": created_at,
                }
                for user_id, kind, title in rows
            ],
        )
    return {int(user_id): int(row_id) for row_id, user_id in result}


def _notifications_of(user_id: int, integration_ids: Sequence[int]) -> Any:
    """The user's notifications about conversations of these integrations."""
    return (
        select(Notification)
        .join(Conversation, col(Conversation.id) == col(Notification.conversation_id))
        .where(col(Notification.user_id) == user_id)
        .where(col(Conversation.integration_id).in_(list(integration_ids)))
    )


def notifications_page(
    session: Session,
    *,
    user_id: int,
    integration_ids: Sequence[int],
    before_id: int | None,
    limit: int,
) -> Sequence[Notification]:
    """Newest first; ask for `limit + 1` to learn whether there is a next page."""
    query = _notifications_of(user_id, integration_ids)
    if before_id is not None:
        query = query.where(col(Notification.id) < before_id)
    query = query.order_by(col(Notification.id).desc()).limit(limit)
    notifications: Sequence[Notification] = session.exec(query).all()
    return notifications


def unread_notification_count(
    session: Session, *, user_id: int, integration_ids: Sequence[int]
) -> int:
    unread = (
        _notifications_of(user_id, integration_ids)
        .where(col(Notification.read_at).is_(None))
        .subquery()
    )
    return int(session.exec(select(func.count()).select_from(unread)).one())


def mark_notifications_read(
    session: Session,
    *,
    user_id: int,
    now: datetime,
    ids: Iterable[int] | None = None,
    conversation_id: int | None = None,
) -> list[int]:
    """Set `read_at` on the user's unread notifications (all, or those named); their ids."""
    query = update(Notification).where(
        col(Notification.user_id) == user_id, col(Notification.read_at).is_(None)
    )
    if ids is not None:
        query = query.where(col(Notification.id).in_(sorted(set(ids))))
    if conversation_id is not None:
        query = query.where(col(Notification.conversation_id) == conversation_id)
    query = query.values(read_at=now).returning(col(Notification.id))
    rows = session.execute(query.execution_options(synchronize_session=False)).scalars()
    return sorted(int(i) for i in rows)


def email_digest(
    session: Session, *, user_id: int, conversation_id: int, lock: bool = False
) -> EmailDigest | None:
    query = select(EmailDigest).where(
        col(EmailDigest.user_id) == user_id, col(EmailDigest.conversation_id) == conversation_id
    )
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def email_digest_by_id(
    session: Session, *, digest_id: int, lock: bool = False
) -> EmailDigest | None:
    query = select(EmailDigest).where(col(EmailDigest.id) == digest_id)
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def due_email_digest_ids(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Digests whose time has come and that no worker holds."""
    query = (
        select(EmailDigest.id)
        .where(col(EmailDigest.due_at) <= now)
        .where(or_(col(EmailDigest.locked_until).is_(None), col(EmailDigest.locked_until) < now))
        .order_by(col(EmailDigest.due_at))
        .limit(limit)
    )
    return [int(i) for i in session.exec(query).all() if i is not None]


def lease_email_digest(session: Session, *, digest_id: int, now: datetime, until: datetime) -> bool:
    """Take a due digest until `until` (counting an attempt); False if not due or held."""
    taken = session.execute(
        update(EmailDigest)
        .where(col(EmailDigest.id) == digest_id, col(EmailDigest.due_at) <= now)
        .where(or_(col(EmailDigest.locked_until).is_(None), col(EmailDigest.locked_until) < now))
        .values(locked_until=until, attempts=col(EmailDigest.attempts) + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def delete_idle_email_digests(session: Session, *, sent_before: datetime) -> None:
    """Digests with nothing pending whose last email (if any) went before `sent_before`."""
    session.exec(
        delete(EmailDigest)
        .where(col(EmailDigest.due_at).is_(None))
        .where(
            or_(
                col(EmailDigest.last_sent_at).is_(None),
                col(EmailDigest.last_sent_at) < sent_before,
            )
        )
    )
