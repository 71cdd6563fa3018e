"""What travels between nodes over Redis pub/sub: one message per transaction and account.

    sb3|<origin node>|<published at>
    <seq>|<integration_id>|<user_id>|<type>|<recipients>
    <frame>
    ... (two lines per event)

Empty fields mean "none"; "published at" is the committing node's wall clock (for the latency
metric); recipients (`[[user,id],...]`, JSON) are those of a personal event, whose frame is then
a template (`personal_frame`). Frames are single-line JSON, encoded once by the node that
committed the event, never again on their way out. A node reads the first line alone to skip
its own messages.

Version sb2 wrote recipients as `user:id,user:id`, which cost a thousand Python-level
formattings per notification for a team of a thousand (and more to parse); nodes still read it,
so that during a rolling upgrade the new ones hear the old. The old ones ignore sb3 messages:
they catch up with the durable events from the log, and miss the notifications' live events
(not the notifications) until they are upgraded too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from server.domain.events import PendingEvent

VERSION = "sb3"
_READABLE = ("sb3", "sb2")


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
    # A personal event's (user id, item id) pairs; `frame` is then a template (`PersonalFrames`).
    recipients: Sequence[Sequence[int]] = ()


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
        recipients = orjson.dumps(event.recipients).decode() if event.recipients else ""
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
    return parts[1] if len(parts) == 3 and parts[0] in _READABLE else ""


def _recipients(field: str, version: str) -> Sequence[Sequence[int]]:
    if not field:
        return ()
    if version == "sb2":
        pairs = (pair.partition(":") for pair in field.split(","))
        return tuple((int(user), int(item)) for user, _, item in pairs)
    loaded = orjson.loads(field)
    if type(loaded) is not list or not all(
        type(pair) is list and len(pair) == 2 and type(pair[0]) is int and type(pair[1]) is int
        for pair in loaded
    ):
        raise ValueError("recipients are (user id, item id) pairs")
    return loaded


def decode(account_id: int, message: str) -> list[WireEvent]:
    """Parse a pub/sub message; ValueError if it is not one of ours."""
    lines = message.split("\n")
    head = lines[0].split("|")
    if len(head) != 3 or head[0] not in _READABLE or len(lines) % 2 != 1:
        raise ValueError("not a switchboard message")
    version, origin, published_at = head[0], head[1], float(head[2])
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
                _recipients(recipients, version),
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
