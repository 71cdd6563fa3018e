"""Notes: a linked conversation's history, kept as plain-text notes on the CRM record.

Linking starts a note holding the latest messages. Every new message of the conversation, in
either direction, rewrites the link's current note, as long as the message falls within 24 hours
of the note's start and no user has edited or deleted that note; otherwise it starts a new one.

Concurrency: the link rows are locked (`FOR UPDATE`) before a note is looked at, and each note
carries its link's running number under a unique constraint, so two messages arriving at once
can never start two notes for one window. Locks are always taken in the same order: the
conversation, its links, the note, and only then the account row that `emit` bumps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from server.clock import as_utc
from server.domain.events import emit
from server.domain.records import get_record
from server.domain.services import Actor, Services
from server.domain.views import note_view
from server.errors import NotFound
from server.state import account_queries, crm_queries
from server.state.models import Contact, Conversation, CrmLink, Integration, Message, Note

NOTE_WINDOW = timedelta(hours=24)
# The most messages one note shows (the newest); older ones are counted, not repeated.
MESSAGES_PER_NOTE = 50


def conversation_url(services: Services, conversation_id: int) -> str:
    return f"{services.settings.public_url}/#/conversations/{conversation_id}"


def _when(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _one_line(value: str) -> str:
    """Names on one line: a contact's name must not be able to fake a line of the note."""
    return " ".join(value.split())


def render(
    session: Session,
    services: Services,
    conversation: Conversation,
    integration: Integration,
    *,
    first_message_id: int | None,
) -> str:
    """The note's plain text: who and where, the assignment, the messages (those from
    `first_message_id` on, or all), and a link back to the conversation."""
    assert conversation.id is not None
    contact = session.get(Contact, conversation.contact_id)
    assert contact is not None
    messages, total = crm_queries.latest_messages(
        session,
        conversation_id=conversation.id,
        from_id=first_message_id,
        limit=MESSAGES_PER_NOTE,
    )
    shown = [conversation.assignee_id, *(m.sender_user_id for m in messages)]
    names = {i: _one_line(n) for i, n in account_queries.user_names(session, ids=shown).items()}
    assignee = names.get(conversation.assignee_id) if conversation.assignee_id else None
    contact_name = _one_line(contact.name)
    lines = [
        f"Conversation with {contact_name} ({_one_line(contact.handle)})"
        f" on {_one_line(integration.name)}",
        f"Assigned to {assignee}" if assignee else "Unassigned",
        "",
    ]
    if total > len(messages):
        lines.append(f"({total - len(messages)} earlier messages not shown)")
    for message in messages:
        if message.direction == "inbound":
            sender = contact_name
        else:
            sender = names.get(message.sender_user_id or 0, "") or "(former user)"
        # Every kind of line break; later lines indented, so no text passes for a header line.
        text = "\n    ".join(message.text.splitlines())
        lines.append(f"{_when(message.created_at)} {sender}: {text}")
    if not messages:
        lines.append("(no messages yet)")
    lines += ["", f"Open the conversation: {conversation_url(services, conversation.id)}"]
    return "\n".join(lines)


def _emit(session: Session, services: Services, note: Note, type_: str) -> None:
    session.flush()
    # To every user of the account (integration_id=None); not tied to the conversation in the
    # log, since notes outlive it.
    emit(
        session,
        account_id=note.account_id,
        type_=type_,
        data={"note": note_view(note)},
        now=services.now(),
    )


def _start_note(
    session: Session,
    services: Services,
    link: CrmLink,
    conversation: Conversation,
    integration: Integration,
    *,
    window_start: datetime,
    first_message_id: int | None,
    now: datetime,
) -> Note:
    """The link's next note; the unique (link, number) refuses a second one for the window."""
    assert link.id is not None
    link.notes_started += 1
    session.add(link)
    note = Note(
        account_id=link.account_id,
        target=link.target,
        target_id=link.target_id,
        conversation_id=link.conversation_id,
        link_id=link.id,
        number=link.notes_started,
        window_start=window_start,
        first_message_id=first_message_id,
        content=render(
            session, services, conversation, integration, first_message_id=first_message_id
        ),
        created_at=now,
        updated_at=now,
    )
    session.add(note)
    session.flush()
    return note


