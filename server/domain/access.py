"""Who may see and do what. Every check of shared access and roles lives here."""

from __future__ import annotations

from sqlmodel import Session

from server.domain.services import Actor
from server.errors import Forbidden, NotFound
from server.state import account_queries, conversation_queries
from server.state.models import Conversation, Integration


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("Only an admin of the account may do this.")


def has_shared_access(session: Session, actor: Actor, integration: Integration) -> bool:
    """The installer, and the users the integration is shared with."""
    if integration.account_id != actor.account_id:
        return False
    if integration.installed_by == actor.user_id:
        return True
    assert integration.id is not None
    return account_queries.has_access_row(
        session, integration_id=integration.id, user_id=actor.user_id
    )


def user_has_shared_access(session: Session, integration: Integration, user_id: int) -> bool:
    if integration.installed_by == user_id:
        return True
    assert integration.id is not None
    return account_queries.has_access_row(session, integration_id=integration.id, user_id=user_id)


def can_see_integration(session: Session, actor: Actor, integration: Integration) -> bool:
    """Admins see every integration of their account (they manage them); agents the shared ones."""
    if integration.account_id != actor.account_id:
        return False
    return actor.is_admin or has_shared_access(session, actor, integration)


def get_integration(session: Session, actor: Actor, integration_id: int) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None or not can_see_integration(session, actor, integration):
        raise NotFound("No such integration.")
    return integration


def get_conversation(
    session: Session, actor: Actor, conversation_id: int, *, lock: bool = False
) -> tuple[Conversation, Integration]:
    """The conversation if the actor has shared access to it; 404 otherwise, never revealing it."""
    conversation = conversation_queries.conversation_by_id(
        session, account_id=actor.account_id, conversation_id=conversation_id, lock=lock
    )
    if conversation is None:
        raise NotFound("No such conversation.")
    integration = session.get(Integration, conversation.integration_id)
    if integration is None or not has_shared_access(session, actor, integration):
        raise NotFound("No such conversation.")
    return conversation, integration


def require_installer(actor: Actor, integration: Integration) -> None:
    if integration.installed_by != actor.user_id:
        raise Forbidden(
            "Only the user who installed this messaging app may delete its conversations."
        )


def audience_map(session: Session, *, account_id: int) -> dict[int, frozenset[int]]:
    """Per integration of the account, the users with shared access: who may see its events."""
    users: dict[int, set[int]] = {}
    for integration_id, installer, shared_user in account_queries.access_rows(
        session, account_id=account_id
    ):
        members = users.setdefault(integration_id, {installer})
        if shared_user is not None:
            members.add(shared_user)
    return {integration_id: frozenset(members) for integration_id, members in users.items()}
