"""The provider interface: validate config, parse and verify inbound, send outbound."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from server.errors import ValidationFailed


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
class OutboundMessage:
    """A reply to send, with everything a provider needs to address it."""

    message_id: int
    conversation_id: int
    integration_id: int
    contact_id: int
    contact_handle: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class SendResult:
    external_id: str | None
    status: str = "sent"


class SendError(Exception):
    """A send that failed; `transient` ones are retried with backoff."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class WebhookRequest:
    """What a provider's inbound webhook carried, as signed: the public URL and the raw body."""

    url: str
    body: bytes
    headers: dict[str, str]


class Provider(Protocol):
    name: ClassVar[str]
    # Providers that refuse replies this long after the contact's last message (None: no window).
    reply_window: ClassVar[timedelta | None]

    def split_config(self, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate an install config; return (public settings, secrets)."""
        ...

    def verify(self, request: WebhookRequest, *, secrets: dict[str, Any]) -> bool:
        """Whether the request carries a valid signature for this integration."""
        ...

    def parse(self, request: WebhookRequest) -> list[InboundMessage]:
        """The customer messages in a verified request; BadRequest/ValidationFailed if malformed."""
        ...

    async def send(
        self, message: OutboundMessage, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> SendResult:
        """Deliver a reply; raise SendError on failure."""
        ...


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
