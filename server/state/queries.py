"""Keyword-only query helpers. They fetch and store; they know no rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import Executable
from sqlmodel import Session, col, select

from server.state.models import (
    Account,
    ApiToken,
    Contact,
    Conversation,
    EarlyStatus,
    Event,
    Integration,
    IntegrationAccess,
    LoginFailure,
    Message,
    ReadMark,
    User,
    UTCDateTime,
)

SECTIONS = ("unassigned", "mine", "others", "closed")


def user_by_email(session: Session, *, email: str) -> User | None:
    return session.execute(select(User).where(User.email == email.lower())).scalars().first()


def credential_by_token_hash(
    session: Session, *, token_hash: str, now: datetime
) -> tuple[User, ApiToken] | None:
    query = (
        select(User, ApiToken)
        .join(ApiToken, col(ApiToken.user_id) == col(User.id))
        .where(ApiToken.token_hash == token_hash)
        .where(or_(col(ApiToken.expires_at).is_(None), col(ApiToken.expires_at) > now))
    )
    row = session.execute(query).first()
    return (row[0], row[1]) if row is not None else None


def touch_token(session: Session, *, token_id: int, now: datetime, unless_after: datetime) -> None:
    """Set `last_used_at` to `now`, unless it is already later than `unless_after`."""
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.id) == token_id)
        .where(
            or_(col(ApiToken.last_used_at).is_(None), col(ApiToken.last_used_at) <= unless_after)
        )
        .values(last_used_at=now)
    )


def tokens_of_user(
    session: Session, *, user_id: int, now: datetime, after_id: int, limit: int
) -> Sequence[ApiToken]:
    """A user's tokens that still work (API tokens, unexpired sessions), by id."""
    query = (
        select(ApiToken)
        .where(ApiToken.user_id == user_id, col(ApiToken.id) > after_id)
        .where(or_(col(ApiToken.expires_at).is_(None), col(ApiToken.expires_at) > now))
        .order_by(col(ApiToken.id))
        .limit(limit)
    )
    return session.execute(query).scalars().all()


def count_tokens(session: Session, *, user_id: int, kind: str) -> int:
    query = select(func.count()).where(ApiToken.user_id == user_id, ApiToken.kind == kind)
    return int(session.execute(query).scalar_one())


