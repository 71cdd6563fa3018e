"""Facebook Messenger: Meta's signed page webhooks in, the Graph API's Send API out.

- Inbound: `POST /webhooks/messenger/{id}` with `object: "page"` and batched `entry[].messaging[]`
  events, signed `X-Hub-Signature-256` with the app secret. Messages become inbound messages
  (deduplicated by `mid`), `delivery` and `read` receipts become watermarks.
- Echoes (`message.is_echo`) are never stored: ours (sent with `metadata: "switchboard:<id>"`)
  are already in the conversation, and those of messages sent from elsewhere (the Page inbox,
  other apps) are ignored, as Switchboard has no way to store an outbound message it did not send.
- A message without text (attachments only) is stored with a placeholder such as `[image]`.
- The contact's handle is the page-scoped user id (PSID); its name comes from the Graph profile
  API when that answers, else it stays the PSID.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from server.errors import BadRequest
from server.handlers.schemas import MAX_TEXT
from server.parsing import MALFORMED_WEBHOOK, parse_json, validate_webhook
from server.providers.base import (
    Acknowledgement,
    Inbound,
    InboundMessage,
    OutboundMessage,
    SendError,
    SendResult,
    StatusUpdate,
    Watermark,
    WebhookRequest,
    http_request,
    split_fields,
)
from server.security.signatures import verify_sha256

if TYPE_CHECKING:
    from server.config import Settings
    from server.domain.ingest import Ingested

log = logging.getLogger(__name__)

GRAPH_VERSION = "v21.0"
DEFAULT_API_BASE = "https://graph.facebook.com"
SEND_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# The profile lookup happens while Meta waits for the webhook's answer: keep it short.
PROFILE_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
# Ours, so that echoes of our own replies are recognisable.
METADATA_PREFIX = "switchboard:"
# Graph API error codes Meta documents as temporary: unknown/service errors, rate limits,
# and the Send API's "temporary send message failure".
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 1200})
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


# Meta's webhook body: only what we read is declared; everything else is ignored. ----------------


class _Meta(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


Millis = Annotated[int, Field(ge=0, le=MAX_TIMESTAMP_MS)]


class MessengerParty(_Meta):
    # Absent for some event types we ignore (e.g. opt-ins carry a `user_ref` instead).
    id: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class MessengerAttachmentPayload(_Meta):
    url: str | None = None


class MessengerAttachment(_Meta):
    type: Annotated[str, Field(min_length=1, max_length=50)]
    payload: MessengerAttachmentPayload | None = None


class MessengerMessage(_Meta):
    mid: Annotated[str, Field(min_length=1, max_length=200)]
    text: str | None = None
    is_echo: bool = False
    metadata: str | None = None
    attachments: list[MessengerAttachment] = Field(default_factory=list)


class MessengerDelivery(_Meta):
    mids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list)
    watermark: Millis


class MessengerRead(_Meta):
    watermark: Millis


class MessengerEvent(_Meta):
    sender: MessengerParty | None = None
    recipient: MessengerParty | None = None
    timestamp: Millis | None = None
    message: MessengerMessage | None = None
    delivery: MessengerDelivery | None = None
    read: MessengerRead | None = None


class MessengerEntry(_Meta):
    id: str | None = None
    time: Millis | None = None
    messaging: list[MessengerEvent] = Field(default_factory=list)


class MessengerWebhookIn(_Meta):
    """Meta's page webhook: `{"object": "page", "entry": [{"messaging": [event, ...]}, ...]}`."""

    object: Literal["page"]
    entry: list[MessengerEntry]


# Helpers ---------------------------------------------------------------------------------------


def from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _sender(event: MessengerEvent, where: str) -> str:
    if event.sender is None or event.sender.id is None:
        raise BadRequest(MALFORMED_WEBHOOK, fields={f"{where}.sender.id": "required"})
    return event.sender.id


def _attachments(message: MessengerMessage) -> list[dict[str, Any]]:
    return [
        {"type": a.type, "url": a.payload.url if a.payload is not None else None}
        for a in message.attachments
    ]


def _text(message: MessengerMessage) -> str:
    """The message's text; for attachments only, a placeholder like `[image] [file]`."""
    if message.text and message.text.strip():
        return message.text[:MAX_TEXT]
    if message.attachments:
        return " ".join(f"[{a.type}]" for a in message.attachments)[:MAX_TEXT]
    return "[unsupported message]"


