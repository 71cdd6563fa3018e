"""Liveness, readiness and metrics for operators and load balancers."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from server.errors import Unauthenticated
from server.handlers.http import JSONResponse, runtime

PROBE_TIMEOUT = 3.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    rt = runtime(request)
    result = {"database": "ok", "redis": "ok"}
    try:
        await asyncio.wait_for(
            rt.read(lambda s: s.execute(text("SELECT 1")).scalar_one()), PROBE_TIMEOUT
        )
    except Exception:
        result["database"] = "error"
    try:
        await asyncio.wait_for(rt.redis.ping(), PROBE_TIMEOUT)
    except Exception:
        result["redis"] = "error"
    ready = all(v == "ok" for v in result.values())
    return JSONResponse(result, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    rt = runtime(request)
    token = rt.settings.metrics_token
    if token and request.headers.get("authorization") != f"Bearer {token}":
        raise Unauthenticated("The metrics token is required.")
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