def users_of_account(
    session: Session, *, account_id: int, after_id: int = 0, limit: int | None = None
) -> Sequence[User]:
    query = (
        select(User)
        .where(User.account_id == account_id, col(User.id) > after_id)
        .order_by(col(User.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return session.execute(query).scalars().all()


def user_names(session: Session, *, ids: Iterable[int | None]) -> dict[int, str]:
    """Names of the given users (None and unknown ids are skipped): only those a view shows,
    not the whole account's, which may be thousands."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name).where(col(User.id).in_(wanted)))
    return {int(user_id): name for user_id, name in rows}


def recent_login_failures(session: Session, *, email: str, since: datetime) -> list[datetime]:
    query = (
        select(LoginFailure.at)
        .where(LoginFailure.email == email.lower(), col(LoginFailure.at) > since)
        .order_by(col(LoginFailure.at))
    )
    return list(session.execute(query).scalars().all())


def integration_shared_with(
    session: Session, *, integration_ids: Iterable[int]
) -> dict[int, list[int]]:
    ids = list(integration_ids)
    shared: dict[int, list[int]] = {i: [] for i in ids}
    if not ids:
        return shared
    rows = session.execute(
        select(IntegrationAccess.integration_id, IntegrationAccess.user_id)
        .where(col(IntegrationAccess.integration_id).in_(ids))
        .order_by(col(IntegrationAccess.user_id))
    )
    for integration_id, user_id in rows:
        shared[int(integration_id)].append(int(user_id))
    return shared


def integrations_of_account(session: Session, *, account_id: int) -> Sequence[Integration]:
    query = (
        select(Integration)
        .where(Integration.account_id == account_id)
        .order_by(col(Integration.id))
    )
    return session.execute(query).scalars().all()


def accessible_integration_ids(session: Session, *, account_id: int, user_id: int) -> list[int]:
    """Integrations the user installed or that are shared with them."""
    shared = select(IntegrationAccess.integration_id).where(IntegrationAccess.user_id == user_id)
    query = (
        select(Integration.id)
        .where(Integration.account_id == account_id)
        .where(or_(col(Integration.installed_by) == user_id, col(Integration.id).in_(shared)))
        .order_by(col(Integration.id))
    )
    return [int(i) for i in session.execute(query).scalars().all()]


def users_with_access(session: Session, *, integration: Integration) -> list[int]:
    rows = session.execute(
        select(IntegrationAccess.user_id).where(IntegrationAccess.integration_id == integration.id)
    ).scalars()
    return sorted({integration.installed_by, *(int(r) for r in rows)})


def has_access_row(session: Session, *, integration_id: int, user_id: int) -> bool:
    row = session.get(IntegrationAccess, (integration_id, user_id))
    return row is not None


def replace_access(session: Session, *, integration_id: int, user_ids: Iterable[int]) -> None:
    for row in session.execute(
        select(IntegrationAccess).where(IntegrationAccess.integration_id == integration_id)
    ).scalars():
        session.delete(row)
    session.flush()
    for user_id in sorted(set(user_ids)):
        session.add(IntegrationAccess(integration_id=integration_id, user_id=user_id))


# The lookups of every inbound message, built once (see append_event).
_CONTACT_BY_HANDLE = select(Contact).where(
    col(Contact.integration_id) == bindparam("integration", type_=Integer),
    col(Contact.handle) == bindparam("handle", type_=Text),
)
_CONVERSATION_BY_CONTACT = select(Conversation).where(
    col(Conversation.contact_id) == bindparam("contact", type_=Integer)
)
_CONVERSATION_BY_CONTACT_LOCKED = _CONVERSATION_BY_CONTACT.with_for_update()
_MESSAGE_BY_EXTERNAL_ID = select(Message).where(
    col(Message.integration_id) == bindparam("integration", type_=Integer),
    col(Message.external_id) == bindparam("external_id", type_=Text),
)


def contact_by_handle(session: Session, *, integration_id: int, handle: str) -> Contact | None:
    params = {"integration": integration_id, "handle": handle}
    contact: Contact | None = session.execute(_CONTACT_BY_HANDLE, params).scalars().first()
    return contact


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


def events_between(
    session: Session, *, account_id: int, after: int, upto: int | None = None
) -> Sequence[Event]:
    """The account's retained events with `after < seq <= upto`, in order."""
    query = select(Event).where(col(Event.account_id) == account_id, col(Event.seq) > after)
    if upto is not None:
        query = query.where(col(Event.seq) <= upto)
    return session.exec(query.order_by(col(Event.seq))).all()


# Built once, run with bound values (see notification_queries). The names of the bound values
# are no column's: in an UPDATE or INSERT, a value named like a column would also be written.
_BUMP_SEQ = (
    update(Account)
    .where(col(Account.id) == bindparam("bump_account", type_=Integer))
    .values(event_seq=col(Account.event_seq) + 1)
    .returning(col(Account.event_seq))
)


def _append_event_statement() -> Executable:
    """PostgreSQL: take the seq and log the event in one statement."""
    taken = _BUMP_SEQ.cte("taken")
    values = core_select(
        bindparam("bump_account", type_=Integer),
        taken.c.event_seq,
        bindparam("event_type", type_=Text),
        bindparam("event_integration", type_=Integer),
        bindparam("event_conversation", type_=Integer),
        bindparam("frame_head", type_=Text)
        + cast(taken.c.event_seq, Text)
        + bindparam("frame_tail", type_=Text),
        bindparam("event_at", type_=UTCDateTime()),
    )
    columns = ["account_id", "seq", "type", "integration_id", "conversation_id", "frame"]
    return insert(Event).from_select([*columns, "created_at"], values).returning(col(Event.seq))


_APPEND_EVENT = _append_event_statement()


def append_event(
    session: Session,
    *,
    account_id: int,
    type_: str,
    integration_id: int | None,
    conversation_id: int | None,
    frame_head: str,
    frame_tail: str,
    created_at: datetime,
) -> int:
    """Take the account's next seq and log the event under it, its frame being
    `frame_head + seq + frame_tail`; returns the seq. On PostgreSQL one statement: the account
    row stays locked until commit, so the fewer round trips after taking it, the better."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        params = {
            "bump_account": account_id,
            "event_type": type_,
            "event_integration": integration_id,
            "event_conversation": conversation_id,
            "frame_head": frame_head,
            "frame_tail": frame_tail,
            "event_at": created_at,
        }
        return int(connection.execute(_APPEND_EVENT, params).scalar_one())
    seq = int(connection.execute(_BUMP_SEQ, {"bump_account": account_id}).scalar_one())
    row = {
        "account_id": account_id,
        "seq": seq,
        "type": type_,
        "integration_id": integration_id,
        "conversation_id": conversation_id,
        "frame": f"{frame_head}{seq}{frame_tail}",
        "created_at": created_at,
    }
    connection.execute(insert(Event), row)
    return seq


def event_seqs(session: Session, *, account_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Per account: (latest seq, seq up to which events were pruned from the log)."""
    ids = list(account_ids)
    if not ids:
        return {}
    rows = session.exec(
        select(Account.id, Account.event_seq, Account.events_pruned_through).where(
            col(Account.id).in_(ids)
        )
    ).all()
    return {int(i or 0): (int(seq), int(pruned)) for i, seq, pruned in rows}


def access_rows(session: Session, *, account_id: int) -> list[tuple[int, int, int | None]]:
    """(integration, installer, shared user or None) for every integration of the account."""
    query = (
        select(Integration.id, Integration.installed_by, IntegrationAccess.user_id)
        .outerjoin(IntegrationAccess, col(IntegrationAccess.integration_id) == col(Integration.id))
        .where(col(Integration.account_id) == account_id)
    )
    return [
        (int(i or 0), int(by), int(u) if u is not None else None)
        for i, by, u in session.exec(query).all()
    ]


def prune_events(session: Session, *, created_before: datetime, keep_last: int) -> dict[int, int]:
    """Drop events both older than `created_before` and not among each account's last `keep_last`.

    Records, per account, the seq up to which the log was pruned; returns those seqs.
    """
    candidates = session.exec(
        select(Event.account_id, func.max(Event.seq))
        .join(Account, col(Account.id) == col(Event.account_id))
        .where(col(Event.created_at) < created_before)
        .where(col(Event.seq) <= col(Account.event_seq) - keep_last)
        .group_by(col(Event.account_id))
    ).all()
    pruned: dict[int, int] = {}
    for account_id, through in candidates:
        session.exec(
            delete(Event).where(col(Event.account_id) == account_id, col(Event.seq) <= through)
        )
        session.exec(
            update(Account)
            .where(col(Account.id) == account_id, col(Account.events_pruned_through) < through)
            .values(events_pruned_through=through)
        )
        pruned[int(account_id)] = int(through)
    return pruned
