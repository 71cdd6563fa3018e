"""The provider interface: check config, verify and parse webhooks, send replies, map statuses.

A provider is one module with one class implementing `Provider`; `registry.PROVIDER_TYPES`
lists them. The domain uses the classes' static facts (paths, reply window, config rules); each
server builds instances from its settings (API base URLs) for its webhooks and outbound worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx

from server.errors import ValidationFailed

if TYPE_CHECKING:
    from server.config import Settings
    from server.domain.ingest import Ingested

# Outbound statuses only move forward along this order (callbacks may arrive out of order);
# "failed" ends it from any state.
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True)
class InboundMessage:
    """A customer's message as a provider delivered it, before it is stored."""

    external_id: str
    contact_handle: str
    contact_name: str | None
    text: str
    sent_at: datetime | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StatusUpdate:
    """The provider's news about one of our replies, named by the provider's id for it."""

    external_id: str
    status: str  # "sent", "delivered", "read" or "failed"
    error: str | None = None


@dataclass(frozen=True)
class Watermark:
    """Every reply to the contact sent up to `up_to` reached `status` (Messenger's receipts)."""

    contact_handle: str
    status: str  # "delivered" or "read"
    up_to: datetime


@dataclass(frozen=True)
class Inbound:
    """Everything one verified webhook call carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    watermarks: list[Watermark] = field(default_factory=list)


@dataclass(frozen=True)
class Acknowledgement:
    """What the provider expects back from the webhook (TwiML, JSON, plain text)."""

    body: bytes
    media_type: str


@dataclass(frozen=True)
class OutboundMessage:
    """A reply to send, with everything a provider needs to address it."""

    message_id: int
    conversation_id: int
    integration_id: int
    contact_id: int
    contact_handle: str
    text: str
    created_at: datetime
    # Where the provider should report delivery statuses (PUBLIC_URL + the provider's path).
    status_callback_url: str = ""


@dataclass(frozen=True)
class SendResult:
    external_id: str | None
    status: str = "sent"


class SendError(Exception):
    """A send that failed; `transient` ones (5xx, timeouts, 429) are retried with backoff."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class WebhookRequest:
    """What a provider's webhook carried, as signed: the public URL, the raw body, the headers."""

    url: str
    body: bytes
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    name: ClassVar[str]
    # The segment in `/webhooks/{path}/{integration_id}`.
    webhook_path: ClassVar[str]
    # Providers that refuse replies this long after the contact's last message (None: no window).
    reply_window: ClassVar[timedelta | None]

    def __init__(
        self, settings: Settings | None = None, client: httpx.AsyncClient | None = None
    ) -> None: ...

    @classmethod
    def split_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate an install config; return (public settings, secrets)."""
        ...

    def verify(
        self, request: WebhookRequest, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> bool:
        """Whether the request carries a valid signature for this integration."""
        ...

    def parse(self, request: WebhookRequest, *, public: dict[str, Any]) -> Inbound:
        """What a verified request carried for this integration; BadRequest (400) if malformed."""
        ...

    def acknowledge(self, results: list[Ingested]) -> Acknowledgement:
        """The webhook's answer once everything in it is stored."""
        ...

    async def contact_name(
        self, handle: str, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> str | None:
        """A display name for a new contact, where the provider has one to ask for."""
        ...

    async def send(
        self, message: OutboundMessage, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> SendResult:
        """Deliver a reply; raise SendError on failure."""
        ...


async def http_request(
    client: httpx.AsyncClient | None, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One request through the server's shared client (pooled connections), or a throwaway one."""
    if client is not None:
        return await client.request(method, url, **kwargs)
    async with httpx.AsyncClient() as own:
        return await own.request(method, url, **kwargs)


def split_fields(
    config: dict[str, Any],
    *,
    public: dict[str, bool],
    secret: dict[str, bool],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check string fields (`name -> required`) and split them into public and secret parts."""
    errors: dict[str, str] = {}
    known = {**public, **secret}
    for key in config:
        if key not in known:
            errors[key] = "unknown setting"
    for key, required in known.items():
        value = config.get(key)
        if value is None:
            if required:
                errors[key] = "required"
        elif not isinstance(value, str) or not value.strip():
            errors[key] = "must be a non-empty string"
        elif len(value) > 2000:
            errors[key] = "too long"
    if errors:
        raise ValidationFailed(fields={f"config.{k}": v for k, v in errors.items()})

    def pick(names: dict[str, bool]) -> dict[str, Any]:
        return {k: config[k].strip() for k in names if config.get(k) is not None}

    return pick(public), pick(secret)
