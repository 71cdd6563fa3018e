"""The generic `api` channel: signed JSON in, signed JSON POSTed to `callback_url` out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson

from server.clock import isoformat
from server.errors import BadRequest, ValidationFailed
from server.handlers.schemas import MAX_TEXT, ApiWebhookIn
from server.parsing import parse_json, validate_webhook
from server.providers.base import (
    Acknowledgement,
    Inbound,
    InboundMessage,
    OutboundMessage,
    SendError,
    SendResult,
    WebhookRequest,
    http_request,
    split_fields,
)
from server.security.signatures import sign_sha256, verify_sha256

if TYPE_CHECKING:
    from server.config import Settings
    from server.domain.ingest import Ingested

SEND_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _is_http_url(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


class ApiProvider:
    name: ClassVar[str] = "api"
    webhook_path: ClassVar[str] = "api"
    reply_window: ClassVar[timedelta | None] = None

    def __init__(
        self, settings: Settings | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        self._client = client

    @classmethod
    def split_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        public, secret = split_fields(
            config, public={"callback_url": False}, secret={"webhook_secret": True}
        )
        url = public.get("callback_url")
        if url is not None and not _is_http_url(url):
            raise ValidationFailed(fields={"config.callback_url": "must be an http(s) URL"})
        return public, secret

    def verify(
        self, request: WebhookRequest, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> bool:
        return verify_sha256(
            secrets.get("webhook_secret", ""), request.body, request.headers.get("x-signature-256")
        )

    def parse(self, request: WebhookRequest, *, public: dict[str, Any]) -> Inbound:
        document = parse_json(request.body)
        text = document.get("text") if isinstance(document, dict) else None
        if isinstance(text, str) and len(text) > MAX_TEXT:
            raise ValidationFailed(fields={"text": f"must be at most {MAX_TEXT} characters"})
        body = validate_webhook(ApiWebhookIn, document)
        sent_at = None
        if body.sent_at is not None:
            try:
                sent_at = datetime.fromisoformat(body.sent_at)
            except ValueError as exc:
                raise BadRequest(fields={"sent_at": "must be an ISO-8601 timestamp"}) from exc
            if sent_at.tzinfo is None:
                raise BadRequest(fields={"sent_at": "must carry a time zone (e.g. Z)"})
        message = InboundMessage(
            external_id=body.message_id,
            contact_handle=body.contact.id,
            contact_name=body.contact.name,
            text=body.text,
            sent_at=sent_at,
        )
        return Inbound(messages=[message])

    def acknowledge(self, results: list[Ingested]) -> Acknowledgement:
        (result,) = results
        body = {
            "message_id": result.message_id,
            "conversation_id": result.conversation_id,
            "duplicate": result.duplicate,
        }
        return Acknowledgement(orjson.dumps(body), "application/json")

    async def contact_name(
        self, handle: str, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> str | None:
        return None  # the channel sends names along with its messages

    async def send(
        self, message: OutboundMessage, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> SendResult:
        url = public.get("callback_url")
        if not url:
            # A channel without a callback reads replies over the REST API: recorded is delivered.
            return SendResult(external_id=None)
        body = orjson.dumps(
            {
                "message_id": message.message_id,
                "conversation_id": message.conversation_id,
                "contact": {"id": message.contact_handle},
                "text": message.text,
                "created_at": isoformat(message.created_at),
            }
        )
        headers = {
            "Content-Type": "application/json",
            "X-Signature-256": sign_sha256(secrets["webhook_secret"], body),
        }
        try:
            response = await http_request(
                self._client, "POST", url, content=body, headers=headers, timeout=SEND_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise SendError(
                f"callback unreachable: {exc.__class__.__name__}", transient=True
            ) from exc
        if response.is_success:
            return SendResult(external_id=None)
        detail = f"callback answered {response.status_code}"
        raise SendError(
            detail, transient=response.status_code >= 500 or response.status_code == 429
        )
