"""Keyword-only query helpers for the CRM: persons, leads, deals, links and notes. No rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Integer, bindparam, func, or_
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from server.state.models import CrmLink, Deal, Lead, Message, Note, Person


def record_by_id(
    session: Session,
    model: type[Person] | type[Lead] | type[Deal],
    *,
    account_id: int,
    record_id: int,
) -> Person | Lead | Deal | None:
    """A person, lead or deal of the account."""
    query: Any = select(model).where(
        col(model.id) == record_id, col(model.account_id) == account_id
    )
    record: Person | Lead | Deal | None = session.exec(query).first()
    return record


def persons_page(
    session: Session,
    *,
    account_id: int,
    after_id: int,
    limit: int,
    contains: Sequence[str] = (),
) -> Sequence[Person]:
    """By id; with `contains`, only persons whose search text contains any of those strings."""
    query = select(Person).where(col(Person.account_id) == account_id, col(Person.id) > after_id)
    if contains:
        query = query.where(
            or_(*(col(Person.search_text).contains(c, autoescape=True) for c in contains))
        )
    return session.exec(query.order_by(col(Person.id)).limit(limit)).all()


def records_page(
    session: Session,
    model: type[Lead] | type[Deal],
    *,
    account_id: int,
    after_id: int,
    limit: int,
    person_id: int | None = None,
) -> Sequence[Lead] | Sequence[Deal]:
    query: Any = select(model).where(col(model.account_id) == account_id, col(model.id) > after_id)
    if person_id is not None:
        query = query.where(col(model.person_id) == person_id)
    rows: Sequence[Lead] | Sequence[Deal] = session.exec(
        query.order_by(col(model.id)).limit(limit)
    ).all()
    return rows


def links_of(session: Session, *, conversation_ids: Iterable[int]) -> dict[int, list[CrmLink]]:
    """Per conversation, its links in the order they were made."""
    ids = list(conversation_ids)
    links: dict[int, list[CrmLink]] = {i: [] for i in ids}
    if not ids:
        return links
    query = select(CrmLink).where(col(CrmLink.conversation_id).in_(ids)).order_by(col(CrmLink.id))
    for link in session.exec(query).all():
        links[link.conversation_id].append(link)
    return links


_LINKS_FOR_UPDATE = (
    select(CrmLink)
    .where(col(CrmLink.conversation_id) == bindparam("conversation", type_=Integer))
    .order_by(col(CrmLink.id))
    .with_for_update()
    .execution_options(populate_existing=True)
)


_LINK_IDS_FOR_UPDATE = (
    core_select(col(CrmLink.id))
    .where(col(CrmLink.conversation_id) == bindparam("conversation", type_=Integer))
    .order_by(col(CrmLink.id))
    .with_for_update()
)


def links_for_update(session: Session, *, conversation_id: int) -> Sequence[CrmLink]:
    """The conversation's links, locked (in id order, so lockers queue instead of deadlocking).
    Built once: it runs for every inbound message (see event_queries.append_event). Most
    conversations have no link: for them one Core statement, not the ORM's machinery."""
    params = {"conversation": conversation_id}
    if not session.connection().execute(_LINK_IDS_FOR_UPDATE, params).first():
        return []
    return session.exec(_LINKS_FOR_UPDATE, params=params).all()


def link_by_id(session: Session, *, conversation_id: int, link_id: int) -> CrmLink | None:
    query = select(CrmLink).where(
        col(CrmLink.id) == link_id, col(CrmLink.conversation_id) == conversation_id
    )
    return session.exec(query).first()


def link_to(
    session: Session, *, conversation_id: int, target: str, target_id: int
) -> CrmLink | None:
    query = select(CrmLink).where(
        col(CrmLink.conversation_id) == conversation_id,
        col(CrmLink.target) == target,
        col(CrmLink.target_id) == target_id,
    )
    return session.exec(query).first()


def note_by_id(
    session: Session, *, account_id: int, note_id: int, lock: bool = False
) -> Note | None:
    query = select(Note).where(col(Note.id) == note_id, col(Note.account_id) == account_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.exec(query).first()


def note_of_link(session: Session, *, link_id: int, number: int) -> Note | None:
    """The link's n-th note, locked and read afresh (a user may just have edited it)."""
    query = (
        select(Note)
        .where(col(Note.link_id) == link_id, col(Note.number) == number)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.exec(query).first()


def notes_page(
    session: Session,
    *,
    account_id: int,
    target: str,
    target_id: int,
    before_id: int | None,
    limit: int,
) -> Sequence[Note]:
    """Newest first."""
    query = select(Note).where(
        col(Note.account_id) == account_id,
        col(Note.target) == target,
        col(Note.target_id) == target_id,
    )
    if before_id is not None:
        query = query.where(col(Note.id) < before_id)
    return session.exec(query.order_by(col(Note.id).desc()).limit(limit)).all()


def latest_messages(
    session: Session, *, conversation_id: int, from_id: int | None, limit: int
) -> tuple[list[Message], int]:
    """The newest `limit` messages (with id >= `from_id`), oldest first, and how many there are."""
    where = [col(Message.conversation_id) == conversation_id]
    if from_id is not None:
        where.append(col(Message.id) >= from_id)
    total = session.exec(select(func.count()).select_from(Message).where(*where)).one()
    rows = session.exec(
        select(Message).where(*where).order_by(col(Message.id).desc()).limit(limit)
    ).all()
    return list(reversed(rows)), int(total)
