"""A fake of Twilio for tests: its Messages API, and its signed webhooks and status callbacks.

`FakeTwilio` is a local HTTP server on 127.0.0.1 (a free port, in a thread) that speaks Twilio's
wire format: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, with HTTP basic
auth (account sid : auth token) checked as Twilio does (401 with error 20003; another account's
path 404 with 20404), answering 201 with a Message resource. It records every request, and can
be scripted to fail (`fail_next`). `post_webhook` sends what Twilio sends to a server: a form post
signed with the `twilio` package's own `RequestValidator`.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from tests.fakes import Answer, LocalHTTPServer, Received

API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    """A sid in Twilio's form: two letters and 32 hex digits."""
    return prefix + uuid.uuid4().hex


class FormParams(dict[str, list[str]]):
    """POST parameters with repeated names, in the shape `RequestValidator` reads (`getlist`)."""

    @classmethod
    def of(cls, params: Iterable[tuple[str, str]]) -> FormParams:
        form = cls()
        for name, value in params:
            form.setdefault(name, []).append(value)
        return form

    def getlist(self, name: str) -> list[str]:
        return self[name]


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio's own library computes for a form post to `url`."""
    signature: str = RequestValidator(auth_token).compute_signature(url, FormParams.of(params))
    return signature


def post_webhook(
    signed_url: str,
    params: Sequence[tuple[str, str]],
    *,
    auth_token: str,
    deliver_to: str,
    url: str | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST `params` as Twilio would, signed over `signed_url`, to its path at `deliver_to`.

    Twilio signs the URL it was given (the server's PUBLIC_URL form); the request itself goes to
    wherever the test server really listens, as it would through a proxy. Tests of forgeries
    give `url`: the request goes to that URL's path instead, still signed over `signed_url`.
    """
    parts = urlsplit(url or signed_url)
    target = deliver_to.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    all_headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature
        if signature is not None
        else twilio_signature(auth_token, signed_url, params),
        "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
        "User-Agent": "TwilioProxy/1.1",
        **(headers or {}),
    }
    return httpx.post(target, content=urlencode(params).encode(), headers=all_headers, timeout=30)


@dataclass(frozen=True)
class ApiRequest:
    """One request to the fake's REST API: path, basic-auth credentials, form parameters."""

    method: str
    path: str
    credentials: tuple[str, str] | None
    form: dict[str, str]
    status: int  # what the fake answered


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted (answered 201)."""

    sid: str
    account_sid: str
    from_: str
    to: str
    body: str
    status_callback: str | None


ERROR_CODES = {429: 20429, 500: 20500, 503: 20503}
ERROR_MESSAGES = {
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    21211: "The 'To' number +15005550001 is not a valid phone number.",
    21614: "'To' number is not a valid mobile number",
}


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio(LocalHTTPServer):
    """Twilio's Messages API for one account, on a local port. Use as a context manager."""

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or uuid.uuid4().hex
        self._requests: list[ApiRequest] = []
        self._sent: list[SentMessage] = []
        self._script: list[tuple[int, dict[str, Any]]] = []
        # Called with each accepted message before the API answers: lets a test have Twilio's
        # status callback overtake the answer to the send, as it sometimes does.
        self.before_answer: Callable[[SentMessage], None] | None = None

    @property
    def requests(self) -> list[ApiRequest]:
        """Every API request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def sent(self) -> list[SentMessage]:
        """The messages accepted so far, oldest first."""
        with self._lock:
            return list(self._sent)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._sent.clear()
            self._script.clear()

    def fail_next(self, status: int, times: int = 1, *, code: int | None = None) -> None:
        """Answer the next `times` well-formed, authenticated sends with `status` and an error.

        The error document is Twilio's, with `code` (by default the one Twilio uses for the
        status: 20500, 20503, 20429; give e.g. 21211 for a 400).
        """
        code = code or ERROR_CODES.get(status, 20500)
        body = _error(code, ERROR_MESSAGES.get(code, "Error"), status)
        with self._lock:
            self._script.extend([(status, body)] * times)

    # Status callbacks ------------------------------------------------------------------------

    def status_callback(
        self,
        sid: str,
        status: str,
        *,
        deliver_to: str,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> httpx.Response:
        """Report `status` of message `sid` to its StatusCallback, as Twilio does."""
        message = next(m for m in self.sent if m.sid == sid)
        assert message.status_callback, "the message was sent without a StatusCallback"
        params = [
            ("ChannelPrefix", "whatsapp"),
            ("ApiVersion", API_VERSION),
            ("MessageStatus", status),
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("ChannelInstallSid", new_sid("XE")),
            ("To", message.to),
            ("From", message.from_),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("ChannelToAddress", message.to.removeprefix("whatsapp:")),
        ]
        if error_code is not None:
            params.append(("ErrorCode", error_code))
        if error_message is not None:
            params.append(("ErrorMessage", error_message))
        return post_webhook(
            message.status_callback, params, auth_token=self.auth_token, deliver_to=deliver_to
        )

    # The REST API ----------------------------------------------------------------------------

    def answer(self, request: Received) -> Answer:
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        credentials = self._credentials(request.headers.get("authorization"))
        status, document = self._api_answer(request.method, request.path, credentials, form)
        with self._lock:
            self._requests.append(
                ApiRequest(request.method, request.path, credentials, form, status)
            )
        return Answer.json(
            status,
            document,
            content_type="application/json; charset=utf-8",
            headers={"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None,
        )

    def _credentials(self, header: str | None) -> tuple[str, str] | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password

    def _api_answer(
        self, method: str, path: str, credentials: tuple[str, str] | None, form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if credentials != (self.account_sid, self.auth_token):
            return 401, _error(20003, "Authenticate", 401)
        prefix = f"/{API_VERSION}/Accounts/"
        if not path.startswith(prefix) or not path.endswith("/Messages.json") or method != "POST":
            return 404, _error(20404, f"The requested resource {path} was not found", 404)
        account = path[len(prefix) : -len("/Messages.json")]
        if account != self.account_sid:
            return 404, _error(20404, f"The requested resource {path} was not found", 404)
        if not form.get("To"):
            return 400, _error(21604, "A 'To' phone number is required.", 400)
        if not form.get("From"):
            return 400, _error(21603, "A 'From' phone number is required.", 400)
        if not form.get("Body") and not form.get("MediaUrl"):
            return 400, _error(21602, "Message body is required.", 400)
        with self._lock:
            if self._script:
                return self._script.pop(0)
            message = SentMessage(
                sid=new_sid("SM"),
                account_sid=account,
                from_=form["From"],
                to=form["To"],
                body=form.get("Body", ""),
                status_callback=form.get("StatusCallback"),
            )
            self._sent.append(message)
        if self.before_answer is not None:
            self.before_answer(message)
        return 201, self._resource(message)

    def _resource(self, message: SentMessage) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": message.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": None,
            "sid": message.sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }
