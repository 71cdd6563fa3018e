"""JSON bodies: decoding with limits, and validation into models with per-field errors."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from server.errors import BadRequest, ValidationFailed

M = TypeVar("M", bound=BaseModel)

MAX_JSON_DEPTH = 32


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def parse_json(raw: bytes) -> Any:
    """Decode JSON, refusing malformed and absurdly nested documents with 400."""
    if not raw.strip():
        raise BadRequest("A JSON body is required.")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("The body is not valid JSON.") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest("The JSON body is nested too deeply.")
    if b"\\u0000" in raw and _has_nul(value):  # cheap test first, exact one second
        # No text column (PostgreSQL's least of all) can keep a NUL character.
        raise BadRequest("Text must not contain NUL characters (\\u0000).")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def fields_of(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(name, item["msg"])
    return fields


def validate(model: type[M], value: Any) -> M:
    if not isinstance(value, dict):
        raise ValidationFailed(
            "The body must be a JSON object.", fields={"body": "must be an object"}
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ValidationFailed(fields=fields_of(exc)) from exc


MALFORMED_WEBHOOK = "The webhook body is malformed."


def validate_webhook(model: type[M], value: Any) -> M:
    """Like `validate`, but the contract makes a malformed webhook body a 400, not a 422."""
    try:
        return validate(model, value)
    except ValidationFailed as exc:
        raise BadRequest(MALFORMED_WEBHOOK, fields=exc.fields) from exc