def note_for_new_link(
    session: Session,
    services: Services,
    link: CrmLink,
    conversation: Conversation,
    integration: Integration,
) -> Note:
    """The note written on linking: the whole conversation so far (its latest messages shown).

    Emits nothing; the caller does.
    """
    now = services.now()
    return _start_note(
        session,
        services,
        link,
        conversation,
        integration,
        window_start=now,
        first_message_id=None,
        now=now,
    )


def emit_created(session: Session, services: Services, note: Note) -> None:
    _emit(session, services, note, "note.created")


def record_message(
    session: Session,
    services: Services,
    conversation: Conversation,
    integration: Integration,
    message: Message,
    *,
    linked: bool = True,
) -> Sequence[CrmLink]:
    """Put a new message into each link's current note, or start a new note for it; returns
    the conversation's links (locked). `linked=False`: the caller knows, under the
    conversation's lock, that it has none (most conversations): no query at all.

    Call it after the message is stored and before any event of the transaction is emitted
    (see the lock order above).
    """
    assert conversation.id is not None and message.id is not None
    if not linked:
        return []
    at = as_utc(message.created_at)
    written: list[tuple[Note, str]] = []
    links = crm_queries.links_for_update(session, conversation_id=conversation.id)
    for link in links:
        assert link.id is not None
        note = None
        if link.notes_started:
            note = crm_queries.note_of_link(session, link_id=link.id, number=link.notes_started)
        if note is not None and not note.edited and at < as_utc(note.window_start) + NOTE_WINDOW:
            note.content = render(
                session,
                services,
                conversation,
                integration,
                first_message_id=note.first_message_id,
            )
            note.updated_at = services.now()
            session.add(note)
            written.append((note, "note.updated"))
        else:
            # None yet, deleted, edited by a user, or its window is over.
            note = _start_note(
                session,
                services,
                link,
                conversation,
                integration,
                window_start=at,
                first_message_id=message.id,
                now=services.now(),
            )
            written.append((note, "note.created"))
    # Only now, with every note locked: emitting locks the account row until commit.
    for note, type_ in written:
        _emit(session, services, note, type_)
    return links


# What users do with notes --------------------------------------------------------------------


def list_notes(
    session: Session,
    actor: Actor,
    *,
    target: str,
    target_id: int,
    before_id: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], tuple[int] | None]:
    """The record's notes, newest first; the record must be the actor's account's."""
    get_record(session, actor, target=target, record_id=target_id)
    rows = crm_queries.notes_page(
        session,
        account_id=actor.account_id,
        target=target,
        target_id=target_id,
        before_id=before_id,
        limit=limit + 1,
    )
    items = [note_view(n) for n in rows[:limit]]
    next_after = (rows[limit - 1].id or 0,) if len(rows) > limit else None
    return items, next_after


def _note(session: Session, actor: Actor, note_id: int) -> Note:
    note = crm_queries.note_by_id(session, account_id=actor.account_id, note_id=note_id, lock=True)
    if note is None:
        raise NotFound("No such note.")
    return note


def edit_note(
    session: Session, services: Services, actor: Actor, *, note_id: int, content: str
) -> Note:
    """A user's edit: from now on new messages leave this note alone and start a new one."""
    note = _note(session, actor, note_id)
    note.content = content
    note.edited = True
    note.updated_at = services.now()
    session.add(note)
    _emit(session, services, note, "note.updated")
    return note


def delete_note(session: Session, services: Services, actor: Actor, *, note_id: int) -> None:
    """Gone for good; the link's next message starts a new note."""
    note = _note(session, actor, note_id)
    session.delete(note)
    session.flush()
    emit(
        session,
        account_id=actor.account_id,
        type_="note.deleted",
        data={"note_id": note_id, "target": note.target, "target_id": note.target_id},
        now=services.now(),
    )
