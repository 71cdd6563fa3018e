"""The providers this server knows, by the name used in `integration.provider`."""

from __future__ import annotations

import httpx

from server.config import Settings
from server.errors import ValidationFailed
from server.providers.api import ApiProvider
from server.providers.base import Provider
from server.providers.messenger import MessengerProvider
from server.providers.twilio import TwilioWhatsAppProvider

# Adding a provider: one module with one class, and one line here.
PROVIDER_TYPES: dict[str, type[Provider]] = {
    ApiProvider.name: ApiProvider,
    TwilioWhatsAppProvider.name: TwilioWhatsAppProvider,
    MessengerProvider.name: MessengerProvider,
}


def provider_type(name: str) -> type[Provider]:
    """The provider class: its static facts (paths, reply window) and config validation."""
    provider = PROVIDER_TYPES.get(name)
    if provider is None:
        raise ValidationFailed(
            fields={"provider": f"must be one of {', '.join(sorted(PROVIDER_TYPES))}"}
        )
    return provider


def build_providers(
    settings: Settings, client: httpx.AsyncClient | None = None
) -> dict[str, Provider]:
    """This server's providers, talking to the API bases its settings name."""
    return {name: cls(settings, client) for name, cls in PROVIDER_TYPES.items()}
