"""The inbox: conversations, their messages, and what agents do with them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from server.domain import conversations as convs
from server.domain.services import Actor
from server.errors import ValidationFailed
from server.handlers.auth import authenticate
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
from server.handlers.schemas import AssignIn, MessageIn, VersionIn
from server.state.conversation_queries import SECTIONS
from server.state.models import Conversation


def _conversation_after(request: Request) -> tuple[datetime, int] | None:
    cursor = decode_cursor(request)
    if cursor is None:
        return None
    try:
        at, last_id = cursor
        return datetime.fromisoformat(at), int(last_id)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(fields={"cursor": "is not a cursor this server handed out"}) from exc


async def list_all(request: Request) -> Response:
    actor = await authenticate(request)
    section = request.query_params.get("section") or None
    if section is not None and section not in SECTIONS:
        raise ValidationFailed(fields={"section": f"must be one of {', '.join(SECTIONS)}"})
    limit, after = query_limit(request), _conversation_after(request)
    rt = runtime(request)
    result = await rt.read(
        lambda s: convs.list_conversations(s, actor, section=section, after=after, limit=limit)
    )
    return page(result.items, result.next_after)


async def summary(request: Request) -> Response:
    actor = await authenticate(request)
    rt = runtime(request)
    return JSONResponse(await rt.read(lambda s: convs.inbox_summary(s, actor)))


async def get(request: Request) -> Response:
    actor = await authenticate(request)
    rt = runtime(request)
    return JSONResponse(
        await rt.read(lambda s: convs.get_conversation(s, actor, conversation_id=path_id(request)))
    )


async def messages(request: Request) -> Response:
    actor = await authenticate(request)
    limit, cursor = query_limit(request), decode_cursor(request)
    before = cursor[0] if cursor else None
    if before is not None and not isinstance(before, int):
        raise ValidationFailed(fields={"cursor": "is not a cursor this server handed out"})
    rt = runtime(request)
    result = await rt.read(
        lambda s: convs.list_messages(
            s, actor, conversation_id=path_id(request), before_id=before, limit=limit
        )
    )
    return page(result.items, result.next_after)


async def send(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, MessageIn)
    rt = runtime(request)

    def work(s: Session) -> dict[str, Any]:
        message, conversation, _ = convs.reply(
            s, rt.services, actor, conversation_id=path_id(request), text=body.text
        )
        return convs.present_message(s, message, conversation)

    view = await rt.write(work)
    rt.outbound_wake()
    return JSONResponse(view, status_code=201)


async def read(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    rt = runtime(request)
    await rt.write(
        lambda s: convs.mark_read(s, rt.services, actor, conversation_id=path_id(request))
    )
    return Response(status_code=204)


async def _change(request: Request, actor: Actor, change: Any) -> Response:
    """Run a change of the conversation and answer with it as the actor now sees it."""
    rt = runtime(request)

    def work(s: Session) -> dict[str, Any]:
        conversation: Conversation = change(s)
        return convs.get_conversation(s, actor, conversation_id=conversation.id or 0)

    return JSONResponse(await rt.write(work))


async def assign(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, AssignIn)
    services = runtime(request).services
    return await _change(
        request,
        actor,
        lambda s: convs.assign(
            s,
            services,
            actor,
            conversation_id=path_id(request),
            assignee_id=body.user_id,
            version=body.version,
        ),
    )


async def unassign(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_optional_json(request, VersionIn)
    services = runtime(request).services
    return await _change(
        request,
        actor,
        lambda s: convs.unassign(
            s, services, actor, conversation_id=path_id(request), version=body.version
        ),
    )


async def close(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    services = runtime(request).services
    return await _change(
        request,
        actor,
        lambda s: convs.set_status(
            s, services, actor, conversation_id=path_id(request), status="closed"
        ),
    )


async def reopen(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    services = runtime(request).services
    return await _change(
        request,
        actor,
        lambda s: convs.set_status(
            s, services, actor, conversation_id=path_id(request), status="open"
        ),
    )


async def delete(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    rt = runtime(request)
    await rt.write(
        lambda s: convs.delete_conversation(s, rt.services, actor, conversation_id=path_id(request))
    )
    return Response(status_code=204)
