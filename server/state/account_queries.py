"""Keyword-only query helpers for users, tokens, login failures and integration access. No rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from server.state.models import ApiToken, Integration, IntegrationAccess, LoginFailure, User


def user_by_email(session: Session, *, email: str) -> User | None:
    return session.execute(select(User).where(User.email == email.lower())).scalars().first()


def credential_by_token_hash(
    session: Session, *, token_hash: str, now: datetime
) -> tuple[User, ApiToken] | None:
    query = (
        select(User, ApiToken)
        .join(ApiToken, col(ApiToken.user_id) == col(User.id))
        .where(ApiToken.token_hash == token_hash)
        .where(or_(col(ApiToken.expires_at).is_(None), col(ApiToken.expires_at) > now))
    )
    row = session.execute(query).first()
    return (row[0], row[1]) if row is not None else None


def touch_token(session: Session, *, token_id: int, now: datetime, unless_after: datetime) -> None:
    """Set `last_used_at` to `now`, unless it is already later than `unless_after`."""
    session.execute(
        update(ApiToken)
        .where(col(ApiToken.id) == token_id)
        .where(
            or_(col(ApiToken.last_used_at).is_(None), col(ApiToken.last_used_at) <= unless_after)
        )
        .values(last_used_at=now)
    )


def tokens_of_user(
    session: Session, *, user_id: int, now: datetime, after_id: int, limit: int
) -> Sequence[ApiToken]:
    """A user's tokens that still work (API tokens, unexpired sessions), by id."""
    query = (
        select(ApiToken)
        .where(ApiToken.user_id == user_id, col(ApiToken.id) > after_id)
        .where(or_(col(ApiToken.expires_at).is_(None), col(ApiToken.expires_at) > now))
        .order_by(col(ApiToken.id))
        .limit(limit)
    )
    return session.execute(query).scalars().all()


def count_tokens(session: Session, *, user_id: int, kind: str) -> int:
    query = select(func.count()).where(ApiToken.user_id == user_id, ApiToken.kind == kind)
    return int(session.execute(query).scalar_one())


def users_of_account(
    session: Session, *, account_id: int, after_id: int = 0, limit: int | None = None
) -> Sequence[User]:
    query = (
        select(User)
        .where(User.account_id == account_id, col(User.id) > after_id)
        .order_by(col(User.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return session.execute(query).scalars().all()


def user_names(session: Session, *, ids: Iterable[int | None]) -> dict[int, str]:
    """Names of the given users (None and unknown ids are skipped): only those a view shows,
    not the whole account's, which may be thousands."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name).where(col(User.id).in_(wanted)))
    return {int(user_id): name for user_id, name in rows}


def recent_login_failures(session: Session, *, email: str, since: datetime) -> list[datetime]:
    query = (
        select(LoginFailure.at)
        .where(LoginFailure.email == email.lower(), col(LoginFailure.at) > since)
        .order_by(col(LoginFailure.at))
    )
    return list(session.execute(query).scalars().all())


def integration_shared_with(
    session: Session, *, integration_ids: Iterable[int]
) -> dict[int, list[int]]:
    ids = list(integration_ids)
    shared: dict[int, list[int]] = {i: [] for i in ids}
    if not ids:
        return shared
    rows = session.execute(
        select(IntegrationAccess.integration_id, IntegrationAccess.user_id)
        .where(col(IntegrationAccess.integration_id).in_(ids))
        .order_by(col(IntegrationAccess.user_id))
    )
    for integration_id, user_id in rows:
        shared[int(integration_id)].append(int(user_id))
    return shared


def integrations_of_account(session: Session, *, account_id: int) -> Sequence[Integration]:
    query = (
        select(Integration)
        .where(Integration.account_id == account_id)
        .order_by(col(Integration.id))
    )
    return session.execute(query).scalars().all()


def accessible_integration_ids(session: Session, *, account_id: int, user_id: int) -> list[int]:
    """Integrations the user installed or that are shared with them."""
    shared = select(IntegrationAccess.integration_id).where(IntegrationAccess.user_id == user_id)
    query = (
        select(Integration.id)
        .where(Integration.account_id == account_id)
        .where(or_(col(Integration.installed_by) == user_id, col(Integration.id).in_(shared)))
        .order_by(col(Integration.id))
    )
    return [int(i) for i in session.execute(query).scalars().all()]


def users_with_access(session: Session, *, integration: Integration) -> list[int]:
    rows = session.execute(
        select(IntegrationAccess.user_id).where(IntegrationAccess.integration_id == integration.id)
    ).scalars()
    return sorted({integration.installed_by, *(int(r) for r in rows)})


def has_access_row(session: Session, *, integration_id: int, user_id: int) -> bool:
    row = session.get(IntegrationAccess, (integration_id, user_id))
    return row is not None


def replace_access(session: Session, *, integration_id: int, user_ids: Iterable[int]) -> None:
    for row in session.execute(
        select(IntegrationAccess).where(IntegrationAccess.integration_id == integration_id)
    ).scalars():
        session.delete(row)
    session.flush()
    for user_id in sorted(set(user_ids)):
        session.add(IntegrationAccess(integration_id=integration_id, user_id=user_id))


def access_rows(session: Session, *, account_id: int) -> list[tuple[int, int, int | None]]:
    """(integration, installer, shared user or None) for every integration of the account."""
    query = (
        select(Integration.id, Integration.installed_by, IntegrationAccess.user_id)
        .outerjoin(IntegrationAccess, col(IntegrationAccess.integration_id) == col(Integration.id))
        .where(col(Integration.account_id) == account_id)
    )
    return [
        (int(i or 0), int(by), int(u) if u is not None else None)
        for i, by, u in session.exec(query).all()
    ]
