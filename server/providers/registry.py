"""The providers this server knows, by the name used in `integration.provider`."""

from __future__ import annotations

from server.errors import ValidationFailed
from server.providers.api import ApiProvider
from server.providers.base import Provider
from server.providers.messenger import MessengerProvider
from server.providers.twilio import TwilioWhatsAppProvider

PROVIDERS: dict[str, Provider] = {
    ApiProvider.name: ApiProvider(),
    TwilioWhatsAppProvider.name: TwilioWhatsAppProvider(),
    MessengerProvider.name: MessengerProvider(),
}


def get_provider(name: str) -> Provider:
    provider = PROVIDERS.get(name)
    if provider is None:
        raise ValidationFailed(
            fields={"provider": f"must be one of {', '.join(sorted(PROVIDERS))}"}
        )
    return provider
