"""Inbound messages from customers: the one way a provider's message enters the inbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from server.clock import as_utc
from server.domain import notes
from server.domain.conversations import emit_conversation_event, emit_message_created
from server.domain.notifications import notify_inbound
from server.domain.services import Services
from server.providers.base import InboundMessage
from server.state import conversation_queries
from server.state.models import Contact, Conversation, Integration, Message


@dataclass(frozen=True)
class Ingested:
    message_id: int
    conversation_id: int
    duplicate: bool


def _contact(
    session: Session, integration: Integration, inbound: InboundMessage, now: datetime
) -> Contact:
    assert integration.id is not None
    contact = conversation_queries.contact_by_handle(
        session, integration_id=integration.id, handle=inbound.contact_handle
    )
    if contact is None:
        contact = Contact(
            integration_id=integration.id,
            handle=inbound.contact_handle,
            name=inbound.contact_name or inbound.contact_handle,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(contact)
                session.flush()
        except IntegrityError:
            # The same contact's first message arrived twice at once; or the integration is gone
            # (deleted since its webhook was verified), which the caller must hear of.
            contact = conversation_queries.contact_by_handle(
                session, integration_id=integration.id, handle=inbound.contact_handle
            )
            if contact is None:
                raise
    elif inbound.contact_name and inbound.contact_name != contact.name:
        contact.name = inbound.contact_name
        session.add(contact)
    return contact


def _conversation(
    session: Session, integration: Integration, contact: Contact, now: datetime
) -> tuple[Conversation, bool]:
    assert contact.id is not None and integration.id is not None
    conversation = conversation_queries.conversation_by_contact(
        session, contact_id=contact.id, lock=True
    )
    if conversation is not None:
        return conversation, False
    conversation = Conversation(
        account_id=integration.account_id,
        integration_id=integration.id,
        contact_id=contact.id,
        status="open",
        last_message_at=now,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(conversation)
            session.flush()
    except IntegrityError:  # the same contact's conversation was started twice at once
        found = conversation_queries.conversation_by_contact(
            session, contact_id=contact.id, lock=True
        )
        if found is None:
            raise
        return found, False
    return conversation, True


@dataclass(frozen=True)
class _Thread:
    """A contact and its conversation, locked. Held while the transaction runs: the session
    keeps what it loaded only weakly, and the events below look the contact up by id."""

    contact: Contact
    conversation: Conversation
    created: bool  # the conversation is new
    # Whether it may have CRM links. Exact when read with the conversation's lock: linking
    # takes that lock too, so none can come or go before the transaction ends.
    linked: bool


def _thread(
    session: Session, integration: Integration, inbound: InboundMessage, now: datetime, at: datetime
) -> _Thread:
    """A known contact's costs one statement; a new one's the steps above."""
    assert integration.id is not None
    found = conversation_queries.thread_by_handle(
        session, integration_id=integration.id, handle=inbound.contact_handle
    )
    if found is None:
        contact = _contact(session, integration, inbound, now)
        conversation, created = _conversation(session, integration, contact, at)
        return _Thread(contact, conversation, created, linked=not created)
    contact, conversation, linked = found
    if inbound.contact_name and inbound.contact_name != contact.name:
        contact.name = inbound.contact_name
        session.add(contact)
    return _Thread(contact, conversation, False, linked=linked)


def ingest_inbound_message(
    session: Session, services: Services, *, integration: Integration, inbound: InboundMessage
) -> Ingested:
    """Store a customer's message once, creating or reopening its conversation."""
    assert integration.id is not None
    now = services.now()
    # The provider's own time where given; a clock running ahead is clamped to ours.
    at = min(as_utc(inbound.sent_at), now) if inbound.sent_at else now
    thread = _thread(session, integration, inbound, now, at)
    conversation = thread.conversation
    assert conversation.id is not None
    message = Message(
        conversation_id=conversation.id,
        integration_id=integration.id,
        direction="inbound",
        text=inbound.text,
        status="received",
        external_id=inbound.external_id,
        attachments=list(inbound.attachments),
        created_at=at,
    )
    last_inbound = conversation.last_inbound_at
    reopened = conversation.status == "closed"
    changes = {
        # A customer writing again reopens it, in the section its assignment implies.
        "status": "open",
        "version": conversation.version + 1 if reopened else conversation.version,
        "last_message_at": max(as_utc(conversation.last_message_at), at),
        "last_inbound_at": max(as_utc(last_inbound), at) if last_inbound else at,
        "inbound_count": conversation.inbound_count + 1,
        "updated_at": now,
    }
    # A provider's retry is stored once: under the conversation's lock, so that a retry racing
    # the first delivery waits for it, then finds its message.
    while not conversation_queries.store_message(
        session, message, conversation=conversation, changes=changes
    ):
        seen = conversation_queries.message_by_external_id(
            session, integration_id=integration.id, external_id=inbound.external_id
        )
        if seen is not None:
            return Ingested(seen.id or 0, seen.conversation_id, duplicate=True)
        # The message it clashed with went a moment ago, with its conversation: try again.
    # Before any event: notes take their locks ahead of the account row (see domain/notes.py).
    links = notes.record_message(
        session, services, conversation, integration, message, linked=thread.linked
    )
    if thread.created:
        emit_conversation_event(
            session, services, conversation, integration, type_="conversation.created"
        )
    emit_message_created(session, services, message, conversation, integration, links=links)
    notify_inbound(session, services, conversation, integration, message)
    assert message.id is not None
    return Ingested(message.id, conversation.id, duplicate=False)
