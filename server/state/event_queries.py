"""Keyword-only query helpers for the event log. No rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Integer, Text, bindparam, cast, delete, func, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.sql.expression import Executable
from sqlmodel import Session, col, select

from server.state.models import Account, Event, UTCDateTime


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
