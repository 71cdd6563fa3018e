"""WhatsApp through Twilio: signed form posts in, Twilio's Messages API out, status callbacks.

Twilio signs each webhook with `X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the account's
auth token, of the URL it called followed by every POST parameter sorted by name (name + value).
`twilio_signature` computes it exactly like the `twilio` package's `RequestValidator` (the tests
prove it), so the server needs no Twilio library at run time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import orjson

from server.errors import BadRequest, ValidationFailed
from server.parsing import MALFORMED_WEBHOOK
from server.providers.base import (
    Acknowledgement,
    Inbound,
    InboundMessage,
    OutboundMessage,
    SendError,
    SendResult,
    StatusUpdate,
    WebhookRequest,
    http_request,
    split_fields,
)

if TYPE_CHECKING:
    from server.config import Settings
    from server.domain.ingest import Ingested

DEFAULT_API_BASE = "https://api.twilio.com"
SEND_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
WHATSAPP = "whatsapp:"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
FORM = "application/x-www-form-urlencoded"
MAX_ID = 200  # Twilio's sids are 34 characters
MAX_NAME = 200

# Twilio's message statuses as ours. Those not listed (queued, accepted, scheduled, sending,
# receiving, received, partially_delivered) say nothing our `queued` does not.
STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}

Params = list[tuple[str, str]]


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """`X-Twilio-Signature` of a request to `url` carrying the POST parameters `params`."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    # As RequestValidator does: names sorted; a repeated name's distinct values sorted.
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url_forms(url: str) -> list[str]:
    """The URL as Twilio may have signed it: without a port, and with one (the default if none)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    host = parts.netloc.rsplit(":", 1)[0] if port else parts.netloc
    default = 443 if parts.scheme == "https" else 80
    with_port = parts.netloc if port else f"{host}:{default}"
    return [urlunsplit(parts._replace(netloc=host)), urlunsplit(parts._replace(netloc=with_port))]


def _form(request: WebhookRequest) -> Params | None:
    """The POST parameters of a form-encoded body; None if the body is anything else."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        return None
    try:
        return parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None


def _first(params: Params, name: str) -> str | None:
    return next((value for key, value in params if key == name), None)


def _error_text(code: object, message: object, fallback: str) -> str:
    if code in (None, ""):
        return fallback
    return f"Twilio error {code}: {message}" if message else f"Twilio error {code}"


