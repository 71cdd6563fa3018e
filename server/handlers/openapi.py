"""`GET /openapi.json`, generated from the route table and the request models."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.handlers.http import JSONResponse
from server.handlers.routes import ENDPOINTS, Endpoint

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}
_ID = {"type": "integer", "minimum": 1}
# Query parameters of the CRM's lists, besides `limit` and `cursor`: (name, schema, required).
_CRM_QUERY: dict[str, tuple[tuple[str, dict[str, Any], bool], ...]] = {
    "/api/v1/persons": (("term", {"type": "string", "maxLength": 200}, False),),
    "/api/v1/leads": (("person_id", _ID, False),),
    "/api/v1/deals": (("person_id", _ID, False),),
    "/api/v1/notes": (
        ("target", {"type": "string", "enum": ["person", "lead", "deal"]}, True),
        ("target_id", _ID, True),
    ),
}
# Lists answered a page at a time (`limit`, `cursor`), by the end of their path.
_PAGINATED: tuple[str, ...] = ("/conversations", "/messages", "/users", "/persons", "/leads")
_PAGINATED += ("/deals", "/notes", "/tokens")
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "signature": [],
    "metrics": [{"bearer": []}],
}


def _path(endpoint: Endpoint) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", endpoint.path)


def _operation_id(endpoint: Endpoint) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", _path(endpoint).lower()).strip("_")
    return f"{endpoint.method.lower()}_{slug}"


def _operation(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": _operation_id(endpoint),
        "tags": [endpoint.tag],
        "x-switchboard-auth": endpoint.auth,
        "security": _SECURITY.get(endpoint.auth, [{"bearer": []}, {"session": []}]),
        "responses": {
            str(endpoint.status): {"description": "Success"},
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}
        for name in re.findall(r"\{(\w+):int\}", endpoint.path)
    ]
    if endpoint.method == "GET" and endpoint.path.endswith(_PAGINATED):
        params += [
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        ]
    if endpoint.path == "/api/v1/conversations":
        params.append(
            {
                "name": "section",
                "in": "query",
                "schema": {"type": "string", "enum": ["unassigned", "mine", "others", "closed"]},
            }
        )
    if endpoint.method == "GET":
        params += [
            {"name": name, "in": "query", "required": required, "schema": schema}
            for name, schema, required in _CRM_QUERY.get(endpoint.path, ())
        ]
    if params:
        op["parameters"] = params
    if endpoint.body is not None:
        schema = endpoint.body.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[endpoint.body.__name__] = schema
        op["requestBody"] = {
            "required": endpoint.body.__name__ not in ("VersionIn", "TokenIn"),
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{endpoint.body.__name__}"}
                }
            },
        }
    return op


def document() -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(_path(endpoint), {})[endpoint.method.lower()] = _operation(
            endpoint, components
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": "1",
            "description": "See docs/API.md for the full contract.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "switchboard_session"},
            },
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
