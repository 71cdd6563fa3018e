"""Keyword-only query helpers for contacts, conversations, messages and the inbox. No rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    or_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import Executable
from sqlmodel import Session, col, select

from server.state.models import (
    Contact,
    Conversation,
    CrmLink,
    EarlyStatus,
    Integration,
    Message,
    ReadMark,
)

SECTIONS = ("unassigned", "mine", "others", "closed")


# The lookups of every inbound message, built once (see event_queries.append_event).
_CONTACT_BY_HANDLE = select(Contact).where(
    col(Contact.integration_id) == bindparam("integration", type_=Integer),
    col(Contact.handle) == bindparam("handle", type_=Text),
)
_CONVERSATION_BY_CONTACT = select(Conversation).where(
    col(Conversation.contact_id) == bindparam("contact", type_=Integer)
)
_CONVERSATION_BY_CONTACT_LOCKED = _CONVERSATION_BY_CONTACT.with_for_update()
# A known contact's message: its contact, its conversation (locked) and whether that has CRM
# links, in one round trip.
_THREAD_BY_HANDLE = (
    select(
        Contact,
        Conversation,
        exists().where(col(CrmLink.conversation_id) == col(Conversation.id)).label("linked"),
    )
    .join(Conversation, col(Conversation.contact_id) == col(Contact.id))
    .where(
        col(Contact.integration_id) == bindparam("integration", type_=Integer),
        col(Contact.handle) == bindparam("handle", type_=Text),
    )
    .with_for_update(of=Conversation)
)
_MESSAGE_BY_EXTERNAL_ID = select(Message).where(
    col(Message.integration_id) == bindparam("integration", type_=Integer),
    col(Message.external_id) == bindparam("external_id", type_=Text),
)


def contact_by_handle(session: Session, *, integration_id: int, handle: str) -> Contact | None:
    params = {"integration": integration_id, "handle": handle}
    contact: Contact | None = session.execute(_CONTACT_BY_HANDLE, params).scalars().first()
    return contact


def thread_by_handle(
    session: Session, *, integration_id: int, handle: str
) -> tuple[Contact, Conversation, bool] | None:
    """The contact with this handle, its conversation (locked) and whether the conversation
    has CRM links; None if the contact or its conversation is missing."""
    params = {"integration": integration_id, "handle": handle}
    row = session.execute(_THREAD_BY_HANDLE, params).first()
    return None if row is None else (row[0], row[1], bool(row[2]))


def conversation_by_contact(
    session: Session, *, contact_id: int, lock: bool = False
) -> Conversation | None:
    query = _CONVERSATION_BY_CONTACT_LOCKED if lock else _CONVERSATION_BY_CONTACT
    conversation: Conversation | None = (
        session.execute(query, {"contact": contact_id}).scalars().first()
    )
    return conversation


def conversation_by_id(
    session: Session, *, account_id: int, conversation_id: int, lock: bool = False
) -> Conversation | None:
    query = select(Conversation).where(
        col(Conversation.id) == conversation_id, col(Conversation.account_id) == account_id
    )
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalars().first()


def message_by_external_id(
    session: Session, *, integration_id: int, external_id: str
) -> Message | None:
    params = {"integration": integration_id, "external_id": external_id}
    message: Message | None = session.execute(_MESSAGE_BY_EXTERNAL_ID, params).scalars().first()
    return message


_MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]
_CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]
_MESSAGE_COLUMNS = [c.name for c in _MESSAGES.columns if c.name != "id"]


def _insert_message_once(dialect: str) -> Insert:
    """The message, unless its integration has one with its external id: its id, or no row.
    Values are bound as `new_<column>` (no bound name may be a column's: see event_queries)."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    values = {
        name: bindparam(f"new_{name}", type_=_MESSAGES.c[name].type) for name in _MESSAGE_COLUMNS
    }
    return (
        insert(_MESSAGES)
        .values(values)
        .on_conflict_do_nothing(index_elements=["integration_id", "external_id"])
        .returning(_MESSAGES.c.id, _MESSAGES.c.conversation_id)
    )