class TwilioWhatsAppProvider:
    name: ClassVar[str] = "twilio_whatsapp"
    webhook_path: ClassVar[str] = "twilio"
    # WhatsApp refuses free-form replies 24 h after the contact's last message.
    reply_window: ClassVar[timedelta | None] = timedelta(hours=24)

    def __init__(
        self, settings: Settings | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        self._client = client
        self._api_base = settings.twilio_api_base if settings else DEFAULT_API_BASE

    @classmethod
    def split_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        public, secret = split_fields(
            config,
            public={"account_sid": True, "from_number": True},
            secret={"auth_token": True},
        )
        errors: dict[str, str] = {}
        # The sid goes into the API's URL path: only Twilio's own form is accepted.
        if not ACCOUNT_SID.match(public["account_sid"]):
            errors["config.account_sid"] = "must be a Twilio account SID (AC + 32 hex digits)"
        if not E164.match(public["from_number"]):
            errors["config.from_number"] = "must be an E.164 number like +14155238886"
        if errors:
            raise ValidationFailed(fields=errors)
        return public, secret

    def verify(
        self, request: WebhookRequest, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> bool:
        token = secrets.get("auth_token", "")
        signature = request.headers.get("x-twilio-signature", "")
        if not token or not signature:
            return False
        # A body that is not a form carries no parameters; parse() then refuses it (400).
        params = _form(request) or []
        expected = signature.strip().encode("utf-8")
        if not any(
            hmac.compare_digest(twilio_signature(token, url, params).encode("ascii"), expected)
            for url in signed_url_forms(request.url)
        ):
            return False
        # Signed with this token, yet for another account: not this integration's webhook.
        account = _first(params, "AccountSid")
        return account is None or account == public.get("account_sid")

    def parse(self, request: WebhookRequest, *, public: dict[str, Any]) -> Inbound:
        params = _form(request)
        if params is None:
            raise BadRequest(f"Twilio's webhooks are {FORM}.")
        if urlsplit(request.url).path.endswith("/status"):
            return Inbound(statuses=_status_updates(params))
        return Inbound(messages=[_inbound_message(params)])

    def acknowledge(self, results: list[Ingested]) -> Acknowledgement:
        return Acknowledgement(EMPTY_TWIML, "text/xml")

    async def contact_name(
        self, handle: str, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> str | None:
        return None  # Twilio sends the WhatsApp profile name with every message

    async def send(
        self, message: OutboundMessage, *, public: dict[str, Any], secrets: dict[str, Any]
    ) -> SendResult:
        account_sid = public["account_sid"]
        url = f"{self._api_base}/2010-04-01/Accounts/{account_sid}/Messages.json"
        form = {
            "From": WHATSAPP + public["from_number"],
            "To": WHATSAPP + message.contact_handle,
            "Body": message.text,
        }
        if message.status_callback_url:
            form["StatusCallback"] = message.status_callback_url
        auth = httpx.BasicAuth(account_sid, secrets["auth_token"])
        try:
            response = await http_request(
                self._client, "POST", url, data=form, auth=auth, timeout=SEND_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise SendError(
                f"Twilio unreachable: {exc.__class__.__name__}", transient=True
            ) from exc
        return _send_result(response)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def _send_result(response: httpx.Response) -> SendResult:
    """Twilio's answer to creating a message: its sid and status, or a SendError."""
    document = _json(response)
    if not response.is_success:
        error = _error_text(
            document.get("code"),
            document.get("message"),
            f"Twilio answered {response.status_code}",
        )
        transient = response.status_code >= 500 or response.status_code == 429
        raise SendError(error, transient=transient)
    sid = document.get("sid")
    if not isinstance(sid, str) or not sid:
        # Twilio may have taken it: sending again could deliver it twice, so it is not retried.
        raise SendError("Twilio's answer carried no message sid", transient=False)
    status = STATUSES.get(str(document.get("status")), "queued")
    if status == "failed":
        raise SendError(
            _error_text(
                document.get("error_code"),
                document.get("error_message"),
                f"Twilio reported {document.get('status')}",
            ),
            transient=False,
        )
    return SendResult(external_id=sid, status=status)


def _required(params: Params, names: Iterable[str]) -> dict[str, str]:
    """The first value of each named parameter; BadRequest naming those missing or empty."""
    found = {name: _first(params, name) or "" for name in names}
    missing = {name: "required" for name, value in found.items() if not value}
    if missing:
        raise BadRequest(MALFORMED_WEBHOOK, fields=missing)
    return found


def _inbound_message(params: Params) -> InboundMessage:
    found = _required(params, ("MessageSid", "AccountSid", "From"))
    sender = found["From"]
    handle = sender.removeprefix(WHATSAPP)
    if not sender.startswith(WHATSAPP) or not E164.match(handle):
        raise BadRequest(fields={"From": "must be whatsapp:<E.164 number>"})
    if len(found["MessageSid"]) > MAX_ID:
        raise BadRequest(fields={"MessageSid": f"must be at most {MAX_ID} characters"})
    attachments = _media(params)
    return InboundMessage(
        external_id=found["MessageSid"],
        contact_handle=handle,
        # Bounded like the api channel's names; a long one is cut rather than the message lost.
        contact_name=(_first(params, "ProfileName") or "")[:MAX_NAME] or None,
        text=_text(params, attachments),
        attachments=attachments,
    )


def _text(params: Params, attachments: list[dict[str, Any]]) -> str:
    """The Body; without one (media, a location), a placeholder like `[image]`, as Messenger's.

    Every message has a text (replies and the api channel require one): previews, notes and
    clients rely on it. The media themselves are in the attachments.
    """
    body = _first(params, "Body") or ""
    if body.strip():
        return body
    if attachments:
        return " ".join(f"[{_kind(a['content_type'])}]" for a in attachments)
    kind = _first(params, "MessageType")
    return f"[{kind}]" if kind and kind != "text" else "[unsupported message]"


def _kind(content_type: str | None) -> str:
    major = (content_type or "").split("/")[0]
    return major if major in ("image", "video", "audio") else "file"


def _media(params: Params) -> list[dict[str, Any]]:
    raw = _first(params, "NumMedia") or "0"
    if not re.fullmatch(r"[0-9]{1,3}", raw):
        raise BadRequest(fields={"NumMedia": "must be a number"})
    media = []
    for index in range(int(raw)):
        url = _first(params, f"MediaUrl{index}")
        if not url:
            raise BadRequest(fields={f"MediaUrl{index}": "required (NumMedia counts it)"})
        media.append({"url": url, "content_type": _first(params, f"MediaContentType{index}")})
    return media


def _status_updates(params: Params) -> list[StatusUpdate]:
    found = _required(params, ("MessageSid", "MessageStatus"))
    raw = found["MessageStatus"]
    status = STATUSES.get(raw)
    if status is None:
        return []
    error = None
    if status == "failed":
        error = _error_text(
            _first(params, "ErrorCode"), _first(params, "ErrorMessage"), f"Twilio reported {raw}"
        )
    return [StatusUpdate(external_id=found["MessageSid"], status=status, error=error)]
