"""The single publish seam: actions record events here inside their transaction.

Account-wide events get the account's next sequence number and a row in the event log, written
in the same transaction as the change they describe (an outbox): if the process dies after commit,
the event is still there to relay and replay. Ephemeral events (presence, one user's
notifications) carry no sequence number and are not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import update
from sqlmodel import Session, col

from server.state.db import PENDING_EVENTS
from server.state.models import Account, Event


@dataclass(frozen=True)
class PendingEvent:
    """An event to publish after commit; `frame` is the encoded server frame, encoded once."""

    account_id: int
    type: str
    seq: int | None
    frame: str
    integration_id: int | None = None  # visible to users with shared access to it, else to all
    user_id: int | None = None  # only for this user (ephemeral events)


def encode_frame(type_: str, seq: int | None, data: dict[str, Any]) -> str:
    return orjson.dumps({"type": type_, "seq": seq, "data": data}).decode("utf-8")


def _pending(session: Session) -> list[PendingEvent]:
    pending: list[PendingEvent] = session.info.setdefault(PENDING_EVENTS, [])
    return pending


def emit(
    session: Session,
    *,
    account_id: int,
    type_: str,
    data: dict[str, Any],
    now: datetime,
    integration_id: int | None = None,
    conversation_id: int | None = None,
) -> PendingEvent:
    """Record an account-wide event with the account's next sequence number."""
    # The UPDATE locks the account row until commit, so seq order is commit order.
    seq = session.execute(
        update(Account)
        .where(col(Account.id) == account_id)
        .values(event_seq=col(Account.event_seq) + 1)
        .returning(col(Account.event_seq))
    ).scalar_one()
    frame = encode_frame(type_, seq, data)
    session.add(
        Event(
            account_id=account_id,
            seq=seq,
            type=type_,
            integration_id=integration_id,
            conversation_id=conversation_id,
            frame=frame,
            created_at=now,
        )
    )
    event = PendingEvent(account_id, type_, seq, frame, integration_id=integration_id)
    _pending(session).append(event)
    return event


def emit_ephemeral(
    session: Session,
    *,
    account_id: int,
    type_: str,
    data: dict[str, Any],
    user_id: int | None = None,
) -> PendingEvent:
    """Record an event without a sequence number, published after commit and never replayed."""
    event = PendingEvent(account_id, type_, None, encode_frame(type_, None, data), user_id=user_id)
    _pending(session).append(event)
    return event
