"""Conversations: reading the inbox, and every change an agent makes to a conversation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session

from server.clock import as_utc
from server.domain import access, notes, notifications
from server.domain.events import emit
from server.domain.services import Actor, Services
from server.domain.views import conversation_view, link_view, message_view
from server.errors import AssigneeUnavailable, ReplyWindowClosed, VersionConflict
from server.providers.registry import provider_type
from server.state import account_queries, conversation_queries, crm_queries, notification_queries
from server.state.models import (
    Contact,
    Conversation,
    CrmLink,
    Event,
    Integration,
    Message,
    OutboundJob,
    ReadMark,
    User,
)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_after: tuple[Any, ...] | None


def present(
    session: Session,
    conversation: Conversation,
    integration: Integration,
    *,
    viewer_id: int | None = None,
    links: Sequence[CrmLink] | None = None,
) -> dict[str, Any]:
    """The conversation's JSON; for a viewer with section and unread count."""
    contact = session.get(Contact, conversation.contact_id)
    assert contact is not None
    last = (
        session.get(Message, conversation.last_message_id) if conversation.last_message_id else None
    )
    names = account_queries.user_names(session, ids=[last.sender_user_id if last else None])
    viewer = None
    if viewer_id is not None:
        assert conversation.id is not None
        mark = conversation_queries.read_mark(
            session, conversation_id=conversation.id, user_id=viewer_id
        )
        viewer = (viewer_id, mark.read_inbound_count if mark else 0)
    if links is None:
        links = crm_queries.links_of(session, conversation_ids=[conversation.id or 0])[
            conversation.id or 0
        ]
    return conversation_view(
        conversation,
        contact=contact,
        integration=integration,
        last_message=last,
        user_names=names,
        links=[link_view(link) for link in links],
        viewer=viewer,
    )


def present_message(
    session: Session, message: Message, conversation: Conversation
) -> dict[str, Any]:
    contact = session.get(Contact, conversation.contact_id)
    assert contact is not None
    return message_view(
        message,
        contact=contact,
        user_names=account_queries.user_names(session, ids=[message.sender_user_id]),
    )


