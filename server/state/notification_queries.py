"""Keyword-only query helpers for in-app notifications and notification email. No rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    Integer,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    update,
)
from sqlalchemy.sql.expression import Executable
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


# The hot statements are built once per shape and run with bound values: SQLAlchemy then skips
# building the expression and its cache key on each call, which cost more than the database's work.
# The values' names are no column's (see event_queries: in an INSERT or UPDATE, a value named
# like a column may be written to it).
_USER_ID = bindparam("only_user", type_=Integer)
_EXCEPT_USER_ID = bindparam("but_user", type_=Integer)


def _wanting(*, channel: str, kind: str, default: bool, one: bool, all_but_one: bool) -> Any:
    """Users with shared access to the integration (its installer and those it is shared with),
    optionally only one or all but one, whose setting for `channel` and `kind` is on (their
    stored setting, or `default` if they never set it). Evaluated by the database, so that a
    team of thousands costs no row in Python. Binds `of_integration` and `installer` (and
    `only_user` or `but_user`)."""
    shared = select(IntegrationAccess.user_id).where(
        IntegrationAccess.integration_id == bindparam("of_integration", type_=Integer)
    )
    stored = col(User.notification_settings)[(channel, kind)].as_boolean()
    query = select(col(User.id)).where(
        or_(
            col(User.id) == bindparam("installer", type_=Integer),
            col(User.id).in_(shared),
        ),
        func.coalesce(stored, default),
    )
    if one:
        query = query.where(col(User.id) == _USER_ID)
    if all_but_one:
        query = query.where(col(User.id) != _EXCEPT_USER_ID)
    return query


@cache
def _add_statement(
    kind: str, default: bool, one: bool, all_but_one: bool, postgresql: bool
) -> Executable:
    who = _wanting(channel="desktop", kind=kind, default=default, one=one, all_but_one=all_but_one)
    values = who.add_columns(
        literal(kind),
        bindparam("about_conversation", type_=Integer),
        bindparam("new_title", type_=Text),
        bindparam("new_body", type_=Text),
        bindparam("new_at", type_=UTCDateTime()),
    )
    statement = (
        insert(Notification)
        .from_select(["user_id", "kind", "conversation_id", "title", "body", "created_at"], values)
        .returning(col(Notification.user_id), col(Notification.id))
    )
    if not postgresql:
        return statement
    # Two JSON arrays in one row: orjson reads a thousand ids in a few microseconds, where
    # psycopg's parsing of the same two arrays cost ~0.2 ms a message.
    added = statement.cte("added")
    return select(
        cast(func.array_to_json(func.array_agg(added.c.user_id)), Text),
        cast(func.array_to_json(func.array_agg(added.c.id)), Text),
    )


@cache
def _email_statement(kind: str, default: bool, one: bool, all_but_one: bool) -> Executable:
    statement: Executable = _wanting(
        channel="email", kind=kind, default=default, one=one, all_but_one=all_but_one
    )
    return statement


def _audience(
    integration: Integration, user_id: int | None, except_user_id: int | None
) -> dict[str, Any]:
    return {
        "of_integration": integration.id,
        "installer": integration.installed_by,
        "only_user": user_id,
        "but_user": except_user_id,
    }


def add_notifications(
    session: Session,
    *,
    integration: Integration,
    kind: str,
    default: bool,
    user_id: int | None = None,
    except_user_id: int | None = None,
    conversation_id: int,
    title: str,
    body: str,
    created_at: datetime,
) -> list[tuple[int, int]]:
    """One unread notification for each user `_wanting` it on the desktop, in one statement;
    their (user id, notification id) pairs."""
    connection = session.connection()  # Core, not the ORM's bulk machinery
    postgresql = connection.dialect.name == "postgresql"
    statement = _add_statement(
        kind, default, user_id is not None, except_user_id is not None, postgresql
    )
    params = {
        **_audience(integration, user_id, except_user_id),
        "about_conversation": conversation_id,
        "new_title": title,
        "new_body": body,
        "new_at": created_at,
    }
    if postgresql:
        user_ids, ids = connection.execute(statement, params).one()
        if user_ids is None:  # nobody wanted it
            return []
        return list(zip(orjson.loads(user_ids), orjson.loads(ids), strict=True))
    rows = connection.execute(statement, params)
    return [(user, row_id) for user, row_id in rows if row_id is not None]


def users_wanting_email(
    session: Session,
    *,
    integration: Integration,
    kind: str,
    default: bool,
    user_id: int | None = None,
    except_user_id: int | None = None,
) -> list[int]:
    statement = _email_statement(kind, default, user_id is not None, except_user_id is not None)
    params = _audience(integration, user_id, except_user_id)
    return sorted(int(i) for i in session.connection().execute(statement, params).scalars())


def delete_notifications(
    session: Session, *, conversation_id: int | None = None, integration_id: int | None = None
) -> None:
    """Every user's notifications about a conversation, or about all of an integration's
    (notifications have no foreign keys to cascade: see models.Notification)."""
    if conversation_id is not None:
        which = col(Notification.conversation_id) == conversation_id
    else:
        assert integration_id is not None
        conversations = select(Conversation.id).where(
            col(Conversation.integration_id) == integration_id
        )
        which = col(Notification.conversation_id).in_(conversations)
    session.execute(delete(Notification).where(which))


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
