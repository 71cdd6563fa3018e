"""Domain errors. Each carries the contract's HTTP status and error code; handlers map them once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the rules refuse. Subclasses fix the status and code."""

    status = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.fields = fields


class BadRequest(DomainError):
    status, code, default_message = 400, "bad_request", "The request body is malformed."


class Unauthenticated(DomainError):
    status, code, default_message = 401, "unauthenticated", "Authentication is required."


class Forbidden(DomainError):
    status, code, default_message = 403, "forbidden", "You are not allowed to do this."


class NotFound(DomainError):
    status, code, default_message = 404, "not_found", "Not found."


class PayloadTooLarge(DomainError):
    status, code, default_message = 413, "payload_too_large", "The request body is too large."


class ValidationFailed(DomainError):
    status, code, default_message = 422, "validation_error", "Some fields are invalid."


class RateLimited(DomainError):
    status, code, default_message = 429, "rate_limited", "Too many requests; try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(DomainError):
    status, code, default_message = 409, "conflict", "The request conflicts with the current state."


class EmailTaken(Conflict):
    code, default_message = "email_taken", "A user with this email already exists."


class AssigneeUnavailable(Conflict):
    code = "assignee_unavailable"
    default_message = "The assignee is not available or has no access to this conversation."


class VersionConflict(Conflict):
    code, default_message = "version_conflict", "The conversation changed; reload and try again."


class ReplyWindowClosed(Conflict):
    code = "reply_window_closed"
    default_message = (
        "The contact's last message is more than 24 hours old; the provider refuses replies."
    )


class AlreadyLinked(Conflict):
    code = "already_linked"
    default_message = "The conversation is already linked to this record."


class TooManyTokens(Conflict):
    code, default_message = "too_many_tokens", "Too many API tokens; revoke some first."


class ServiceUnavailable(DomainError):
    status, code, default_message = 503, "service_unavailable", "A backing service is unavailable."