def emit_conversation_event(
    session: Session,
    services: Services,
    conversation: Conversation,
    integration: Integration,
    *,
    type_: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """`conversation.*` events carry the viewer-independent conversation."""
    session.flush()
    data = {"conversation": present(session, conversation, integration), **(extra or {})}
    emit(
        session,
        account_id=conversation.account_id,
        type_=type_,
        data=data,
        now=services.now(),
        integration_id=integration.id,
        conversation_id=conversation.id,
    )


def emit_message_created(
    session: Session,
    services: Services,
    message: Message,
    conversation: Conversation,
    integration: Integration,
    *,
    links: Sequence[CrmLink] | None = None,
) -> None:
    """`links`: the conversation's CRM links, if the caller has them at hand (one query less)."""
    session.flush()
    emit(
        session,
        account_id=conversation.account_id,
        type_="message.created",
        data={
            "message": present_message(session, message, conversation),
            "conversation": present(session, conversation, integration, links=links),
        },
        now=services.now(),
        integration_id=integration.id,
        conversation_id=conversation.id,
    )


def _changed(
    session: Session,
    services: Services,
    conversation: Conversation,
    integration: Integration,
    changes: list[str],
) -> Conversation:
    conversation.version += 1
    conversation.updated_at = services.now()
    session.add(conversation)
    emit_conversation_event(
        session,
        services,
        conversation,
        integration,
        type_="conversation.updated",
        extra={"changes": changes},
    )
    return conversation


def _check_version(conversation: Conversation, version: int | None) -> None:
    if version is not None and version != conversation.version:
        raise VersionConflict()


# Reads ---------------------------------------------------------------------------------------


def list_conversations(
    session: Session,
    actor: Actor,
    *,
    section: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Page:
    integration_ids = account_queries.accessible_integration_ids(
        session, account_id=actor.account_id, user_id=actor.user_id
    )
    rows = conversation_queries.conversation_rows(
        session,
        account_id=actor.account_id,
        viewer_id=actor.user_id,
        integration_ids=integration_ids,
        section=section,
        after=after,
        limit=limit + 1,
    )
    last = conversation_queries.messages_by_id(
        session, ids=[c.last_message_id for c, *_ in rows if c.last_message_id]
    )
    names = account_queries.user_names(session, ids=[m.sender_user_id for m in last.values()])
    links = crm_queries.links_of(session, conversation_ids=[c.id or 0 for c, *_ in rows[:limit]])
    items = [
        conversation_view(
            c,
            contact=contact,
            integration=integration,
            last_message=last.get(c.last_message_id) if c.last_message_id else None,
            user_names=names,
            links=[link_view(link) for link in links[c.id or 0]],
            viewer=(actor.user_id, read),
        )
        for c, contact, integration, read in rows[:limit]
    ]
    next_after = None
    if len(rows) > limit:
        c = rows[limit - 1][0]
        next_after = (as_utc(c.last_message_at).isoformat(), c.id)
    return Page(items, next_after)


def get_conversation(session: Session, actor: Actor, *, conversation_id: int) -> dict[str, Any]:
    conversation, integration = access.get_conversation(session, actor, conversation_id)
    return present(session, conversation, integration, viewer_id=actor.user_id)


def inbox_summary(session: Session, actor: Actor) -> dict[str, Any]:
    integration_ids = account_queries.accessible_integration_ids(
        session, account_id=actor.account_id, user_id=actor.user_id
    )
    counts = conversation_queries.section_counts(
        session,
        account_id=actor.account_id,
        viewer_id=actor.user_id,
        integration_ids=integration_ids,
    )
    return {
        "sections": {name: {"count": n, "unread": unread} for name, (n, unread) in counts.items()}
    }


def list_messages(
    session: Session, actor: Actor, *, conversation_id: int, before_id: int | None, limit: int
) -> Page:
    conversation, _ = access.get_conversation(session, actor, conversation_id)
    rows = conversation_queries.messages_page(
        session, conversation_id=conversation_id, before_id=before_id, limit=limit
    )
    contact = session.get(Contact, conversation.contact_id)
    assert contact is not None
    names = account_queries.user_names(session, ids=[m.sender_user_id for m in rows[:limit]])
    items = [message_view(m, contact=contact, user_names=names) for m in rows[:limit]]
    next_after = (rows[limit - 1].id,) if len(rows) > limit else None
    return Page(items, next_after)


# Changes -------------------------------------------------------------------------------------


def mark_read(session: Session, services: Services, actor: Actor, *, conversation_id: int) -> None:
    """My unread count for the conversation becomes 0. Private to me: no account event."""
    conversation, _ = access.get_conversation(session, actor, conversation_id)
    assert conversation.id is not None
    mark = conversation_queries.read_mark(
        session, conversation_id=conversation.id, user_id=actor.user_id
    )
    if mark is None:
        mark = ReadMark(conversation_id=conversation.id, user_id=actor.user_id)
    mark.read_inbound_count = conversation.inbound_count
    mark.read_at = services.now()
    session.add(mark)
    notifications.conversation_read(session, services, actor, conversation_id=conversation.id)


def assign(
    session: Session,
    services: Services,
    actor: Actor,
    *,
    conversation_id: int,
    assignee_id: int,
    version: int | None = None,
) -> Conversation:
    """Give the conversation to an available teammate with shared access (oneself included)."""
    conversation, integration = access.get_conversation(session, actor, conversation_id, lock=True)
    _check_version(conversation, version)
    assignee = session.get(User, assignee_id)
    if (
        assignee is None
        or assignee.account_id != actor.account_id
        or not assignee.available
        or not access.user_has_shared_access(session, integration, assignee_id)
    ):
        raise AssigneeUnavailable()
    if conversation.assignee_id == assignee_id:
        return conversation
    conversation.assignee_id = assignee_id
    _changed(session, services, conversation, integration, ["assignee_id"])
    notifications.notify_assigned(session, services, actor, conversation, integration)
    return conversation


def unassign(
    session: Session,
    services: Services,
    actor: Actor,
    *,
    conversation_id: int,
    version: int | None = None,
) -> Conversation:
    conversation, integration = access.get_conversation(session, actor, conversation_id, lock=True)
    _check_version(conversation, version)
    if conversation.assignee_id is None:
        return conversation
    conversation.assignee_id = None
    return _changed(session, services, conversation, integration, ["assignee_id"])


def set_status(
    session: Session, services: Services, actor: Actor, *, conversation_id: int, status: str
) -> Conversation:
    """Close ("End conversation") or reopen. The assignment is kept either way."""
    conversation, integration = access.get_conversation(session, actor, conversation_id, lock=True)
    if conversation.status == status:
        return conversation
    conversation.status = status
    return _changed(session, services, conversation, integration, ["status"])


def delete_conversation(
    session: Session, services: Services, actor: Actor, *, conversation_id: int
) -> None:
    """Only the installer may delete; the history goes for good, from the event log too."""
    conversation, integration = access.get_conversation(session, actor, conversation_id, lock=True)
    access.require_installer(actor, integration)
    session.execute(delete(Event).where(Event.conversation_id == conversation_id))  # type: ignore[arg-type]
    notification_queries.delete_notifications(session, conversation_id=conversation_id)
    contact = session.get(Contact, conversation.contact_id)
    # The contact goes too (cascading to the conversation and its messages): writing again
    # starts afresh, with no trace of the old history.
    session.delete(contact)
    session.flush()
    emit(
        session,
        account_id=actor.account_id,
        type_="conversation.deleted",
        data={"conversation_id": conversation_id},
        now=services.now(),
        integration_id=integration.id,
    )


def reply(
    session: Session, services: Services, actor: Actor, *, conversation_id: int, text: str
) -> tuple[Message, Conversation, int]:
    """Store an outbound message and queue it for its provider (sent after commit)."""
    conversation, integration = access.get_conversation(session, actor, conversation_id, lock=True)
    assert integration.id is not None
    now = services.now()
    window = provider_type(integration.provider).reply_window
    if window is not None:
        last_inbound = conversation.last_inbound_at
        if last_inbound is None or now - as_utc(last_inbound) > window:
            raise ReplyWindowClosed()
    message = Message(
        conversation_id=conversation_id,
        integration_id=integration.id,
        direction="outbound",
        text=text,
        sender_user_id=actor.user_id,
        status="queued",
        attachments=[],
        created_at=now,
    )
    session.add(message)
    session.flush()
    assert message.id is not None
    job = OutboundJob(message_id=message.id, next_attempt_at=now)
    session.add(job)
    conversation.last_message_id = message.id
    conversation.last_message_at = max(as_utc(conversation.last_message_at), now)
    conversation.updated_at = now
    session.add(conversation)
    # Before any event: notes take their locks ahead of the account row (see domain/notes.py).
    notes.record_message(session, services, conversation, integration, message)
    emit_message_created(session, services, message, conversation, integration)
    session.flush()
    assert job.id is not None
    return message, conversation, job.id