def _conversation_changes(changed: tuple[str, ...]) -> dict[str, Any]:
    return {name: bindparam(f"to_{name}", type_=_CONVERSATIONS.c[name].type) for name in changed}


@cache
def _store_message(dialect: str, changed: tuple[str, ...]) -> tuple[Executable, Executable | None]:
    """PostgreSQL: one statement that inserts the message once and, if it did, updates its
    conversation (`WITH inserted AS (INSERT … RETURNING id) UPDATE conversations … FROM
    inserted`). SQLite, which has no INSERT in WITH: the two statements."""
    if dialect != "postgresql":
        conversation = _CONVERSATIONS.c.id == bindparam("of_conversation", type_=Integer)
        update_ = update(_CONVERSATIONS).where(conversation)
        return _insert_message_once(dialect), update_.values(
            last_message_id=bindparam("to_last_message_id", type_=Integer),
            **_conversation_changes(changed),
        )
    inserted = _insert_message_once(dialect).cte("inserted")
    both = (
        update(_CONVERSATIONS)
        .where(_CONVERSATIONS.c.id == inserted.c.conversation_id)
        .values(last_message_id=inserted.c.id, **_conversation_changes(changed))
        .returning(inserted.c.id)
    )
    return both, None


def store_message(
    session: Session, message: Message, *, conversation: Conversation, changes: dict[str, Any]
) -> bool:
    """Insert `message` unless its integration has a message with its external id already. If
    inserted, it becomes its conversation's last message and `changes` are written to the
    conversation, in one round trip on PostgreSQL; both are then in the session as if loaded
    (no flush writes either again). False, and nothing written, for a known external id."""
    connection = session.connection()  # Core: no unit of work
    changed = tuple(sorted(changes))
    first, then = _store_message(connection.dialect.name, changed)
    values: dict[str, Any] = {f"new_{name}": getattr(message, name) for name in _MESSAGE_COLUMNS}
    values.update({f"to_{name}": value for name, value in changes.items()})
    new_id = connection.execute(first, values).scalar()
    if new_id is None:
        return False
    if then is not None:
        extra = {"of_conversation": conversation.id, "to_last_message_id": new_id}
        connection.execute(then, {**values, **extra})
    message.id = int(new_id)
    make_transient_to_detached(message)
    session.add(message)
    for name, value in {**changes, "last_message_id": message.id}.items():
        set_committed_value(conversation, name, value)
    return True


def messages_by_id(session: Session, *, ids: Iterable[int]) -> dict[int, Message]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = session.execute(select(Message).where(col(Message.id).in_(wanted))).scalars()
    return {int(m.id): m for m in rows if m.id is not None}


def outbound_up_to(session: Session, *, conversation_id: int, up_to: datetime) -> Sequence[Message]:
    """The conversation's outbound messages created at or before `up_to`, oldest first."""
    query = (
        select(Message)
        .where(col(Message.conversation_id) == conversation_id)
        .where(col(Message.direction) == "outbound", col(Message.created_at) <= up_to)
        .order_by(col(Message.id))
    )
    return session.exec(query).all()


def early_statuses(session: Session, *, integration_id: int, external_id: str) -> list[EarlyStatus]:
    query = select(EarlyStatus).where(
        col(EarlyStatus.integration_id) == integration_id,
        col(EarlyStatus.external_id) == external_id,
    )
    return list(session.exec(query.order_by(col(EarlyStatus.id))).all())


def keep_early_status(
    session: Session,
    *,
    integration_id: int,
    external_id: str,
    status: str,
    error: str | None,
    now: datetime,
    keep_for: timedelta,
) -> None:
    """Store a status for an unknown message id, dropping ones older than `keep_for`."""
    session.exec(delete(EarlyStatus).where(col(EarlyStatus.received_at) < now - keep_for))
    session.add(
        EarlyStatus(
            integration_id=integration_id,
            external_id=external_id,
            status=status,
            error=error,
            received_at=now,
        )
    )


