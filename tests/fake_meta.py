"""A fake of Meta's Graph API for the Messenger provider: the Send API and the profile API.

A small threaded HTTP server on 127.0.0.1 (a free port) that speaks the Graph API's wire format
and checks credentials as Meta does: every call needs the page's `access_token` (else 400 with
an `OAuthException`, code 190) and, when given, a matching `appsecret_proof`. It answers
profile lookups (`GET /v{version}/{psid}?fields=...`) for the PSIDs it knows, records Send API
calls (`POST /v{version}/me/messages`), and can be scripted to fail sends.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from tests.fakes import Answer, LocalHTTPServer, Received

GRAPH_PATH = re.compile(r"^/(v\d+\.\d+)/(.+)$")


@dataclass(frozen=True)
class GraphCall:
    """One request the fake got, and how it answered."""

    method: str
    version: str  # e.g. "v21.0"
    path: str  # after the version: "me/messages", or a PSID
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def is_send(self) -> bool:
        return self.method == "POST" and self.path == "me/messages"

    @property
    def is_profile(self) -> bool:
        return self.method == "GET" and self.path != "me/messages"


def graph_error(
    message: str,
    *,
    code: int,
    type_: str = "OAuthException",
    subcode: int | None = None,
    is_transient: bool | None = None,
) -> dict[str, Any]:
    """An error body as the Graph API writes it."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    error["fbtrace_id"] = "AbCdEfGhIjK"
    return {"error": error}


INVALID_TOKEN = graph_error("Invalid OAuth access token.", code=190)
SERVER_ERROR = graph_error(
    "An unexpected error has occurred. Please retry your request later.",
    code=2,
    is_transient=True,
)


class FakeMeta(LocalHTTPServer):
    """The Graph API of one Facebook page.

    `profiles` maps PSIDs to `{"first_name", "last_name"}`; unknown PSIDs get Meta's
    "object does not exist" error, and `fail_profiles = True` makes every lookup a 500.
    Send API answers come from a script (`fail_sends`, `reject_sends`, `script_send`), one per
    call; once it runs out, sends succeed with a fresh `message_id`.
    """

    poll_interval = 0.05

    def __init__(
        self, *, page_access_token: str, app_secret: str, require_proof: bool = True
    ) -> None:
        super().__init__()
        self.page_access_token = page_access_token
        self.app_secret = app_secret
        self.require_proof = require_proof
        self.profiles: dict[str, dict[str, str]] = {}
        self.fail_profiles = False
        self._calls: list[GraphCall] = []
        self._script: list[tuple[int, dict[str, Any]]] = []
        self._ids = itertools.count(1)

    # Scripting -----------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._script.clear()
            self.profiles.clear()
            self.fail_profiles = False
            self._ids = itertools.count(1)

    def script_send(self, status: int, body: dict[str, Any], times: int = 1) -> None:
        with self._lock:
            self._script.extend([(status, body)] * times)

    def fail_sends(self, times: int, status: int = 500) -> None:
        """The next `times` sends fail as Meta's servers do when they are in trouble."""
        self.script_send(status, SERVER_ERROR, times)

    def reject_sends(
        self,
        message: str = "(#100) No matching user found",
        *,
        code: int = 100,
        subcode: int | None = 2018001,
        status: int = 400,
        times: int = 1,
    ) -> None:
        self.script_send(
            status, graph_error(message, code=code, subcode=subcode, type_="OAuthException"), times
        )

    # What it got -----------------------------------------------------------------------------

    @property
    def calls(self) -> list[GraphCall]:
        with self._lock:
            return list(self._calls)

    @property
    def sends(self) -> list[GraphCall]:
        return [c for c in self.calls if c.is_send]

    @property
    def profile_lookups(self) -> list[GraphCall]:
        return [c for c in self.calls if c.is_profile]

    # Answers -----------------------------------------------------------------------------------

    def _credentials_error(self, query: dict[str, str]) -> dict[str, Any] | None:
        token = query.get("access_token")
        if not token or not hmac.compare_digest(token, self.page_access_token):
            return INVALID_TOKEN
        proof = query.get("appsecret_proof")
        expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if proof is None and self.require_proof:
            return graph_error(
                "API calls from the server require an appsecret_proof argument",
                code=100,
                type_="GraphMethodException",
            )
        if proof is not None and not hmac.compare_digest(proof, expected):
            return graph_error(
                "Invalid appsecret_proof provided in the API argument",
                code=100,
                type_="GraphMethodException",
            )
        return None

    def _profile(self, psid: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.fail_profiles:
            return 500, SERVER_ERROR
        profile = self.profiles.get(psid)
        if profile is None:
            return 400, graph_error(
                f"Unsupported get request. Object with ID '{psid}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                code=100,
                subcode=33,
                type_="GraphMethodException",
            )
        fields = [f for f in query.get("fields", "").split(",") if f]
        answer = {k: v for k, v in profile.items() if k in fields}
        answer["id"] = psid
        return 200, answer

    def _send(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        recipient = document.get("recipient") if isinstance(document, dict) else None
        message = document.get("message") if isinstance(document, dict) else None
        if not isinstance(recipient, dict) or not isinstance(recipient.get("id"), str):
            return 400, graph_error(
                "(#100) param recipient must be non-empty.", code=100, type_="OAuthException"
            )
        if not isinstance(message, dict) or not message.get("text"):
            return 400, graph_error("(#100) Must send either message or sender action", code=100)
        if document.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            return 400, graph_error("(#100) param messaging_type is invalid", code=100)
        if self._script:
            return self._script.pop(0)
        return 200, {"recipient_id": recipient["id"], "message_id": f"m_sent-{next(self._ids)}"}

    def answer(self, request: Received) -> Answer:
        method, body = request.method, request.body
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query))
        match = GRAPH_PATH.match(parts.path)
        with self._lock:
            if match is None:
                status, document = 400, graph_error("Unknown path components", code=2500)
            elif (error := self._credentials_error(query)) is not None:
                status, document = 400, error
            elif method == "POST" and match[2] == "me/messages":
                status, document = self._send(body)
            elif method == "GET" and "/" not in match[2]:
                status, document = self._profile(match[2], query)
            else:
                status, document = 400, graph_error("Unsupported request", code=100)
            self._calls.append(
                GraphCall(
                    method=method,
                    version=match[1] if match else "",
                    path=match[2] if match else parts.path,
                    query=query,
                    headers=request.headers,
                    body=body,
                    status=status,
                )
            )
        return Answer.json(status, document, content_type="application/json; charset=UTF-8")
