"""What travels between nodes over Redis pub/sub: one message per transaction and account.

    sb2|<origin node>|<published at>
    <seq>|<integration_id>|<user_id>|<type>|<recipients>
    <frame>
    ... (two lines per event)

Empty fields mean "none"; "published at" is the committing node's wall clock (for the latency
metric); recipients (`user:id,user:id`) are those of a personal event, whose frame is then a
template (`personal_frame`). Frames are single-line JSON, encoded once by the node that
committed the event, never again on their way out. A node reads the first line alone to skip
its own messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.events import PendingEvent, personal_frame

VERSION = "sb2"


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
    recipients: tuple[tuple[int, int], ...] = ()

    def frame_for(self, item_id: int) -> str:
        """The frame one of `recipients` gets."""
        return personal_frame(self.frame, item_id)


def channel_for(prefix: str, account_id: int) -> str:
    """One pub/sub channel per account; the prefix keeps installations sharing a Redis apart."""
    return f"{prefix}:account:{account_id}"


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _int(value: str) -> int | None:
    return int(value) if value else None


def encode(events: list[PendingEvent], origin: str, published_at: float) -> str:
    """One account's events of one transaction, in order."""
    lines = [f"{VERSION}|{origin}|{published_at:.6f}"]
    for event in events:
        if "\n" in event.frame:
            raise ValueError("frames are single-line JSON")
        recipients = ",".join(f"{user}:{item}" for user, item in event.recipients)
        seq, integration_id, user_id = (
            _opt(event.seq),
            _opt(event.integration_id),
            _opt(event.user_id),
        )
        lines.append(f"{seq}|{integration_id}|{user_id}|{event.type}|{recipients}")
        lines.append(event.frame)
    return "\n".join(lines)


def origin_of(message: str) -> str:
    """The node that published `message` ("" if it is not one of ours)."""
    parts = message.partition("\n")[0].split("|")
    return parts[1] if len(parts) == 3 and parts[0] == VERSION else ""


def _recipients(field: str) -> tuple[tuple[int, int], ...]:
    if not field:
        return ()
    pairs = (pair.partition(":") for pair in field.split(","))
    return tuple((int(user), int(item)) for user, _, item in pairs)


def decode(account_id: int, message: str) -> list[WireEvent]:
    """Parse a pub/sub message; ValueError if it is not one of ours."""
    lines = message.split("\n")
    head = lines[0].split("|")
    if len(head) != 3 or head[0] != VERSION or len(lines) % 2 != 1:
        raise ValueError("not a switchboard message")
    origin, published_at = head[1], float(head[2])
    events = []
    for header, frame in zip(lines[1::2], lines[2::2], strict=True):
        parts = header.split("|")
        if len(parts) != 5:
            raise ValueError("not a switchboard event")
        seq, integration_id, user_id, type_, recipients = parts
        events.append(
            WireEvent(
                account_id,
                _int(seq),
                _int(integration_id),
                _int(user_id),
                frame,
                type_,
                origin,
                published_at,
                _recipients(recipients),
            )
        )
    return events


def from_pending(event: PendingEvent, published_at: float) -> WireEvent:
    return WireEvent(
        event.account_id,
        event.seq,
        event.integration_id,
        event.user_id,
        event.frame,
        event.type,
        published_at=published_at,
        recipients=event.recipients,
    )
