"""Who is calling: a bearer token, or the signed session cookie (writes need an allowed Origin)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from server.domain import accounts
from server.domain.services import Actor
from server.errors import Forbidden, Unauthenticated
from server.handlers.http import runtime
from server.security.tokens import CookieSigner

SESSION_COOKIE = "switchboard_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_token(conn: HTTPConnection) -> tuple[str | None, bool]:
    """The token the caller presents and whether it came from the session cookie."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("Use `Authorization: Bearer <token>`.")
        return value.strip(), False
    cookie = conn.cookies.get(SESSION_COOKIE)
    if cookie:
        token = CookieSigner(runtime(conn).settings.secret_key).unsign(cookie)
        if token is None:
            raise Unauthenticated("The session cookie is not valid.")
        return token, True
    return None, False


def origin_allowed(conn: HTTPConnection) -> bool:
    origin = conn.headers.get("origin")
    return origin is not None and origin.rstrip("/") in runtime(conn).settings.allowed_origins


async def authenticate(conn: HTTPConnection, *, method: str = "GET") -> Actor:
    """The calling user, or 401. Cookie-authenticated writes must come from an allowed Origin."""
    token, from_cookie = presented_token(conn)
    if token is None:
        raise Unauthenticated()
    rt = runtime(conn)
    found = await rt.read(lambda s: accounts.authenticate(s, rt.services, token=token))
    if found is None:
        raise Unauthenticated("The token or session is not valid (or has expired).")
    if from_cookie and method not in SAFE_METHODS and not origin_allowed(conn):
        raise Forbidden("Cookie-authenticated writes must carry an allowed Origin header.")
    if found.touch_due:  # at most every few minutes per token, not on every request
        token_id = found.token_id
        await rt.write(lambda s: accounts.mark_token_used(s, rt.services, token_id=token_id))
    return accounts.actor_of(found.user)