def _add_event(inbound: Inbound, event: MessengerEvent, where: str) -> None:
    """Add what one messaging event says; other event types (postbacks, ...) are ignored."""
    if event.message is not None:
        message = event.message
        if message.is_echo:
            return  # see the module docstring
        inbound.messages.append(
            InboundMessage(
                external_id=message.mid,
                contact_handle=_sender(event, where),
                contact_name=None,  # asked of the profile API for new contacts
                text=_text(message),
                sent_at=from_millis(event.timestamp) if event.timestamp is not None else None,
                attachments=_attachments(message),
            )
        )
    elif event.delivery is not None:
        psid = _sender(event, where)
        inbound.statuses.extend(StatusUpdate(mid, "delivered") for mid in event.delivery.mids)
        inbound.watermarks.append(
            Watermark(psid, "delivered", from_millis(event.delivery.watermark))
        )
    elif event.read is not None:
        psid = _sender(event, where)
        inbound.watermarks.append(Watermark(psid, "read", from_millis(event.read.watermark)))


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """What Meta wants beside a token when the app requires it: HMAC-SHA256(app secret, token)."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def graph_error(response: httpx.Response) -> dict[str, Any] | None:
    """The `error` object of a Graph API answer, if it has one."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def send_failure(response: httpx.Response) -> SendError:
    """A Send API refusal: transient (retried) for 5xx, 429 and Meta's temporary error codes."""
    status = response.status_code
    error = graph_error(response)
    if error is None:
        return SendError(f"Graph API answered {status}", transient=status >= 500 or status == 429)
    code, subcode = error.get("code"), error.get("error_subcode")
    message = str(error.get("message") or "no message")
    detail = f"Graph API error {code}"
    if subcode is not None:
        detail += f" (subcode {subcode})"
    detail += f": {message}"
    log.warning("messenger send refused: %s [fbtrace_id %s]", detail, error.get("fbtrace_id"))
    transient = (
        status >= 500
        or status == 429
        or (isinstance(code, int) and code in TRANSIENT_CODES)
        or error.get("is_transient") is True
    )
    return SendError(detail, transient=transient)


# The provider ----------------------------------------------------------------------------------


class MessengerProvider:
    name: ClassVar[str] = "messenger"
    webhook_path: ClassVar[str] = "messenger"
    # Meta refuses standard replies more than 24 h after the user's last message.
    reply_window: ClassVar[timedelta | None] = timedelta(hours=24)

    def __init__(
        self, settings: Settings | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        self._client = client
        self._api_base = settings.messenger_api_base if settings else DEFAULT_API_BASE

    @classmethod
    def split_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return split_fields(
            config,
            public={"page_id": True},
            secret={"page_access_token": True, "app_secret": True, "verify_token": True},
        )

    def handshake(self, query: Mapping[str, str], secrets: Mapping[str, Any]) -> str | None:
        """Meta's subscription check: the challenge to echo, or None if the token is wrong."""
        expected = str(secrets.get("verify_token") or "")
        token = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not expected:
            return None
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return None
        challenge = query.get("hub.challenge", "")
        if not challenge:
            raise BadRequest(fields={"hub.challenge": "required"})
        return challenge

    def verify(
        self, request: WebhookRequest, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> bool:
        return verify_sha256(
            secrets.get("app_secret", ""), request.body, request.headers.get("x-hub-signature-256")
        )

    def parse(self, request: WebhookRequest, *, public: dict[str, Any]) -> Inbound:
        body = validate_webhook(MessengerWebhookIn, parse_json(request.body))
        inbound = Inbound()
        for e, entry in enumerate(body.entry):
            if entry.id is not None and entry.id != public.get("page_id"):
                # One Meta app has one callback URL for all its pages: another page's events
                # arriving here belong to another integration, not to this one.
                continue
            for m, event in enumerate(entry.messaging):
                _add_event(inbound, event, f"entry.{e}.messaging.{m}")
        return inbound

    def acknowledge(self, results: list[Ingested]) -> Acknowledgement:
        return Acknowledgement(b"EVENT_RECEIVED", "text/plain")

    def _params(self, secrets: Mapping[str, Any]) -> dict[str, str]:
        token = str(secrets.get("page_access_token", ""))
        params = {"access_token": token}
        if secrets.get("app_secret"):
            params["appsecret_proof"] = appsecret_proof(str(secrets["app_secret"]), token)
        return params

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await http_request(self._client, method, url, **kwargs)

    async def contact_name(
        self, handle: str, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> str | None:
        url = f"{self._api_base}/{GRAPH_VERSION}/{quote(handle, safe='')}"
        params = {"fields": "first_name,last_name", **self._params(secrets)}
        try:
            response = await self._request("GET", url, params=params, timeout=PROFILE_TIMEOUT)
        except httpx.HTTPError as exc:
            log.warning("messenger profile lookup failed: %s", exc.__class__.__name__)
            return None
        if not response.is_success:
            error = graph_error(response) or {}
            log.info(
                "messenger profile lookup refused (%s): %s",
                response.status_code,
                error.get("message", ""),
            )
            return None
        try:
            profile = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(profile, dict):
            return None
        parts = [profile.get("first_name"), profile.get("last_name")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        return name[:200] or None

    async def send(
        self, message: OutboundMessage, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> SendResult:
        url = f"{self._api_base}/{GRAPH_VERSION}/me/messages"
        body = {
            "recipient": {"id": message.contact_handle},
            "messaging_type": "RESPONSE",
            "message": {
                "text": message.text,
                "metadata": f"{METADATA_PREFIX}{message.message_id}",
            },
        }
        try:
            response = await self._request(
                "POST",
                url,
                params=self._params(secrets),
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=SEND_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise SendError(
                f"Graph API unreachable: {exc.__class__.__name__}", transient=True
            ) from exc
        if not response.is_success:
            raise send_failure(response)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        # Meta took it: never resend, even if the answer lacks the id we would like to keep.
        mid = answer.get("message_id") if isinstance(answer, dict) else None
        return SendResult(external_id=mid if isinstance(mid, str) and mid else None)
