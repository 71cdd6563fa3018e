"""How uvicorn serves the app, the same for `python -m server run`, Procfile and tests."""

from __future__ import annotations

import os
import socket
from typing import Any

import uvicorn

from server.realtime.service import going_away

UVICORN_OPTIONS: dict[str, Any] = {
    # Client frames are small JSON (`ping`); anything bigger is hostile or a bug.
    "ws_max_size": 64 * 1024,
    # Per-message deflate roughly doubles the CPU of every delivery and costs ~44 KiB of
    # compressor state per socket (docs/PERFORMANCE.md): off unless WS_COMPRESSION=1.
    "ws_per_message_deflate": os.environ.get("WS_COMPRESSION", "0") == "1",
    # Server-side heartbeats: a peer that does not answer a ping within 20 s is dropped.
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
    # Behind a load balancer: trust X-Forwarded-* from it (set FORWARDED_ALLOW_IPS).
    "proxy_headers": True,
    "timeout_graceful_shutdown": 10,
}


class Server(uvicorn.Server):
    """uvicorn, but websockets hear "going away" (1001) first, so clients move to another node
    at once instead of waiting for their heartbeat to time out."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the old ones are told to leave
        await going_away()
        await super().shutdown(sockets)
