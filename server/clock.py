"""The one source of "now", so that time-dependent rules (24 h windows) can be tested."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time, UTC, without microseconds below what databases keep."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Databases may hand back naive datetimes (SQLite); all of ours are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def isoformat(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a `Z`, as the contract writes timestamps."""
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")
