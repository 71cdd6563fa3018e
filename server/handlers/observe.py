"""Request metrics: counts and durations by route template (never by raw path: ids stay out)."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.handlers.routes import ENDPOINTS

_TEMPLATES: dict[Any, str] = {
    endpoint.handler: re.sub(r":\w+\}", "}", endpoint.path) for endpoint in ENDPOINTS
}


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _TEMPLATES.get(scope.get("endpoint"), "other")
            metrics: Any = (
                scope["app"].state.runtime.metrics
                if hasattr(scope["app"].state, "runtime")
                else None
            )
            if metrics is not None:
                metrics.http_requests.labels(scope["method"], route, str(status)).inc()
                metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
