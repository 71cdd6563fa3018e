"""Installing and managing messaging apps."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from server.domain import integrations
from server.domain.access import get_integration
from server.domain.services import Actor
from server.domain.views import integration_view
from server.handlers.auth import authenticate
from server.handlers.http import JSONResponse, path_id, read_json, runtime
from server.handlers.schemas import IntegrationIn, IntegrationPatch
from server.state import account_queries
from server.state.models import Integration


def _views(session: Session, items: list[Integration], public_url: str) -> list[dict[str, Any]]:
    shared = account_queries.integration_shared_with(
        session, integration_ids=[i.id for i in items if i.id]
    )
    return [
        integration_view(i, shared_with=shared.get(i.id or 0, []), public_url=public_url)
        for i in items
    ]


def _one(session: Session, actor: Actor, integration_id: int, public_url: str) -> dict[str, Any]:
    return _views(session, [get_integration(session, actor, integration_id)], public_url)[0]


async def create(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, IntegrationIn)
    rt = runtime(request)
    url = rt.settings.public_url

    def work(s: Session) -> dict[str, Any]:
        integration = integrations.install(
            s,
            rt.services,
            actor,
            provider=body.provider,
            name=body.name,
            config=body.config,
            shared_with=body.shared_with,
        )
        return _views(s, [integration], url)[0]

    return JSONResponse(await rt.write(work), status_code=201)


async def list_all(request: Request) -> Response:
    actor = await authenticate(request)
    rt = runtime(request)
    items = await rt.read(
        lambda s: _views(s, integrations.visible(s, actor), rt.settings.public_url)
    )
    return JSONResponse({"items": items, "next_cursor": None})


async def get(request: Request) -> Response:
    actor = await authenticate(request)
    rt = runtime(request)
    return JSONResponse(
        await rt.read(lambda s: _one(s, actor, path_id(request), rt.settings.public_url))
    )


async def patch(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, IntegrationPatch)
    rt = runtime(request)
    integration_id = path_id(request)

    def work(s: Session) -> dict[str, Any]:
        integrations.update(
            s,
            rt.services,
            actor,
            integration_id=integration_id,
            name=body.name,
            config=body.config,
            shared_with=body.shared_with,
        )
        s.flush()
        return _one(s, actor, integration_id, rt.settings.public_url)

    updated = await rt.write(work)
    rt.integration_secrets.forget(integration_id)  # other nodes' copies expire within seconds
    return JSONResponse(updated)


async def delete(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    rt = runtime(request)
    integration_id = path_id(request)
    await rt.write(
        lambda s: integrations.uninstall(s, rt.services, actor, integration_id=integration_id)
    )
    # A webhook verified by another node's copy meanwhile finds no integration to write to.
    rt.integration_secrets.forget(integration_id)
    return Response(status_code=204)
