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
from sqlmodel import Session

from server.state import event_queries
from server.state.db import PENDING_EVENTS


@dataclass(frozen=True)
class PendingEvent:
    """An event to publish after commit; `frame` is the encoded server frame, encoded once."""

    account_id: int
    type: str
    seq: int | None
    frame: str
    integration_id: int | None = None  # visible to users with shared access to it, else to all
    user_id: int | None = None  # only for this user (ephemeral events)
    # A personal event for many users at once: (user id, item id) pairs, and `frame` is a
    # template whose item id is `ID_SLOT` (see `personal_template` and `personal_frame`).
    recipients: tuple[tuple[int, int], ...] = ()


# orjson escapes every control character, so a raw NUL never occurs in an encoded frame: it
# can stand for the one value that differs between the frames of a personal event.
ID_SLOT = "\0"


def encode_frame(type_: str, seq: int | None, data: dict[str, Any]) -> str:
    return orjson.dumps({"type": type_, "seq": seq, "data": data}).decode("utf-8")


def frame_around_seq(type_: str, data: dict[str, Any]) -> tuple[str, str]:
    """`encode_frame(type_, seq, data)` as the text before and after the seq, for a frame whose
    seq the database assigns: `head + str(seq) + tail`."""
    head = f'{{"type":{orjson.dumps(type_).decode()},"seq":'
    return head, f',"data":{orjson.dumps(data).decode()}}}'


@dataclass(frozen=True)
class _Draft:
    """An account-wide event recorded by an action; it gets its seq when the transaction ends."""

    account_id: int
    type: str
    data: dict[str, Any]
    now: datetime
    integration_id: int | None
    conversation_id: int | None


def _pending(session: Session) -> list[_Draft | PendingEvent]:
    pending: list[_Draft | PendingEvent] = session.info.setdefault(PENDING_EVENTS, [])
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
) -> None:
    """Record an account-wide event; `seal` numbers it and writes it to the log at the end."""
    _pending(session).append(_Draft(account_id, type_, data, now, integration_id, conversation_id))


def seal(session: Session) -> list[PendingEvent]:
    """Number the transaction's events and write them to the log: the last thing it does.

    Taking the account row's lock (the seq counter) last, and holding it until commit, makes seq
    order commit order, and keeps it out of every lock-order cycle: no transaction waits for
    another lock while holding it.
    """
    sealed: list[PendingEvent] = []
    for item in session.info.pop(PENDING_EVENTS, []):
        if isinstance(item, PendingEvent):
            sealed.append(item)
            continue
        head, tail = frame_around_seq(item.type, item.data)
        seq = event_queries.append_event(
            session,
            account_id=item.account_id,
            type_=item.type,
            integration_id=item.integration_id,
            conversation_id=item.conversation_id,
            frame_head=head,
            frame_tail=tail,
            created_at=item.now,
        )
        sealed.append(
            PendingEvent(
                item.account_id,
                item.type,
                seq,
                f"{head}{seq}{tail}",
                integration_id=item.integration_id,
            )
        )
    session.flush()
    return sealed


def personal_template(type_: str, key: str, item: dict[str, Any]) -> str:
    """`{"type": type_, "seq": null, "data": {key: {"id": ID_SLOT, **item}}}`, encoded once."""
    fields = orjson.dumps(item).decode("utf-8")[1:]  # without its opening brace
    separator = "," if fields != "}" else ""
    head = orjson.dumps({"type": type_, "seq": None}).decode("utf-8")[:-1]
    return f'{head},"data":{{{orjson.dumps(key).decode()}:{{"id":{ID_SLOT}{separator}{fields}}}}}'


def personal_frame(template: str, item_id: int) -> str:
    """The frame of the recipient whose item has `item_id`."""
    return template.replace(ID_SLOT, str(item_id), 1)


def emit_personal(
    session: Session,
    *,
    account_id: int,
    type_: str,
    key: str,
    item: dict[str, Any],
    recipients: list[tuple[int, int]],
) -> None:
    """One ephemeral event per user, told apart only by the id of `item` (e.g. a notification
    for each of a thousand agents): encoded and published once, however many users it has."""
    if recipients:
        frame = personal_template(type_, key, item)
        _pending(session).append(
            PendingEvent(account_id, type_, None, frame, recipients=tuple(recipients))
        )


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
