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
from server.domain.password_policy import password_problem
from server.domain.services import Actor, Services
from server.domain.views import user_view
from server.errors import EmailTaken, NotFound, RateLimited, TooManyTokens, ValidationFailed
from server.security.passwords import hash_password, verify_password
from server.security.tokens import new_token, token_hash
from server.state import account_queries
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
# Failures for an email before its failed logins start to be answered slowly (typos are free).
LOGIN_FREE_FAILURES = 2
SESSION_LIFETIME = timedelta(days=14)
MAX_API_TOKENS = 100  # per user
TOKEN_HINT_LENGTH = 4
# `last_used_at` of a token is written at most this often (not on every request).
LAST_USED_PRECISION = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A user with a freshly issued secret token (shown once)."""

    user: User
    token: str


@dataclass(frozen=True)
class LoginRefused:
    """Wrong email or password: the email's failures in a row, and how long to wait to answer."""

    failures: int
    delay: float


@dataclass(frozen=True)
class Credential:
    """Who a presented token belongs to, and whether its `last_used_at` is due an update."""

    user: User
    token_id: int
    touch_due: bool


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


def _issue_token(
    session: Session, user: User, *, kind: str, now: datetime, name: str | None = None
) -> tuple[str, ApiToken]:
    token = new_token()
    expires = now + SESSION_LIFETIME if kind == "session" else None
    assert user.id is not None
    row = ApiToken(
        user_id=user.id,
        token_hash=token_hash(token),
        kind=kind,
        name=name,
        hint=token[-TOKEN_HINT_LENGTH:],
        created_at=now,
        expires_at=expires,
    )
    session.add(row)
    return token, row


def check_password(password: str, *, email: str, name: str) -> None:
    """422 with `fields.password` unless the password policy allows it."""
    problem = password_problem(password, email=email, name=name)
    if problem is not None:
        raise ValidationFailed(fields={"password": problem})


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
    check_password(password, email=email, name=name)
    if account_queries.user_by_email(session, email=email) is not None:
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
    token, _ = _issue_token(session, user, kind="api", now=services.now())
    return account, Issued(user, token)


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
    token, _ = _issue_token(session, user, kind="api", now=services.now())
    return Issued(user, token)


def login_delay(failures: int, *, base: float, cap: float) -> float:
    """Seconds to wait before answering the `failures`-th failed login in a row for an email:
    none for the first two (typos), then base, 2 x base, 4 x base... up to `cap`."""
    if failures <= LOGIN_FREE_FAILURES or base <= 0:
        return 0.0
    exponent = min(failures - LOGIN_FREE_FAILURES - 1, 32)
    return float(min(base * 2**exponent, cap))


def log_in(
    session: Session, services: Services, *, email: str, password: str
) -> Issued | LoginRefused:
    """A session token for good credentials; for bad ones, a recorded failure and the delay
    its answer waits (the caller sleeps it: a guessing client slows down, others do not)."""
    now = services.now()
    failures = account_queries.recent_login_failures(session, email=email, since=now - LOGIN_WINDOW)
    if len(failures) >= LOGIN_MAX_FAILURES:
        oldest = failures[-LOGIN_MAX_FAILURES]
        retry_after = (oldest + LOGIN_WINDOW) - now
        raise RateLimited(
            max(int(retry_after.total_seconds()) + 1, 1), "Too many failed logins; try again later."
        )
    user = account_queries.user_by_email(session, email=email)
    if user is None or not verify_password(user.password_hash, password):
        session.add(LoginFailure(email=email.lower(), at=now))
        settings = services.settings
        delay = login_delay(
            len(failures) + 1, base=settings.login_delay_base, cap=settings.login_delay_max
        )
        return LoginRefused(failures=len(failures) + 1, delay=delay)
    session.execute(delete(LoginFailure).where(LoginFailure.email == email.lower()))  # type: ignore[arg-type]
    token, _ = _issue_token(session, user, kind="session", now=now)
    return Issued(user, token)


def revoke_token(session: Session, *, token: str) -> None:
    session.execute(delete(ApiToken).where(ApiToken.token_hash == token_hash(token)))  # type: ignore[arg-type]


def authenticate(session: Session, services: Services, *, token: str) -> Credential | None:
    now = services.now()
    found = account_queries.credential_by_token_hash(session, token_hash=token_hash(token), now=now)
    if found is None:
        return None
    user, row = found
    assert row.id is not None
    last = row.last_used_at
    return Credential(user, row.id, touch_due=last is None or last <= now - LAST_USED_PRECISION)


def mark_token_used(session: Session, services: Services, *, token_id: int) -> None:
    """Record that a token was just used (callers do it when `Credential.touch_due`)."""
    now = services.now()
    account_queries.touch_token(
        session, token_id=token_id, now=now, unless_after=now - LAST_USED_PRECISION
    )


# Token management: a user's own API tokens and sessions ---------------------------------------


def list_tokens(
    session: Session, services: Services, actor: Actor, *, after_id: int, limit: int
) -> list[ApiToken]:
    """The caller's API tokens and unexpired sessions, oldest first."""
    return list(
        account_queries.tokens_of_user(
            session, user_id=actor.user_id, now=services.now(), after_id=after_id, limit=limit
        )
    )


def create_api_token(
    session: Session, services: Services, actor: Actor, *, name: str | None
) -> tuple[str, ApiToken]:
    """A new API token for the caller: the secret (shown once) and its row."""
    if account_queries.count_tokens(session, user_id=actor.user_id, kind="api") >= MAX_API_TOKENS:
        raise TooManyTokens(f"A user may hold at most {MAX_API_TOKENS} API tokens; revoke some.")
    user = get_user(session, actor, actor.user_id)
    token, row = _issue_token(session, user, kind="api", now=services.now(), name=name)
    session.flush()
    return token, row


def revoke_token_by_id(session: Session, services: Services, actor: Actor, token_id: int) -> str:
    """Revoke one of the caller's tokens or sessions (another user's is 404); its hash."""
    row = session.get(ApiToken, token_id)
    expired = row is not None and row.expires_at is not None and row.expires_at <= services.now()
    if row is None or row.user_id != actor.user_id or expired:
        raise NotFound("No such token.")
    session.delete(row)
    return row.token_hash


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
        account_queries.users_of_account(
            session, account_id=actor.account_id, after_id=after_id, limit=limit
        )
    )
