"""Notifications: who hears of a change, on which channel, and each user's in-app list.

They are worked out once, inside the transaction of the action that caused them (so on the one
node that ran it): a desktop notification is a row of the user's in-app list plus a
`notification.created` event for that user only; an email one joins the user's pending email
about the conversation (`email_outbox`), which one node's worker sends later.

Only users with shared access to the conversation's integration are notified, and nobody of
their own doing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from server.clock import isoformat
from server.domain import email_outbox
from server.domain.accounts import DEFAULT_NOTIFICATION_SETTINGS
from server.domain.events import emit_ephemeral, emit_personal
from server.domain.services import Actor, Services
from server.state import account_queries, notification_queries
from server.state.models import Contact, Conversation, Integration, Message, Notification, User

# A desktop notification shows the start of the message; the conversation has the rest.
PREVIEW_CHARS = 200


@dataclass(frozen=True)
class NotificationPage:
    items: list[dict[str, Any]]
    next_after: tuple[Any, ...] | None


def notification_view(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "kind": notification.kind,
        "conversation_id": notification.conversation_id,
        "title": notification.title,
        "body": notification.body,
        "created_at": isoformat(notification.created_at),
        "read_at": isoformat(notification.read_at),
        "read": notification.read_at is not None,
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _preview(text: str) -> str:
    text = _one_line(text)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _contact_name(session: Session, conversation: Conversation) -> str:
    contact = session.get(Contact, conversation.contact_id)
    return contact.name if contact is not None else "a contact"


# Who is told what ----------------------------------------------------------------------------


def message_kind(conversation: Conversation, user_id: int) -> str:
    """Which kind a new inbound message is for this user, by the conversation's assignment."""
    if conversation.assignee_id is None:
        return "message_unassigned"
    if conversation.assignee_id == user_id:
        return "message_assigned_to_me"
    return "message_assigned_to_others"


@dataclass(frozen=True)
class Audience:
    """Who may hear of a change as `kind`: everyone with shared access to the conversation's
    integration, or only `user_id`, or all but `except_user_id`. Each of them only through the
    channels their settings for the kind have on."""

    kind: str
    title: str
    user_id: int | None = None
    except_user_id: int | None = None


def notify_assigned(
    session: Session,
    services: Services,
    actor: Actor,
    conversation: Conversation,
    integration: Integration,
) -> None:
    """The new assignee hears of it, unless they assigned themselves."""
    assignee_id = conversation.assignee_id
    if assignee_id is None or assignee_id == actor.user_id:
        return
    contact = _contact_name(session, conversation)
    last = (
        session.get(Message, conversation.last_message_id) if conversation.last_message_id else None
    )
    title = f"{actor.name} assigned you the conversation with {contact}"
    _notify(
        session,
        services,
        conversation,
        integration,
        [Audience("assigned_to_me", title, user_id=assignee_id)],
        body=_preview(last.text) if last is not None else "",
        item={"actor_name": actor.name},
    )


def notify_inbound(
    session: Session,
    services: Services,
    conversation: Conversation,
    integration: Integration,
    message: Message,
) -> None:
    """A customer wrote: the assignee, and whoever asked to hear of others' or nobody's."""
    contact = _contact_name(session, conversation)
    assignee_id = conversation.assignee_id
    if assignee_id is None:
        audiences = [Audience("message_unassigned", f"New message from {contact} (unassigned)")]
    else:
        assignee = session.get(User, assignee_id)
        audiences = [
            Audience("message_assigned_to_me", f"New message from {contact}", user_id=assignee_id),
            Audience(
                "message_assigned_to_others",
                f"New message from {contact} (assigned to {assignee.name if assignee else '?'})",
                except_user_id=assignee_id,
            ),
        ]
    _notify(
        session,
        services,
        conversation,
        integration,
        audiences,
        body=_preview(message.text),
        item={"message_id": message.id},
    )


def _notify(
    session: Session,
    services: Services,
    conversation: Conversation,
    integration: Integration,
    audiences: list[Audience],
    *,
    body: str,
    item: dict[str, Any],
) -> None:
    """Desktop: a row in each listener's in-app list (one INSERT for all of them) and one
    personal event, whatever the team's size. Email: the pending email of each who asked."""
    assert conversation.id is not None
    now = services.now()
    for audience in audiences:
        who = {"user_id": audience.user_id, "except_user_id": audience.except_user_id}
        title = _one_line(audience.title)
        added = notification_queries.add_notifications(
            session,
            integration=integration,
            kind=audience.kind,
            default=DEFAULT_NOTIFICATION_SETTINGS["desktop"][audience.kind],
            conversation_id=conversation.id,
            title=title,
            body=body,
            created_at=now,
            **who,
        )
        emit_personal(
            session,
            account_id=conversation.account_id,
            type_="notification.created",
            key="notification",
            item={
                "kind": audience.kind,
                "conversation_id": conversation.id,
                "title": title,
                "body": body,
                "created_at": isoformat(now),
                "read_at": None,
                "read": False,
            },
            recipients=added,
        )
        # Without SMTP_URL email is off: nothing is queued that could never be sent.
        if not services.settings.smtp_url:
            continue
        for user_id in notification_queries.users_wanting_email(
            session,
            integration=integration,
            kind=audience.kind,
            default=DEFAULT_NOTIFICATION_SETTINGS["email"][audience.kind],
            **who,
        ):
            email_outbox.enqueue(
                session,
                services,
                user_id=user_id,
                conversation_id=conversation.id,
                item={"kind": audience.kind, **item},
            )


# The in-app list -----------------------------------------------------------------------------


def list_notifications(
    session: Session, actor: Actor, *, before_id: int | None, limit: int
) -> NotificationPage:
    """Mine, newest first; only about conversations I still have shared access to."""
    rows = notification_queries.notifications_page(
        session,
        user_id=actor.user_id,
        integration_ids=_accessible(session, actor),
        before_id=before_id,
        limit=limit + 1,
    )
    items = [notification_view(n) for n in rows[:limit]]
    next_after = (rows[limit - 1].id,) if len(rows) > limit else None
    return NotificationPage(items, next_after)


def unread_count(session: Session, actor: Actor) -> int:
    return notification_queries.unread_notification_count(
        session, user_id=actor.user_id, integration_ids=_accessible(session, actor)
    )


def mark_read(
    session: Session, services: Services, actor: Actor, *, ids: list[int] | None
) -> dict[str, int]:
    """Mark all my notifications read, or those of `ids` (others' ids are ignored)."""
    marked = notification_queries.mark_notifications_read(
        session, user_id=actor.user_id, now=services.now(), ids=ids
    )
    unread = unread_count(session, actor)
    _announce_read(session, actor, marked, unread)
    return {"marked": len(marked), "unread": unread}


def conversation_read(
    session: Session, services: Services, actor: Actor, *, conversation_id: int
) -> None:
    """Reading a conversation reads my notifications about it too."""
    marked = notification_queries.mark_notifications_read(
        session, user_id=actor.user_id, now=services.now(), conversation_id=conversation_id
    )
    if marked:
        _announce_read(session, actor, marked, unread_count(session, actor))


def _announce_read(session: Session, actor: Actor, ids: list[int], unread: int) -> None:
    """My other tabs update their lists and badges."""
    if ids:
        emit_ephemeral(
            session,
            account_id=actor.account_id,
            type_="notification.read",
            data={"ids": ids, "unread": unread},
            user_id=actor.user_id,
        )


def _accessible(session: Session, actor: Actor) -> list[int]:
    return account_queries.accessible_integration_ids(
        session, account_id=actor.account_id, user_id=actor.user_id
    )
