"""Every failure in the contract's error envelope: domain errors, routing errors, outages, bugs."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.errors import BadRequest, DomainError, NotFound, ServiceUnavailable
from server.handlers.http import error_response

log = logging.getLogger(__name__)


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound())
    error = DomainError(exc.detail)
    error.status = exc.status_code
    error.code = {405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    response = error_response(error)
    response.headers.update(exc.headers or {})  # e.g. `Allow` on a 405
    return response


async def database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc.__class__.__name__)
    return error_response(ServiceUnavailable("The database is unavailable; try again shortly."))


async def unstorable(request: Request, exc: Exception) -> Response:
    """A value the database refuses (e.g. a NUL character in a query string): the caller's fault."""
    log.info("refused unstorable data: %s", exc.__class__.__name__)
    return error_response(BadRequest("The request holds data that cannot be stored."))


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = DomainError("Something went wrong on our side.")
    error.status, error.code = 500, "internal_error"
    return error_response(error)


EXCEPTION_HANDLERS = {
    DomainError: domain_error,
    HTTPException: http_error,
    OperationalError: database_down,
    DataError: unstorable,
    PoolTimeout: database_down,
    Exception: unexpected,
}
