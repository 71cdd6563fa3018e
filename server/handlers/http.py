"""Request parsing and responses in the contract's formats."""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from server.errors import BadRequest, DomainError, NotFound, PayloadTooLarge, ValidationFailed
from server.parsing import parse_json, validate
from server.runtime import Runtime

M = TypeVar("M", bound=BaseModel)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.app.state.runtime
    return rt


def error_response(error: DomainError) -> JSONResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": body}, status_code=error.status, headers=headers)


async def read_body(request: Request) -> bytes:
    """The raw body, refusing more than the configured limit without reading it all."""
    limit = runtime(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge()
        except ValueError as exc:
            raise BadRequest("Invalid Content-Length.") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, model: type[M]) -> M:
    """The body as `model`: 413 if too large, 400 if not JSON, 422 with `fields` if invalid."""
    return validate(model, parse_json(await read_body(request)))


async def read_optional_json(request: Request, model: type[M]) -> M:
    """Like `read_json`, but an empty body means `{}`."""
    raw = await read_body(request)
    return validate(model, parse_json(raw) if raw.strip() else {})


# Ids are 32-bit integers in the database; a larger number names nothing that can exist.
MAX_ID = 2**31 - 1


def path_id(request: Request, name: str = "id") -> int:
    """An id from the path: an integer (the route's converter), 404 if no row could have it."""
    value: int = request.path_params[name]
    if not 1 <= value <= MAX_ID:
        raise NotFound()
    return value


def query_limit(request: Request, default: int = 50) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ValidationFailed(fields={"limit": "must be an integer from 1 to 100"})
    return limit


def encode_cursor(position: tuple[Any, ...] | None) -> str | None:
    if position is None:
        return None
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode("ascii").rstrip("=")


def decode_cursor(request: Request) -> list[Any] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        value = None
    # Ours hold ids and timestamps only: an integer no id can have is a forged cursor.
    if not isinstance(value, list) or any(
        isinstance(v, int) and not 0 <= v <= MAX_ID for v in value
    ):
        raise ValidationFailed(fields={"cursor": "is not a cursor this server handed out"})
    return value


def page(items: list[dict[str, Any]], position: tuple[Any, ...] | None) -> JSONResponse:
    return JSONResponse({"items": items, "next_cursor": encode_cursor(position)})
