"""Accounts and users: signup, login, tokens, availability, notification settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from server.domain.access import require_admin
from server.domain.events import emit_ephemeral
from server.domain.services import Actor, Services
from server.domain.views import user_view
from server.errors import EmailTaken, NotFound, RateLimited, ValidationFailed
from server.security.passwords import hash_password, verify_password
from server.security.tokens import new_token, token_hash
from server.state import queries
from server.state.models import Account, ApiToken, LoginFailure, User

ROLES = ("admin", "agent")
NOTIFICATION_KINDS = (
    "assigned_to_me",
    "message_assigned_to_me",
    "message_assigned_to_others",
    "message_unassigned",
)
# What a new user gets: desktop for everything that concerns them or nobody yet, email only
# for what is theirs. Documented in docs/API.md.
DEFAULT_NOTIFICATION_SETTINGS: dict[str, dict[str, bool]] = {
    "desktop": {
        "assigned_to_me": True,
        "message_assigned_to_me": True,
        "message_assigned_to_others": False,
        "message_unassigned": True,
    },
    "email": {
        "assigned_to_me": True,
        "message_assigned_to_me": True,
        "message_assigned_to_others": False,
        "message_unassigned": False,
    },
}
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_FAILURES = 10
SESSION_LIFETIME = timedelta(days=14)


@dataclass(frozen=True)
class Issued:
    """A user with a freshly issued secret token (shown once)."""

    user: User
    token: str


def actor_of(user: User) -> Actor:
    assert user.id is not None
    return Actor(user_id=user.id, account_id=user.account_id, role=user.role, name=user.name)


def notification_settings(user: User) -> dict[str, dict[str, bool]]:
    stored = user.notification_settings or {}
    return {
        channel: {
            kind: bool(stored.get(channel, {}).get(kind, default))
            for kind, default in kinds.items()
        }
        for channel, kinds in DEFAULT_NOTIFICATION_SETTINGS.items()
    }


def _issue_token(session: Session, user: User, *, kind: str, now: datetime) -> str:
    token = new_token()
    expires = now + SESSION_LIFETIME if kind == "session" else None
    assert user.id is not None
    session.add(
        ApiToken(
            user_id=user.id,
            token_hash=token_hash(token),
            kind=kind,
            created_at=now,
            expires_at=expires,
        )
    )
    return token


def _new_user(
    session: Session,
    services: Services,
    *,
    account_id: int,
    name: str,
    email: str,
    password: str,
    role: str,
) -> User:
    if role not in ROLES:
        raise ValidationFailed(fields={"role": f"must be one of {', '.join(ROLES)}"})
    if queries.user_by_email(session, email=email) is not None:
        raise EmailTaken()
    now = services.now()
    user = User(
        account_id=account_id,
        name=name,
        email=email.lower(),
        password_hash=hash_password(password, profile=services.settings.password_hash_profile),
        role=role,
        available=True,
        notification_settings={},
        created_at=now,
    )
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # a concurrent signup took the email between check and insert
        raise EmailTaken() from exc
    return user


def sign_up(
    session: Session, services: Services, *, company_name: str, name: str, email: str, password: str
) -> tuple[Account, Issued]:
    """A new account whose first user is its admin."""
    account = Account(name=company_name, created_at=services.now())
    session.add(account)
    session.flush()
    assert account.id is not None
    user = _new_user(
        session,
        services,
        account_id=account.id,
        name=name,
        email=email,
        password=password,
        role="admin",
    )
    return account, Issued(user, _issue_token(session, user, kind="api", now=services.now()))


def create_user(
    session: Session,
    services: Services,
    actor: Actor,
    *,
    name: str,
    email: str,
    password: str,
    role: str,
) -> Issued:
    """An admin adds a teammate to their account."""
    require_admin(actor)
    user = _new_user(
        session,
        services,
        account_id=actor.account_id,
        name=name,
        email=email,
        password=password,
        role=role,
    )
    return Issued(user, _issue_token(session, user, kind="api", now=services.now()))


def log_in(session: Session, services: Services, *, email: str, password: str) -> Issued | None:
    """A session token for good credentials; None (and a recorded failure) for bad ones."""
    now = services.now()
    failures = queries.recent_login_failures(session, email=email, since=now - LOGIN_WINDOW)
    if len(failures) >= LOGIN_MAX_FAILURES:
        oldest = failures[-LOGIN_MAX_FAILURES]
        retry_after = (oldest + LOGIN_WINDOW) - now
        raise RateLimited(
            max(int(retry_after.total_seconds()) + 1, 1), "Too many failed logins; try again later."
        )
    user = queries.user_by_email(session, email=email)
    if user is None or not verify_password(user.password_hash, password):
        session.add(LoginFailure(email=email.lower(), at=now))
        return None
    session.execute(delete(LoginFailure).where(LoginFailure.email == email.lower()))  # type: ignore[arg-type]
    return Issued(user, _issue_token(session, user, kind="session", now=now))


def revoke_token(session: Session, *, token: str) -> None:
    session.execute(delete(ApiToken).where(ApiToken.token_hash == token_hash(token)))  # type: ignore[arg-type]


def authenticate(session: Session, services: Services, *, token: str) -> User | None:
    return queries.user_by_token_hash(session, token_hash=token_hash(token), now=services.now())


def get_user(session: Session, actor: Actor, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.account_id != actor.account_id:
        raise NotFound("No such user.")
    return user


def set_availability(
    session: Session, services: Services, actor: Actor, *, available: bool
) -> User:
    """The availability toggle. Existing assignments are left as they are."""
    user = get_user(session, actor, actor.user_id)
    if user.available != available:
        user.available = available
        session.add(user)
        session.flush()
        emit_ephemeral(
            session,
            account_id=actor.account_id,
            type_="presence.updated",
            data={"users": [user_view(user)]},
        )
    return user


def update_notification_settings(
    session: Session, actor: Actor, *, changes: dict[str, dict[str, bool]]
) -> dict[str, dict[str, bool]]:
    user = get_user(session, actor, actor.user_id)
    merged: dict[str, Any] = notification_settings(user)
    for channel, kinds in changes.items():
        merged[channel].update(kinds)
    user.notification_settings = merged
    session.add(user)
    return notification_settings(user)


def list_users(session: Session, actor: Actor, *, after_id: int, limit: int) -> list[User]:
    return list(
        queries.users_of_account(
            session, account_id=actor.account_id, after_id=after_id, limit=limit
        )
    )
