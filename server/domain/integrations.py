"""Installed messaging apps: install, change, remove, and who shares them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from server.domain.access import can_see_integration, get_integration, require_admin
from server.domain.events import emit
from server.domain.services import Actor, Services
from server.errors import ValidationFailed
from server.providers.registry import provider_type
from server.state import account_queries, notification_queries
from server.state.models import Event, Integration, User


@dataclass(frozen=True)
class IntegrationSecrets:
    """What inbound verification and outbound sending need: kept off the request's response."""

    integration: Integration
    public: dict[str, Any]
    secrets: dict[str, Any]


def _check_shared_with(session: Session, actor: Actor, user_ids: Sequence[int]) -> list[int]:
    wanted = sorted(set(user_ids))
    if not wanted:
        return []
    found = (
        session.execute(
            select(User.id).where(col(User.id).in_(wanted), User.account_id == actor.account_id)
        )
        .scalars()
        .all()
    )
    missing = sorted(set(wanted) - {int(i) for i in found})
    if missing:
        raise ValidationFailed(fields={"shared_with": f"unknown users: {missing}"})
    return wanted


def _emit_changed(
    session: Session, services: Services, actor: Actor, type_: str, integration_id: int
) -> None:
    """Who sees what may have changed: every user refetches; only the id travels."""
    session.flush()
    emit(
        session,
        account_id=actor.account_id,
        type_=type_,
        data={"integration_id": integration_id},
        now=services.now(),
    )


def install(
    session: Session,
    services: Services,
    actor: Actor,
    *,
    provider: str,
    name: str,
    config: dict[str, Any],
    shared_with: Sequence[int],
) -> Integration:
    """An admin installs a messaging app; they become its installer."""
    require_admin(actor)
    public, secrets = provider_type(provider).split_config(config)
    users = _check_shared_with(session, actor, shared_with)
    integration = Integration(
        account_id=actor.account_id,
        provider=provider,
        name=name,
        installed_by=actor.user_id,
        config_public=public,
        config_secret=services.box.seal(secrets),
        created_at=services.now(),
    )
    session.add(integration)
    session.flush()
    assert integration.id is not None
    account_queries.replace_access(session, integration_id=integration.id, user_ids=users)
    _emit_changed(session, services, actor, "integration.created", integration.id)
    return integration


def update(
    session: Session,
    services: Services,
    actor: Actor,
    *,
    integration_id: int,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    shared_with: Sequence[int] | None = None,
) -> Integration:
    """Rename, change settings (secrets left out are kept) or change who shares it."""
    require_admin(actor)
    integration = get_integration(session, actor, integration_id)
    if name is not None:
        integration.name = name
    if config is not None:
        merged = {
            **integration.config_public,
            **services.box.open(integration.config_secret),
            **config,
        }
        public, secrets = provider_type(integration.provider).split_config(merged)
        integration.config_public = public
        integration.config_secret = services.box.seal(secrets)
    if shared_with is not None:
        users = _check_shared_with(session, actor, shared_with)
        account_queries.replace_access(session, integration_id=integration_id, user_ids=users)
    session.add(integration)
    _emit_changed(session, services, actor, "integration.updated", integration_id)
    return integration


def uninstall(session: Session, services: Services, actor: Actor, *, integration_id: int) -> None:
    """Remove the app with all its conversations and their history."""
    require_admin(actor)
    integration = get_integration(session, actor, integration_id)
    # Contacts, conversations and messages go by cascade; the log forgets their events too.
    session.execute(delete(Event).where(Event.integration_id == integration_id))  # type: ignore[arg-type]
    notification_queries.delete_notifications(session, integration_id=integration_id)
    session.delete(integration)
    session.flush()
    _emit_changed(session, services, actor, "integration.deleted", integration_id)


def visible(session: Session, actor: Actor) -> list[Integration]:
    return [
        i
        for i in account_queries.integrations_of_account(session, account_id=actor.account_id)
        if can_see_integration(session, actor, i)
    ]


def secrets_for(
    session: Session, services: Services, *, integration_id: int, provider: str
) -> IntegrationSecrets | None:
    """The integration and its decrypted settings, for a webhook of `provider`; None if unknown."""
    integration = session.get(Integration, integration_id)
    if integration is None or integration.provider != provider:
        return None
    return IntegrationSecrets(
        integration, dict(integration.config_public), services.box.open(integration.config_secret)
    )
