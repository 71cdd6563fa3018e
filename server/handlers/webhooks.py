"""Inbound webhooks: verify the provider's signature, then store what it says exactly once.

One path for every provider: 429 over the integration's rate limit (checked first, before the
body is read), 404 for an unknown integration, 403 for a bad signature (nothing read or stored),
400 for a malformed body; each message committed before the answer goes out.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from server.domain import delivery, integrations
from server.domain.ingest import Ingested, ingest_inbound_message
from server.domain.integrations import IntegrationSecrets
from server.domain.services import Services
from server.errors import Forbidden, NotFound
from server.handlers.http import path_id, read_body, runtime
from server.providers.base import InboundMessage, Provider, StatusUpdate, Watermark, WebhookRequest
from server.providers.messenger import MessengerProvider
from server.state import conversation_queries
from server.state.models import Integration


async def _secrets(
    request: Request, provider: Provider, integration_id: int, *, fresh: bool = False
) -> tuple[IntegrationSecrets, bool]:
    """The integration and its settings, from this node's cache unless `fresh`; and whether they
    came from the cache (a few seconds old at most: see `Runtime.integration_secrets`)."""
    rt = runtime(request)
    found = None if fresh else rt.integration_secrets.get(integration_id)
    cached = found is not None
    if found is None:
        found = await rt.read(
            lambda s: integrations.secrets_for(
                s, rt.services, integration_id=integration_id, provider=provider.name
            )
        )
        if found is not None:
            rt.integration_secrets.put(integration_id, found)
    if found is None or found.integration.provider != provider.name:
        raise NotFound("No such integration.")
    return found, cached


async def _verified(
    request: Request, provider: Provider
) -> tuple[WebhookRequest, IntegrationSecrets]:
    """The request, once its integration exists and its signature is right."""
    rt = runtime(request)
    integration_id = path_id(request)
    await _within_rate(request, integration_id)
    raw = await read_body(request)
    found, cached = await _secrets(request, provider, integration_id)
    webhook = WebhookRequest(
        # Providers sign the URL they called: as the public sees it, not as a proxy forwards it.
        url=rt.settings.public_url
        + request.url.path
        + (f"?{request.url.query}" if request.url.query else ""),
        body=raw,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
    )
    valid = provider.verify(webhook, public=found.public, secrets=found.secrets)
    if not valid and cached:
        # Its secret may have changed a moment ago on another node: only the database can tell.
        found, _ = await _secrets(request, provider, integration_id, fresh=True)
        valid = provider.verify(webhook, public=found.public, secrets=found.secrets)
    if not valid:
        rt.metrics.webhooks.labels(provider.name, "bad_signature").inc()
        raise Forbidden("The webhook signature is missing or wrong.")
    return webhook, found


async def _within_rate(request: Request, integration_id: int) -> None:
    """Count the request against its integration's limit before any work: a flood (signed or
    not, known id or not) costs one Redis round trip per request and is refused with 429."""
    rt = runtime(request)
    await rt.limits.check("webhook", str(integration_id), rt.settings.webhook_rate)


async def _with_name(
    request: Request, provider: Provider, found: IntegrationSecrets, message: InboundMessage
) -> InboundMessage:
    """Ask the provider for a new contact's name (Messenger's profile API); else keep the handle."""
    if message.contact_name:
        return message
    rt = runtime(request)
    integration_id = found.integration.id or 0
    known = await rt.read(
        lambda s: conversation_queries.contact_by_handle(
            s, integration_id=integration_id, handle=message.contact_handle
        )
    )
    if known is not None:
        return message
    name = await provider.contact_name(
        message.contact_handle, public=found.public, secrets=found.secrets
    )
    if not name:
        return message
    return replace(message, contact_name=name)


async def _ingest(request: Request, verified: Integration, message: InboundMessage) -> Ingested:
    rt = runtime(request)

    def work(s: Session, *, reload: bool) -> Ingested:
        # The integration as the signature check read it a moment ago: no second SELECT.
        integration = s.get(Integration, verified.id) if reload else s.merge(verified, load=False)
        if integration is None:
            raise NotFound("No such integration.")
        return ingest_inbound_message(s, rt.services, integration=integration, inbound=message)

    try:
        return await rt.write(partial(work, reload=False))
    except IntegrityError:
        # A concurrent delivery of this message won the unique constraint (now it's a duplicate),
        # or the integration was deleted meanwhile (now it's not found).
        return await rt.write(partial(work, reload=True))


def _apply_status(
    services: Services, integration_id: int, update: StatusUpdate, s: Session
) -> bool:
    return delivery.apply_status(s, services, integration_id=integration_id, update=update)


def _apply_watermark(
    services: Services, integration_id: int, watermark: Watermark, s: Session
) -> int:
    return delivery.apply_watermark(s, services, integration_id=integration_id, watermark=watermark)


async def receive(request: Request, provider: Provider) -> Response:
    """Store the messages and apply the delivery statuses a provider's webhook carries."""
    rt = runtime(request)
    webhook, found = await _verified(request, provider)
    inbound = provider.parse(webhook, public=found.public)
    integration_id = found.integration.id or 0
    results: list[Ingested] = []
    for message in inbound.messages:
        result = await _ingest(
            request, found.integration, await _with_name(request, provider, found, message)
        )
        rt.metrics.webhooks.labels(
            provider.name, "duplicate" if result.duplicate else "stored"
        ).inc()
        results.append(result)
    for update in inbound.statuses:
        await rt.write(partial(_apply_status, rt.services, integration_id, update))
    for watermark in inbound.watermarks:
        await rt.write(partial(_apply_watermark, rt.services, integration_id, watermark))
    ack = provider.acknowledge(results)
    return Response(ack.body, media_type=ack.media_type)


async def api_inbound(request: Request) -> Response:
    return await receive(request, runtime(request).providers["api"])


def _messenger(request: Request) -> MessengerProvider:
    provider = runtime(request).providers[MessengerProvider.name]
    assert isinstance(provider, MessengerProvider)
    return provider


async def messenger_handshake(request: Request) -> Response:
    """Meta's subscription check: echo `hub.challenge` if `hub.verify_token` is right."""
    rt = runtime(request)
    provider = _messenger(request)
    integration_id = path_id(request)
    await _within_rate(request, integration_id)
    found, _ = await _secrets(request, provider, integration_id, fresh=True)
    challenge = provider.handshake(dict(request.query_params), found.secrets)
    if challenge is None:
        rt.metrics.webhooks.labels(provider.name, "bad_verify_token").inc()
        raise Forbidden("The verify token or mode is wrong.")
    return Response(challenge, media_type="text/plain")


async def messenger_inbound(request: Request) -> Response:
    return await receive(request, _messenger(request))


async def twilio_inbound(request: Request) -> Response:
    return await receive(request, runtime(request).providers["twilio_whatsapp"])


async def twilio_status(request: Request) -> Response:
    return await receive(request, runtime(request).providers["twilio_whatsapp"])
