"""A local stand-in for Twilio's Messages API and Meta's Graph API, for the demo's replies.

The demo's WhatsApp and Messenger channels have made-up credentials, so a demo run points
`TWILIO_API_BASE` and `MESSENGER_API_BASE` here (127.0.0.1, a free port) instead of at the real
services: replies never leave the machine, yet they travel the same road as in production. The
stand-in answers like the real APIs and then, like them, reports what happened to the reply:

- Twilio: `201` with a message sid and status `queued`; then signed status callbacks to the
  reply's `StatusCallback`, `sent` and then `delivered`.
- Meta: the Send API's `{recipient_id, message_id}` (the reply is `sent`); then a signed
  `delivery` receipt to the page's webhook. The profile API answers a name for any PSID.

Callbacks are only ever sent to the demo server itself: a callback URL must start with
`PUBLIC_URL`, and goes to `server_url` with the same path.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import heapq
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from server.providers.twilio import twilio_signature
from server.security.signatures import sign_sha256

log = logging.getLogger(__name__)

TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")
GRAPH_SEND = re.compile(r"^/v[0-9.]+/me/messages$")
GRAPH_PROFILE = re.compile(r"^/v[0-9.]+/([A-Za-z0-9_-]{1,200})$")
FIRST_NAMES = ("Alex", "Robin", "Kim", "Noor", "Jules", "Mika", "Sasha", "Eli", "Rene", "Toni")
LAST_NAMES = ("Meyer", "Santos", "Kowalski", "Haddad", "Lindqvist", "Moreau", "Yilmaz", "Costa")


@dataclass(frozen=True)
class MessengerPage:
    """Where the stand-in sends a Messenger channel's receipts: its webhook, signed."""

    integration_id: int
    page_id: str
    app_secret: str


def profile_name(psid: str) -> tuple[str, str]:
    """A made-up but stable name for a PSID, as Meta's profile API would give a real one."""
    digest = hashlib.sha256(psid.encode()).digest()
    return FIRST_NAMES[digest[0] % len(FIRST_NAMES)], LAST_NAMES[digest[1] % len(LAST_NAMES)]


class _Scheduler:
    """One thread running callbacks at their time, so that receipts follow the answer."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._count = 0
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="demo-standin-callbacks")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def later(self, delay: float, job: Callable[[], None]) -> None:
        with self._changed:
            self._count += 1
            heapq.heappush(self._queue, (time.monotonic() + delay, self._count, job))
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._changed.wait(timeout)
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._queue)
            try:
                job()
            except Exception:
                log.exception("demo stand-in callback failed")

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()
        self._thread.join(timeout=5)


class ProviderStandIn:
    """The stand-in's HTTP server. `start()` returns its base URL (for both API bases)."""

    def __init__(
        self,
        *,
        server_url: str,
        public_url: str,
        messenger_pages: dict[str, MessengerPage] | None = None,
        delay: float = 1.0,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        # By page access token: the Send API names no page, only its token.
        self.messenger_pages = dict(messenger_pages or {})
        self.delay = delay
        self.sent: list[dict[str, Any]] = []  # what was "sent", for the curious and the tests
        self._scheduler = _Scheduler()
        self._http = httpx.Client(timeout=10, trust_env=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-standin", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        self._scheduler.start()
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._scheduler.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._http.close()

    # Requests ----------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                match = TWILIO_MESSAGES.match(path)
                if match:
                    self._answer(*standin.twilio_send(match.group(1), self.headers, body))
                elif GRAPH_SEND.match(path):
                    self._answer(*standin.messenger_send(self.path, body))
                else:
                    self._answer(404, {"error": {"message": "Unknown path", "code": 803}})

            def do_GET(self) -> None:
                match = GRAPH_PROFILE.match(urlsplit(self.path).path)
                if match:
                    first, last = profile_name(match.group(1))
                    self._answer(200, {"first_name": first, "last_name": last})
                else:
                    self._answer(404, {"error": {"message": "Unknown path", "code": 803}})

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("demo stand-in: " + format, *args)

        return Handler

    def twilio_send(
        self, account_sid: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """`POST .../Accounts/{sid}/Messages.json`: queued, then `sent` and `delivered`."""
        credentials = _basic_auth(headers.get("Authorization", ""))
        if credentials is None or credentials[0] != account_sid:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        auth_token = credentials[1]
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        sid = "SM" + secrets.token_hex(16)
        self.sent.append({"provider": "twilio_whatsapp", "sid": sid, **form})
        callback = form.get("StatusCallback", "")
        for step, status in enumerate(("sent", "delivered"), start=1):
            params = [("MessageSid", sid), ("MessageStatus", status), ("AccountSid", account_sid)]
            self._scheduler.later(
                self.delay * step, partial(self._twilio_callback, callback, auth_token, params)
            )
        answer = {
            "sid": sid,
            "status": "queued",
            "account_sid": account_sid,
            "from": form.get("From"),
            "to": form.get("To"),
            "body": form.get("Body"),
        }
        return 201, answer

    def messenger_send(self, raw_path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """`POST /vX/me/messages`: sent; then a delivery receipt to the page's webhook."""
        query = dict(parse_qsl(urlsplit(raw_path).query))
        page = self.messenger_pages.get(query.get("access_token", ""))
        try:
            psid = str(json.loads(body)["recipient"]["id"])
        except (ValueError, KeyError, TypeError):
            return 400, {"error": {"message": "(#100) Invalid recipient", "code": 100}}
        mid = "m_" + secrets.token_hex(12)
        self.sent.append({"provider": "messenger", "mid": mid, "recipient": psid})
        if page is not None:
            self._scheduler.later(self.delay, lambda: self._messenger_receipt(page, psid, mid))
        return 200, {"recipient_id": psid, "message_id": mid}

    # Callbacks to the demo server ---------------------------------------------------------------

    def _local(self, url: str) -> str | None:
        """The callback URL on the demo server itself; None for anywhere else."""
        if not url.startswith(self.public_url + "/"):
            return None
        return self.server_url + url[len(self.public_url) :]

    def _twilio_callback(self, url: str, auth_token: str, params: list[tuple[str, str]]) -> None:
        target = self._local(url)
        if target is None:
            return
        headers = {"X-Twilio-Signature": twilio_signature(auth_token, url, params)}
        with contextlib.suppress(httpx.HTTPError):  # the demo is stopping
            self._http.post(target, data=dict(params), headers=headers)

    def _messenger_receipt(self, page: MessengerPage, psid: str, mid: str) -> None:
        now = int(time.time() * 1000)
        event = {
            "sender": {"id": psid},
            "recipient": {"id": page.page_id},
            "timestamp": now,
            "delivery": {"mids": [mid], "watermark": now},
        }
        body = json.dumps(
            {"object": "page", "entry": [{"id": page.page_id, "time": now, "messaging": [event]}]}
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(page.app_secret, body),
        }
        url = f"{self.server_url}/webhooks/messenger/{page.integration_id}"
        with contextlib.suppress(httpx.HTTPError):
            self._http.post(url, content=body, headers=headers)


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password
