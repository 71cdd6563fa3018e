"""How uvicorn serves the app, the same for `python -m server run`, Procfile and tests."""

from __future__ import annotations

from typing import Any

UVICORN_OPTIONS: dict[str, Any] = {
    # Client frames are small JSON (`ping`); anything bigger is hostile or a bug.
    "ws_max_size": 64 * 1024,
    # Server-side heartbeats: a peer that does not answer a ping within 20 s is dropped.
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
    # Behind a load balancer: trust X-Forwarded-* from it (set FORWARDED_ALLOW_IPS).
    "proxy_headers": True,
    "timeout_graceful_shutdown": 10,
}
