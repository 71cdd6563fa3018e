"""My in-app notifications: the list, the unread count, marking them read."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.domain import notifications
from server.errors import ValidationFailed
from server.handlers.auth import authenticate
from server.handlers.http import (
    JSONResponse,
    decode_cursor,
    page,
    query_limit,
    read_optional_json,
    runtime,
)
from server.handlers.schemas import NotificationsReadIn


async def list_all(request: Request) -> Response:
    actor = await authenticate(request)
    limit, cursor = query_limit(request), decode_cursor(request)
    before = cursor[0] if cursor else None
    if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
        raise ValidationFailed(fields={"cursor": "is not a cursor this server handed out"})
    rt = runtime(request)
    result = await rt.read(
        lambda s: notifications.list_notifications(s, actor, before_id=before, limit=limit)
    )
    return page(result.items, result.next_after)


async def unread_count(request: Request) -> Response:
    actor = await authenticate(request)
    rt = runtime(request)
    return JSONResponse({"unread": await rt.read(lambda s: notifications.unread_count(s, actor))})


async def mark_read(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_optional_json(request, NotificationsReadIn)
    rt = runtime(request)
    result = await rt.write(lambda s: notifications.mark_read(s, rt.services, actor, ids=body.ids))
    return JSONResponse(result)
