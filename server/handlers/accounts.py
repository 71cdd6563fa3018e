"""Signup, login, logout, users, availability, notification settings and my tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from server.domain import accounts
from server.domain.accounts import SESSION_LIFETIME
from server.domain.views import token_view, user_view
from server.errors import Forbidden, Unauthenticated
from server.handlers.auth import SESSION_COOKIE, authenticate, presented_token
from server.handlers.http import (
    JSONResponse,
    decode_cursor,
    page,
    path_id,
    query_limit,
    read_json,
    read_optional_json,
    runtime,
)
from server.handlers.schemas import (
    AvailabilityIn,
    LoginIn,
    NotificationSettingsIn,
    SignupIn,
    TokenIn,
    UserIn,
)
from server.runtime import Runtime
from server.security.ratelimit import client_subject
from server.security.tokens import CookieSigner, token_hash
from server.state.models import User


def client_ip(conn: HTTPConnection) -> str:
    """Whom per-client limits count: the peer (uvicorn puts the client of a trusted proxy's
    `X-Forwarded-For` here), an IPv6 client by its /64."""
    return client_subject(conn.client.host if conn.client else None)


async def _present(rt: Runtime, user: User) -> dict[str, Any]:
    """The user as the API shows it, with presence from Redis."""
    return user_view(user, online=user.id in await rt.realtime.online(user.account_id))


async def signup(request: Request) -> Response:
    rt = runtime(request)
    if not rt.settings.allow_signup:
        raise Forbidden("Signup is closed on this server.")
    body = await read_json(request, SignupIn)
    # Counted once the body is valid: fixing a refused password costs nothing; every attempt
    # that reaches the database (hashing, `email_taken` answers) does.
    await rt.limits.check("signup", client_ip(request), rt.settings.signup_rate)
    account, issued = await rt.write(
        lambda s: accounts.sign_up(
            s,
            rt.services,
            company_name=body.company_name,
            name=body.name,
            email=body.email,
            password=body.password,
        )
    )
    return JSONResponse(
        {
            "account": {"id": account.id, "name": account.name},
            "user": user_view(issued.user),
            "token": issued.token,
        },
        status_code=201,
    )


async def login(request: Request) -> Response:
    rt = runtime(request)
    await rt.limits.check("login", client_ip(request), rt.settings.login_rate)
    body = await read_json(request, LoginIn)
    issued = await rt.write(
        lambda s: accounts.log_in(s, rt.services, email=body.email, password=body.password)
    )
    if isinstance(issued, accounts.LoginRefused):
        # Slows down guessing one account; the event loop keeps serving everyone else.
        await asyncio.sleep(issued.delay)
        raise Unauthenticated("Wrong email or password.")
    response = JSONResponse({"user": await _present(rt, issued.user), "token": issued.token})
    response.set_cookie(
        SESSION_COOKIE,
        CookieSigner(rt.settings.secret_key).sign(issued.token),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=rt.settings.secure_cookies,
    )
    return response


async def logout(request: Request) -> Response:
    """Ends the presented session or revokes the presented token."""
    await authenticate(request, method=request.method)
    token, _ = presented_token(request)
    assert token is not None
    rt = runtime(request)
    await rt.write(lambda s: accounts.revoke_token(s, token=token))
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=rt.settings.secure_cookies
    )
    return response


async def me(request: Request) -> Response:
    actor = await authenticate(request)
    rt = runtime(request)
    user = await rt.read(lambda s: accounts.get_user(s, actor, actor.user_id))
    return JSONResponse(await _present(rt, user))


async def list_users(request: Request) -> Response:
    actor = await authenticate(request)
    limit = query_limit(request)
    cursor = decode_cursor(request)
    after = int(cursor[0]) if cursor and isinstance(cursor[0], int) else 0
    rt = runtime(request)
    users = await rt.read(lambda s: accounts.list_users(s, actor, after_id=after, limit=limit + 1))
    more = len(users) > limit
    online = await rt.realtime.online(actor.account_id)
    views = [user_view(u, online=u.id in online) for u in users[:limit]]
    return page(views, (users[limit - 1].id,) if more else None)


async def create_user(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, UserIn)
    rt = runtime(request)
    issued = await rt.write(
        lambda s: accounts.create_user(
            s,
            rt.services,
            actor,
            name=body.name,
            email=body.email,
            password=body.password,
            role=body.role,
        )
    )
    return JSONResponse({"user": user_view(issued.user), "token": issued.token}, status_code=201)


async def set_availability(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, AvailabilityIn)
    rt = runtime(request)
    user = await rt.write(
        lambda s: accounts.set_availability(s, rt.services, actor, available=body.available)
    )
    return JSONResponse(await _present(rt, user))


async def get_notification_settings(request: Request) -> Response:
    actor = await authenticate(request)
    rt = runtime(request)
    user = await rt.read(lambda s: accounts.get_user(s, actor, actor.user_id))
    return JSONResponse(accounts.notification_settings(user))


async def put_notification_settings(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, NotificationSettingsIn)
    rt = runtime(request)
    settings = await rt.write(
        lambda s: accounts.update_notification_settings(s, actor, changes=body.changes())
    )
    return JSONResponse(settings)


# My API tokens and sessions ---------------------------------------------------------------------


def _current_hash(request: Request) -> str:
    token, _ = presented_token(request)
    assert token is not None  # authenticated already
    return token_hash(token)


async def list_tokens(request: Request) -> Response:
    actor = await authenticate(request)
    limit = query_limit(request)
    cursor = decode_cursor(request)
    after = int(cursor[0]) if cursor and isinstance(cursor[0], int) else 0
    rt = runtime(request)
    rows = await rt.read(
        lambda s: accounts.list_tokens(s, rt.services, actor, after_id=after, limit=limit + 1)
    )
    more = len(rows) > limit
    current = _current_hash(request)
    views = [token_view(row, current=row.token_hash == current) for row in rows[:limit]]
    return page(views, (rows[limit - 1].id,) if more else None)


async def create_token(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_optional_json(request, TokenIn)
    rt = runtime(request)
    token, row = await rt.write(
        lambda s: accounts.create_api_token(s, rt.services, actor, name=body.name)
    )
    return JSONResponse({**token_view(row, current=False), "token": token}, status_code=201)


async def revoke_token(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    token_id = path_id(request)
    rt = runtime(request)
    revoked = await rt.write(lambda s: accounts.revoke_token_by_id(s, rt.services, actor, token_id))
    response = Response(status_code=204)
    _, from_cookie = presented_token(request)
    if revoked == _current_hash(request) and from_cookie:  # this browser's session: end it here
        response.delete_cookie(
            SESSION_COOKIE, httponly=True, samesite="lax", secure=rt.settings.secure_cookies
        )
    return response
