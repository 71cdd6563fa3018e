"""Presenters: rows to the contract's JSON shapes. Viewer-dependent fields only when asked for."""

from __future__ import annotations

from typing import Any

from server.clock import isoformat
from server.providers.registry import PROVIDER_TYPES
from server.state.models import (
    ApiToken,
    Contact,
    Conversation,
    CrmLink,
    Deal,
    Integration,
    Lead,
    Message,
    Note,
    Person,
    User,
)


def user_view(user: User, *, online: bool = False) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "available": user.available,
        "online": online,
        "last_seen_at": isoformat(user.last_seen_at),
    }


def token_view(token: ApiToken, *, current: bool) -> dict[str, Any]:
    """An API token or session as its owner sees it: never the secret, only its last characters."""
    return {
        "id": token.id,
        "kind": token.kind,
        "name": token.name,
        "hint": token.hint,
        "current": current,
        "created_at": isoformat(token.created_at),
        "expires_at": isoformat(token.expires_at),
        "last_used_at": isoformat(token.last_used_at),
    }


def integration_view(
    integration: Integration, *, shared_with: list[int], public_url: str
) -> dict[str, Any]:
    provider = PROVIDER_TYPES.get(integration.provider)
    path = provider.webhook_path if provider else integration.provider
    return {
        "id": integration.id,
        "provider": integration.provider,
        "name": integration.name,
        "installed_by": integration.installed_by,
        "shared_with": shared_with,
        "webhook_url": f"{public_url}/webhooks/{path}/{integration.id}",
        # Only the settings that are not secrets; secrets are write-only.
        "config": dict(integration.config_public),
        "created_at": isoformat(integration.created_at),
    }


def sender_view(
    message: Message, *, contact: Contact, user_names: dict[int, str]
) -> dict[str, Any]:
    if message.direction == "inbound":
        return {"type": "contact", "id": contact.id, "name": contact.name}
    user_id = message.sender_user_id
    return {"type": "user", "id": user_id, "name": user_names.get(user_id, "") if user_id else ""}


def message_view(
    message: Message, *, contact: Contact, user_names: dict[int, str]
) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "text": message.text,
        "sender": sender_view(message, contact=contact, user_names=user_names),
        "status": message.status,
        "error": message.error,
        "external_id": message.external_id,
        "attachments": list(message.attachments or []),
        "created_at": isoformat(message.created_at),
    }


def conversation_view(
    conversation: Conversation,
    *,
    contact: Contact,
    integration: Integration,
    last_message: Message | None,
    user_names: dict[int, str],
    links: list[dict[str, Any]] | None = None,
    viewer: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The conversation; given `viewer=(user_id, read_inbound_count)`, with section and unread."""
    view: dict[str, Any] = {
        "id": conversation.id,
        "integration_id": conversation.integration_id,
        "provider": integration.provider,
        "contact": {"id": contact.id, "name": contact.name, "handle": contact.handle},
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "last_message": (
            message_view(last_message, contact=contact, user_names=user_names)
            if last_message
            else None
        ),
        "last_message_at": isoformat(conversation.last_message_at),
        "links": links or [],
        "version": conversation.version,
        "created_at": isoformat(conversation.created_at),
        "updated_at": isoformat(conversation.updated_at),
    }
    if viewer is not None:
        viewer_id, read_count = viewer
        view["section"] = section_of(conversation, viewer_id=viewer_id)
        view["unread_count"] = max(conversation.inbound_count - read_count, 0)
    return view


def section_of(conversation: Conversation, *, viewer_id: int) -> str:
    if conversation.status == "closed":
        return "closed"
    if conversation.assignee_id is None:
        return "unassigned"
    return "mine" if conversation.assignee_id == viewer_id else "others"


def link_view(link: CrmLink) -> dict[str, Any]:
    return {
        "id": link.id,
        "conversation_id": link.conversation_id,
        "target": link.target,
        "target_id": link.target_id,
        "created_at": isoformat(link.created_at),
    }


def person_view(person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "name": person.name,
        "emails": list(person.emails),
        "phones": [p["value"] for p in person.phones],
        "phones_e164": [p["e164"] for p in person.phones],
        "created_at": isoformat(person.created_at),
        "updated_at": isoformat(person.updated_at),
    }


def lead_view(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "title": lead.title,
        "person_id": lead.person_id,
        "created_at": isoformat(lead.created_at),
        "updated_at": isoformat(lead.updated_at),
    }


def deal_view(deal: Deal) -> dict[str, Any]:
    value = deal.value
    return {
        "id": deal.id,
        "title": deal.title,
        # 5000, not 5000.0, for whole amounts
        "value": int(value) if value is not None and value.is_integer() else value,
        "currency": deal.currency,
        "person_id": deal.person_id,
        "created_at": isoformat(deal.created_at),
        "updated_at": isoformat(deal.updated_at),
    }


def note_view(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "target": note.target,
        "target_id": note.target_id,
        "conversation_id": note.conversation_id,
        "link_id": note.link_id,
        "content": note.content,
        "edited": note.edited,
        "created_at": isoformat(note.created_at),
        "updated_at": isoformat(note.updated_at),
    }
