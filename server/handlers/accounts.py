"""Signup, login, logout, users, availability and notification settings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.domain import accounts
from server.domain.accounts import SESSION_LIFETIME
from server.domain.views import user_view
from server.errors import Forbidden, Unauthenticated
from server.handlers.auth import SESSION_COOKIE, authenticate, presented_token
from server.handlers.http import JSONResponse, decode_cursor, page, query_limit, read_json, runtime
from server.handlers.schemas import (
    AvailabilityIn,
    LoginIn,
    NotificationSettingsIn,
    SignupIn,
    UserIn,
)
from server.runtime import Runtime
from server.security.tokens import CookieSigner
from server.state.models import User


async def _present(rt: Runtime, user: User) -> dict[str, Any]:
    """The user as the API shows it, with presence from Redis."""
    return user_view(user, online=user.id in await rt.realtime.online(user.account_id))


async def signup(request: Request) -> Response:
    rt = runtime(request)
    if not rt.settings.allow_signup:
        raise Forbidden("Signup is closed on this server.")
    body = await read_json(request, SignupIn)
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
    body = await read_json(request, LoginIn)
    issued = await rt.write(
        lambda s: accounts.log_in(s, rt.services, email=body.email, password=body.password)
    )
    if issued is None:
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
