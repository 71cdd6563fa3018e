"""Linking conversations to CRM persons, leads and deals (and unlinking them)."""

from __future__ import annotations

from sqlmodel import Session

from server.domain import access, notes, records
from server.domain.conversations import emit_conversation_event
from server.domain.records import NewRecord
from server.domain.services import Actor, Services
from server.errors import AlreadyLinked, NotFound
from server.state import crm_queries
from server.state.models import Conversation, CrmLink, Integration, Note


def _links_changed(
    session: Session, services: Services, conversation: Conversation, integration: Integration
) -> None:
    """Live clients learn the new `links`. Not a change of assignment or status: same version."""
    conversation.updated_at = services.now()
    session.add(conversation)
    emit_conversation_event(
        session,
        services,
        conversation,
        integration,
        type_="conversation.updated",
        extra={"changes": ["links"]},
    )


def link(
    session: Session,
    services: Services,
    actor: Actor,
    *,
    conversation_id: int,
    target: str,
    target_id: int | None = None,
    create: NewRecord | None = None,
) -> tuple[CrmLink, Note]:
    """Link the conversation to a record of the account (or to one made here and now).

    The same record twice is `409 already_linked`. Linking writes the first note on the record.
    """
    # The conversation's lock also serialises linking with its messages' note updates.
    conversation, integration = access.get_conversation(session, actor, conversation_id, lock=True)
    if create is not None:
        record = records.create(session, services, actor, create)
    else:
        assert target_id is not None
        record = records.get_record(session, actor, target=target, record_id=target_id)
    assert record.id is not None and conversation.id is not None
    if crm_queries.link_to(
        session, conversation_id=conversation.id, target=target, target_id=record.id
    ):
        raise AlreadyLinked()
    new = CrmLink(
        account_id=actor.account_id,
        conversation_id=conversation.id,
        target=target,
        target_id=record.id,
        created_by=actor.user_id,
        created_at=services.now(),
    )
    session.add(new)
    session.flush()
    note = notes.note_for_new_link(session, services, new, conversation, integration)
    _links_changed(session, services, conversation, integration)
    notes.emit_created(session, services, note)
    return new, note


def unlink(
    session: Session, services: Services, actor: Actor, *, conversation_id: int, link_id: int
) -> None:
    """Remove the link; the notes it wrote stay on the record, no longer updated."""
    conversation, integration = access.get_conversation(session, actor, conversation_id, lock=True)
    found = crm_queries.link_by_id(session, conversation_id=conversation_id, link_id=link_id)
    if found is None:
        raise NotFound("No such link.")
    session.delete(found)
    session.flush()
    _links_changed(session, services, conversation, integration)
