"""The route table: every endpoint with who may call it and what it takes, for routing and docs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.handlers import (
    accounts,
    conversations,
    crm,
    health,
    integrations,
    notifications,
    webhooks,
)
from server.handlers import schemas as s
from server.providers.messenger import MessengerWebhookIn

# Who may call: anyone; any signed-in user; an admin; a user with shared access to the
# conversation's integration; its installer; a provider proving itself with a signature.
Auth = Literal["public", "user", "admin", "shared", "installer", "signature", "metrics"]
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth
    tag: str
    body: type[BaseModel] | None = None
    status: int = 200


E = Endpoint
ENDPOINTS: tuple[Endpoint, ...] = (
    E("GET", "/healthz", health.healthz, "The process is up", "public", "operations"),
    E("GET", "/readyz", health.readyz, "Database and Redis answer", "public", "operations"),
    E("GET", "/metrics", health.metrics, "Prometheus metrics", "metrics", "operations"),
    E(
        "POST",
        "/api/v1/signup",
        accounts.signup,
        "Create an account and its admin",
        "public",
        "accounts",
        s.SignupIn,
        201,
    ),
    E(
        "POST",
        "/api/v1/login",
        accounts.login,
        "Log in: a session cookie and a token",
        "public",
        "accounts",
        s.LoginIn,
    ),
    E(
        "POST",
        "/api/v1/logout",
        accounts.logout,
        "End this session / revoke this token",
        "user",
        "accounts",
        status=204,
    ),
    E("GET", "/api/v1/me", accounts.me, "The calling user", "user", "accounts"),
    E("GET", "/api/v1/users", accounts.list_users, "The users of the account", "user", "accounts"),
    E(
        "POST",
        "/api/v1/users",
        accounts.create_user,
        "Add a user to the account",
        "admin",
        "accounts",
        s.UserIn,
        201,
    ),
    E(
        "PUT",
        "/api/v1/me/availability",
        accounts.set_availability,
        "Set my availability",
        "user",
        "accounts",
        s.AvailabilityIn,
    ),
    E(
        "GET",
        "/api/v1/me/notification-settings",
        accounts.get_notification_settings,
        "My notification settings",
        "user",
        "accounts",
    ),
    E(
        "PUT",
        "/api/v1/me/notification-settings",
        accounts.put_notification_settings,
        "Change my notification settings (partial)",
        "user",
        "accounts",
        s.NotificationSettingsIn,
    ),
    E(
        "GET",
        "/api/v1/me/tokens",
        accounts.list_tokens,
        "My API tokens and sessions (never the secrets)",
        "user",
        "accounts",
    ),
    E(
        "POST",
        "/api/v1/me/tokens",
        accounts.create_token,
        "A new API token (its secret is shown once)",
        "user",
        "accounts",
        s.TokenIn,
        201,
    ),
    E(
        "DELETE",
        "/api/v1/me/tokens/{id:int}",
        accounts.revoke_token,
        "Revoke one of my API tokens or sessions",
        "user",
        "accounts",
        status=204,
    ),
    E(
        "GET",
        "/api/v1/notifications",
        notifications.list_all,
        "My in-app notifications, newest first",
        "user",
        "notifications",
    ),
    E(
        "GET",
        "/api/v1/notifications/unread-count",
        notifications.unread_count,
        "How many of my notifications are unread",
        "user",
        "notifications",
    ),
    E(
        "POST",
        "/api/v1/notifications/read",
        notifications.mark_read,
        "Mark all my notifications, or some, as read",
        "user",
        "notifications",
        s.NotificationsReadIn,
    ),
    E(
        "POST",
        "/api/v1/integrations",
        integrations.create,
        "Install a messaging app",
        "admin",
        "integrations",
        s.IntegrationIn,
        201,
    ),
    E(
        "GET",
        "/api/v1/integrations",
        integrations.list_all,
        "Integrations I can see",
        "user",
        "integrations",
    ),
    E(
        "GET",
        "/api/v1/integrations/{id:int}",
        integrations.get,
        "One integration",
        "user",
        "integrations",
    ),
    E(
        "PATCH",
        "/api/v1/integrations/{id:int}",
        integrations.patch,
        "Change an integration",
        "admin",
        "integrations",
        s.IntegrationPatch,
    ),
    E(
        "DELETE",
        "/api/v1/integrations/{id:int}",
        integrations.delete,
        "Remove an integration",
        "admin",
        "integrations",
        status=204,
    ),
    E(
        "GET",
        "/api/v1/conversations",
        conversations.list_all,
        "Conversations, newest activity first",
        "shared",
        "conversations",
    ),
    E(
        "GET",
        "/api/v1/inbox/summary",
        conversations.summary,
        "Counts and unread per section",
        "user",
        "conversations",
    ),
    E(
        "GET",
        "/api/v1/conversations/{id:int}",
        conversations.get,
        "One conversation",
        "shared",
        "conversations",
    ),
    E(
        "GET",
        "/api/v1/conversations/{id:int}/messages",
        conversations.messages,
        "Messages, newest first",
        "shared",
        "conversations",
    ),
    E(
        "POST",
        "/api/v1/conversations/{id:int}/messages",
        conversations.send,
        "Reply through the provider",
        "shared",
        "conversations",
        s.MessageIn,
        201,
    ),
    E(
        "POST",
        "/api/v1/conversations/{id:int}/read",
        conversations.read,
        "Mark as read by me",
        "shared",
        "conversations",
        status=204,
    ),
    E(
        "POST",
        "/api/v1/conversations/{id:int}/assign",
        conversations.assign,
        "Assign",
        "shared",
        "conversations",
        s.AssignIn,
    ),
    E(
        "POST",
        "/api/v1/conversations/{id:int}/unassign",
        conversations.unassign,
        "Unassign",
        "shared",
        "conversations",
        s.VersionIn,
    ),
    E(
        "POST",
        "/api/v1/conversations/{id:int}/close",
        conversations.close,
        "End the conversation",
        "shared",
        "conversations",
    ),
    E(
        "POST",
        "/api/v1/conversations/{id:int}/reopen",
        conversations.reopen,
        "Reopen",
        "shared",
        "conversations",
    ),
    E(
        "DELETE",
        "/api/v1/conversations/{id:int}",
        conversations.delete,
        "Delete with its history",
        "installer",
        "conversations",
        status=204,
    ),
    # CRM: records are the whole account's; links need shared access to the conversation.
    E("POST", "/api/v1/persons", crm.create_person, "Add a person", "user", "crm", s.PersonIn, 201),
    E(
        "GET",
        "/api/v1/persons",
        crm.list_persons,
        "Persons; ?term= searches names, emails and phone numbers",
        "user",
        "crm",
    ),
    E("GET", "/api/v1/persons/{id:int}", crm.get_person, "One person", "user", "crm"),
    E("POST", "/api/v1/leads", crm.create_lead, "Add a lead", "user", "crm", s.LeadIn, 201),
    E("GET", "/api/v1/leads", crm.list_leads, "Leads (?person_id=)", "user", "crm"),
    E("GET", "/api/v1/leads/{id:int}", crm.get_lead, "One lead", "user", "crm"),
    E("POST", "/api/v1/deals", crm.create_deal, "Add a deal", "user", "crm", s.DealIn, 201),
    E("GET", "/api/v1/deals", crm.list_deals, "Deals (?person_id=)", "user", "crm"),
    E("GET", "/api/v1/deals/{id:int}", crm.get_deal, "One deal", "user", "crm"),
    E(
        "POST",
        "/api/v1/conversations/{id:int}/links",
        crm.create_link,
        "Link to a person, lead or deal (or create one and link it)",
        "shared",
        "crm",
        s.LinkIn,
        201,
    ),
    E(
        "DELETE",
        "/api/v1/conversations/{id:int}/links/{link_id:int}",
        crm.delete_link,
        "Unlink",
        "shared",
        "crm",
        status=204,
    ),
    E(
        "GET",
        "/api/v1/notes",
        crm.list_notes,
        "A record's notes (?target=&target_id=), newest first",
        "user",
        "crm",
    ),
    E(
        "PATCH",
        "/api/v1/notes/{id:int}",
        crm.edit_note,
        "Edit a note (new messages then start a new one)",
        "user",
        "crm",
        s.NoteIn,
    ),
    E(
        "DELETE",
        "/api/v1/notes/{id:int}",
        crm.delete_note,
        "Delete a note",
        "user",
        "crm",
        status=204,
    ),
    E(
        "POST",
        "/webhooks/api/{id:int}",
        webhooks.api_inbound,
        "Inbound message of the api channel",
        "signature",
        "webhooks",
        s.ApiWebhookIn,
    ),
    E(
        "GET",
        "/webhooks/messenger/{id:int}",
        webhooks.messenger_handshake,
        "Meta's verification handshake (hub.mode, hub.verify_token, hub.challenge)",
        "signature",
        "webhooks",
    ),
    E(
        "POST",
        "/webhooks/messenger/{id:int}",
        webhooks.messenger_inbound,
        "Messenger page events: messages, delivery and read receipts",
        "signature",
        "webhooks",
        MessengerWebhookIn,
    ),
    E(
        "POST",
        "/webhooks/twilio/{id:int}",
        webhooks.twilio_inbound,
        "Inbound WhatsApp message from Twilio",
        "signature",
        "webhooks",
    ),
    E(
        "POST",
        "/webhooks/twilio/{id:int}/status",
        webhooks.twilio_status,
        "Twilio's delivery status callback",
        "signature",
        "webhooks",
    ),
)


def starlette_routes() -> list[Route]:
    # Starlette tries routes in order, one regex each: the providers' webhooks, most of the
    # traffic, go first (no other path starts with /webhooks/, so nothing else changes).
    hot_first = sorted(ENDPOINTS, key=lambda e: not e.path.startswith("/webhooks/"))
    return [
        Route(e.path, e.handler, methods=[e.method], name=f"{e.method} {e.path}") for e in hot_first
    ]
