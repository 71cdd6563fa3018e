"""The ASGI application: `server.app:app`, built by `create_app()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.clock import Clock, system_clock
from server.config import Settings
from server.delivery import OutboundWorker
from server.domain.services import Services
from server.errors import DomainError, NotFound, ServiceUnavailable
from server.handlers.http import error_response
from server.handlers.observe import ObserveMiddleware
from server.handlers.openapi import openapi
from server.handlers.routes import starlette_routes
from server.handlers.websocket import websocket_endpoint
from server.notify.smtp import check_smtp_url
from server.notify.worker import start_email_worker
from server.realtime.service import Realtime
from server.runtime import Runtime
from server.state.db import Database
from server.state.migrate import upgrade
from server.state.redis_server import EmbeddedRedis

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound())
    error = DomainError(exc.detail)
    error.status = exc.status_code
    error.code = {405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    response = error_response(error)
    response.headers.update(exc.headers or {})  # e.g. `Allow` on a 405
    return response


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc.__class__.__name__)
    return error_response(ServiceUnavailable("The database is unavailable; try again shortly."))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = DomainError("Something went wrong on our side.")
    error.status, error.code = 500, "internal_error"
    return error_response(error)


async def _web_index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


# The web client has no inline script or style, so its policy can forbid both.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to every HTTP response (pure ASGI: streaming stays untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> Starlette:
    """Build the app; start-up (migrations, Redis, workers) happens in its lifespan."""
    settings = settings or Settings.from_env()
    check_smtp_url(settings.smtp_url)  # a bad one stops the server before anything starts

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        await asyncio.to_thread(upgrade, db.write_engine)
        embedded = EmbeddedRedis(settings.data_dir) if settings.embedded_redis else None
        redis_url = embedded.start() if embedded else settings.redis_url
        assert redis_url is not None
        redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
        )
        runtime = Runtime(settings, Services.from_settings(settings, clock), db, redis, http)
        runtime.loop = asyncio.get_running_loop()
        runtime.realtime = Realtime(runtime, redis_url)
        runtime.publisher = runtime.realtime
        await runtime.realtime.start()
        app.state.runtime = runtime
        worker = OutboundWorker(runtime)
        runtime.outbound_wake = worker.wake
        worker_task = asyncio.create_task(worker.run(), name="outbound-worker")
        stop_email_worker = start_email_worker(runtime)  # only with SMTP_URL
        try:
            yield
        finally:
            await stop_email_worker()
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
            await worker.close()
            await runtime.realtime.stop()
            await redis.aclose()
            await http.aclose()
            if embedded:
                embedded.stop()
            db.dispose()

    routes: list[Route | Mount | WebSocketRoute] = [
        *starlette_routes(),
        Route("/openapi.json", openapi, methods=["GET"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    if WEB_DIR.is_dir():
        # Explicit routes, not a catch-all mount: unknown paths stay 404 and wrong methods 405.
        routes += [
            Route("/", _web_index, methods=["GET", "HEAD"]),
            Mount(
                "/assets", StaticFiles(directory=WEB_DIR / "assets", check_dir=False), name="assets"
            ),
        ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeadersMiddleware), Middleware(ObserveMiddleware)],
        exception_handlers={
            DomainError: _domain_error,
            HTTPException: _http_error,
            OperationalError: _database_down,
            PoolTimeout: _database_down,
            Exception: _unexpected,
        },
    )


def __getattr__(name: str) -> Starlette:
    # `server.app:app` builds the app on first use, so importing this module reads no settings.
    if name == "app":
        return create_app()
    raise AttributeError(name)
