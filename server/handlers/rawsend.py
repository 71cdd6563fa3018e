"""Hands websocket handlers the server's own ASGI `send`, unwrapped by any middleware, so that
`server.realtime.connection` can reach uvicorn's protocol object behind it (`send.__self__`)
and write frames to the socket directly."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND = "switchboard.raw_send"


class RawSendMiddleware:
    """The outermost of our middleware: Starlette's ServerErrorMiddleware, the only one above it,
    passes websocket scopes through with the server's `send` untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)
