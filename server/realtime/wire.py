"""What travels between nodes over Redis pub/sub: a small header, then the frame as clients get it.

`<seq>|<integration_id>|<user_id>|<type>|<origin node>|<published at>\n<frame>`, empty fields
meaning "none"; "published at" is the committing node's wall clock (for the latency metric).
The frame is encoded once by the node that committed the event, never again on its way out.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.events import PendingEvent


@dataclass(frozen=True, slots=True)
class WireEvent:
    account_id: int
    seq: int | None
    integration_id: int | None
    user_id: int | None
    frame: str
    type: str = ""
    origin: str = ""
    published_at: float = 0.0


def channel_for(prefix: str, account_id: int) -> str:
    """One pub/sub channel per account; the prefix keeps installations sharing a Redis apart."""
    return f"{prefix}:account:{account_id}"


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _int(value: str) -> int | None:
    return int(value) if value else None


def encode(event: PendingEvent, origin: str, published_at: float) -> str:
    seq, integration_id, user_id = _opt(event.seq), _opt(event.integration_id), _opt(event.user_id)
    header = f"{seq}|{integration_id}|{user_id}|{event.type}|{origin}|{published_at:.6f}"
    return f"{header}\n{event.frame}"


def decode(account_id: int, message: str) -> WireEvent:
    """Parse a pub/sub message; ValueError if it is not one of ours."""
    header, sep, frame = message.partition("\n")
    parts = header.split("|")
    if not sep or len(parts) != 6:
        raise ValueError("not a switchboard event")
    seq, integration_id, user_id, type_, origin, published_at = parts
    return WireEvent(
        account_id,
        _int(seq),
        _int(integration_id),
        _int(user_id),
        frame,
        type_,
        origin,
        float(published_at),
    )


def from_pending(event: PendingEvent, published_at: float) -> WireEvent:
    return WireEvent(
        event.account_id,
        event.seq,
        event.integration_id,
        event.user_id,
        event.frame,
        event.type,
        published_at=published_at,
    )
