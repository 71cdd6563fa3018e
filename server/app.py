"""The ASGI application: `server.app:app`, built by `create_app()`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from server.clock import Clock, system_clock
from server.config import Settings
from server.handlers.errors import EXCEPTION_HANDLERS
from server.handlers.headers import SecurityHeadersMiddleware
from server.handlers.observe import ObserveMiddleware
from server.handlers.openapi import openapi
from server.handlers.rawsend import RawSendMiddleware
from server.handlers.routes import starlette_routes
from server.handlers.websocket import websocket_endpoint
from server.lifecycle import running
from server.notify.smtp import check_smtp_url

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def _web_index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _routes() -> list[Route | Mount | WebSocketRoute]:
    routes: list[Route | Mount | WebSocketRoute] = [
        *starlette_routes(),
        Route("/openapi.json", openapi, methods=["GET"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    if WEB_DIR.is_dir():
        # Explicit routes, not a catch-all mount: unknown paths stay 404 and wrong methods 405.
        assets = StaticFiles(directory=WEB_DIR / "assets", check_dir=False)
        routes += [
            Route("/", _web_index, methods=["GET", "HEAD"]),
            Mount("/assets", assets, name="assets"),
        ]
    return routes


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> Starlette:
    """Build the app; start-up (migrations, Redis, workers) happens in its lifespan."""
    settings = settings or Settings.from_env()
    check_smtp_url(settings.smtp_url)  # a bad one stops the server before anything starts

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(settings, clock) as runtime:
            app.state.runtime = runtime
            yield

    return Starlette(
        routes=_routes(),
        lifespan=lifespan,
        middleware=[
            # First: it must see the server's own `send` (the websocket direct write path).
            Middleware(RawSendMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(ObserveMiddleware),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )


def __getattr__(name: str) -> Starlette:
    # `server.app:app` builds the app on first use, so importing this module reads no settings.
    if name == "app":
        return create_app()
    raise AttributeError(name)
