"""Hands websocket handlers the server's own ASGI `send`, unwrapped by any middleware, so that
`server.realtime.connection` can reach uvicorn's protocol object behind it (`send.__self__`)
and write frames to the socket directly.

And lets a handler hand the long, mostly idle life of its socket back to this shallow frame: it
leaves a coroutine under `HANDOFF` in the scope and returns, the routing and middleware frames
under this one return too, and this awaits the coroutine. An idle socket's task then holds a
handful of frames instead of twenty (docs/PERFORMANCE.md, "Idle connections")."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND = "switchboard.raw_send"
HANDOFF = "switchboard.handoff"

Handoff = Coroutine[Any, Any, None]


class RawSendMiddleware:
    """The outermost of our middleware: Starlette's ServerErrorMiddleware, the only one above it,
    passes websocket scopes through with the server's `send` untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        scope[RAW_SEND] = send
        scope[HANDOFF] = None  # offered: the handler may put its socket's remaining life here
        try:
            await self.app(scope, receive, send)
        except BaseException:
            rest: Handoff | None = scope.pop(HANDOFF, None)
            if rest is not None:
                rest.close()  # never started: nothing of it to undo
            raise
        rest = scope.pop(HANDOFF, None)
        if rest is not None:
            await rest
