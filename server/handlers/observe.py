"""Per request: an id (echoed as `X-Request-ID`), a structured access log line, and metrics by
route template (never by raw path, so ids stay out of metric labels)."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.handlers.routes import ENDPOINTS
from server.logs import request_id

log = logging.getLogger("switchboard.access")

_TEMPLATES: dict[Any, str] = {
    endpoint.handler: re.sub(r":\w+\}", "}", endpoint.path) for endpoint in ENDPOINTS
}
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _incoming_id(scope: Scope) -> str:
    """The load balancer's request id if it sent a sane one, else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if _VALID_ID.match(candidate):
                return candidate
    return secrets.token_hex(8)


class ObserveMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        token = request_id.set(rid)
        if scope["type"] == "websocket":
            # Nothing to add to its messages, and nothing recorded: its `send` is not wrapped
            # (the socket's Starlette object keeps the chain of `send` wrappers while it lives).
            try:
                await self.app(scope, receive, send)
            finally:
                request_id.reset(token)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            request_id.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = _TEMPLATES.get(scope.get("endpoint"), "other")
        log.info(
            "request",
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "ms": round(seconds * 1000, 2),
                "request_id": request_id.get(),
            },
        )
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is not None:
            runtime.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
            runtime.metrics.request_seconds.labels(route).observe(seconds)