def messages_page(
    session: Session, *, conversation_id: int, before_id: int | None, limit: int
) -> Sequence[Message]:
    """Newest first; `limit + 1` rows so the caller can tell whether there is a next page."""
    query = select(Message).where(Message.conversation_id == conversation_id)
    if before_id is not None:
        query = query.where(col(Message.id) < before_id)
    query = query.order_by(col(Message.id).desc()).limit(limit + 1)
    return session.execute(query).scalars().all()


def read_mark(session: Session, *, conversation_id: int, user_id: int) -> ReadMark | None:
    return session.get(ReadMark, (conversation_id, user_id))


def _mark_of(mark: Any, viewer_id: int) -> Any:
    """Join condition: the viewer's read mark of the conversation."""
    return and_(col(mark.conversation_id) == col(Conversation.id), col(mark.user_id) == viewer_id)


def section_condition(section: str, *, viewer_id: int) -> Any:
    status, assignee = col(Conversation.status), col(Conversation.assignee_id)
    return {
        "unassigned": and_(status == "open", assignee.is_(None)),
        "mine": and_(status == "open", assignee == viewer_id),
        "others": and_(status == "open", assignee.is_not(None), assignee != viewer_id),
        "closed": status == "closed",
    }[section]


def section_expression(*, viewer_id: int) -> Any:
    """The viewer's section of a conversation, as SQL."""
    return case(
        *((section_condition(s, viewer_id=viewer_id), s) for s in SECTIONS),
        else_="closed",
    )


def conversation_rows(
    session: Session,
    *,
    account_id: int,
    viewer_id: int,
    integration_ids: Sequence[int],
    section: str | None = None,
    after: tuple[datetime, int] | None = None,
    conversation_id: int | None = None,
    limit: int = 50,
) -> list[tuple[Conversation, Contact, Integration, int]]:
    """Conversations, newest activity first, with contact, integration and viewer's read count."""
    mark = aliased(ReadMark)
    query = (
        select(Conversation, Contact, Integration, func.coalesce(mark.read_inbound_count, 0))
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .join(Integration, col(Integration.id) == col(Conversation.integration_id))
        .outerjoin(mark, _mark_of(mark, viewer_id))
        .where(Conversation.account_id == account_id)
        .where(col(Conversation.integration_id).in_(list(integration_ids)))
    )
    if section is not None:
        query = query.where(section_condition(section, viewer_id=viewer_id))
    if conversation_id is not None:
        query = query.where(Conversation.id == conversation_id)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                col(Conversation.last_message_at) < at,
                and_(col(Conversation.last_message_at) == at, col(Conversation.id) < last_id),
            )
        )
    query = query.order_by(col(Conversation.last_message_at).desc(), col(Conversation.id).desc())
    query = query.limit(limit)
    return [(c, ct, i, int(n)) for c, ct, i, n in session.execute(query).all()]


def section_counts(
    session: Session, *, account_id: int, viewer_id: int, integration_ids: Sequence[int]
) -> dict[str, tuple[int, int]]:
    """Per section: (conversations, conversations with unread messages) for the viewer."""
    mark = aliased(ReadMark)
    section = section_expression(viewer_id=viewer_id).label("section")
    unread = case(
        (col(Conversation.inbound_count) > func.coalesce(mark.read_inbound_count, 0), 1), else_=0
    )
    query = (
        select(section, func.count(), func.sum(unread))
        .select_from(Conversation)
        .outerjoin(mark, _mark_of(mark, viewer_id))
        .where(Conversation.account_id == account_id)
        .where(col(Conversation.integration_id).in_(list(integration_ids)))
        .group_by(section)
    )
    counts = {s: (0, 0) for s in SECTIONS}
    for name, total, with_unread in session.execute(query).all():
        counts[str(name)] = (int(total), int(with_unread or 0))
    return counts
