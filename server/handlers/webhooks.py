"""Inbound webhooks: verify the provider's signature, then store each message exactly once."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from server.domain import integrations
from server.domain.ingest import Ingested, ingest_inbound_message
from server.errors import Forbidden, NotFound
from server.handlers.http import JSONResponse, path_id, read_body, runtime
from server.providers.base import InboundMessage, WebhookRequest
from server.providers.registry import PROVIDERS
from server.state.models import Integration


async def _ingest(request: Request, integration_id: int, inbound: InboundMessage) -> Ingested:
    rt = runtime(request)

    def work(s: Session) -> Ingested:
        integration = s.get(Integration, integration_id)
        if integration is None:
            raise NotFound("No such integration.")
        return ingest_inbound_message(s, rt.services, integration=integration, inbound=inbound)

    try:
        return await rt.write(work)
    except IntegrityError:
        # A concurrent delivery of this message won the unique constraint: now it's a duplicate.
        return await rt.write(work)


async def inbound(request: Request, provider_name: str) -> list[Ingested]:
    """Shared by every provider: 404 unknown integration, 403 bad signature, 400/422 bad body."""
    rt = runtime(request)
    integration_id = path_id(request)
    raw = await read_body(request)
    found = await rt.read(
        lambda s: integrations.secrets_for(
            s, rt.services, integration_id=integration_id, provider=provider_name
        )
    )
    if found is None:
        raise NotFound("No such integration.")
    provider = PROVIDERS[provider_name]
    webhook = WebhookRequest(
        url=rt.settings.public_url + request.url.path,
        body=raw,
        headers={k.lower(): v for k, v in request.headers.items()},
    )
    if not provider.verify(webhook, secrets=found.secrets):
        rt.metrics.webhooks.labels(provider_name, "bad_signature").inc()
        raise Forbidden("The webhook signature is missing or wrong.")
    results = [
        await _ingest(request, integration_id, message) for message in provider.parse(webhook)
    ]
    for result in results:
        rt.metrics.webhooks.labels(
            provider_name, "duplicate" if result.duplicate else "stored"
        ).inc()
    return results


async def api_inbound(request: Request) -> Response:
    (result,) = await inbound(request, "api")
    return JSONResponse(
        {
            "message_id": result.message_id,
            "conversation_id": result.conversation_id,
            "duplicate": result.duplicate,
        }
    )
