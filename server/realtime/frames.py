"""Server frames as text (the queued path) and as the bytes of websocket frames (the direct path).

A delivery's cost is mostly the socket's write; what is left of it is here, so every frame is
encoded once per node, not once per socket: a shared event's frame once for all its sockets,
and a personal event's frames (one per recipient, differing only in an id) from two byte
strings encoded once plus the recipient's digits.
"""

from __future__ import annotations

import struct

import orjson

from server.domain.events import ID_SLOT, personal_frame

_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack


def resync_frame(latest_seq: int) -> str:
    return orjson.dumps(
        {"type": "resync_required", "seq": None, "data": {"seq": latest_seq}}
    ).decode()


def error_frame(code: str, message: str) -> str:
    return orjson.dumps(
        {"type": "error", "seq": None, "data": {"code": code, "message": message}}
    ).decode()


PONG_FRAME = orjson.dumps({"type": "pong", "seq": None, "data": {}}).decode()


def ws_header(length: int) -> bytes:
    """The header of an unmasked, unfragmented text frame of `length` payload bytes (RFC 6455
    section 5.2), as a server sends it when no extension was negotiated."""
    if length < 126:
        return _SHORT(0x81, length)
    if length < 65536:
        return _MEDIUM(0x81, 126, length)
    return _LONG(0x81, 127, length)


def ws_text_frame(text: str) -> bytes:
    """`text` as one websocket text frame."""
    payload = text.encode()
    return ws_header(len(payload)) + payload


# The feed pushes one event's frame to every socket that may see it, in a loop, with the same
# str object: encoding it once per event instead of once per socket only needs the last one.
# Keyed on identity, which cannot be recycled while the tuple holds the str; one tuple, replaced
# whole, so servers on several threads of one process (the tests) never read a torn pair.
_last: tuple[str, bytes] = ("", ws_text_frame(""))


def encoded(text: str) -> bytes:
    """`ws_text_frame(text)`, reused while the same str object is pushed again."""
    global _last
    last = _last
    if last[0] is text:
        return last[1]
    data = ws_text_frame(text)
    _last = (text, data)
    return data


class PersonalFrames:
    """The frames of one personal event (see `events.personal_template`): the same JSON but for
    each recipient's item id. The bytes around the id are encoded once; a recipient's frame is
    four pieces, joined with the socket's other frames by the one write that sends them."""

    __slots__ = ("_fixed", "_head", "_headers", "_tail", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        head, _, tail = template.partition(ID_SLOT)
        self._head = head.encode()
        self._tail = tail.encode()
        self._fixed = len(self._head) + len(self._tail)
        self._headers: dict[int, bytes] = {}  # by the id's number of digits: one or two in all

    def text(self, item_id: int) -> str:
        return personal_frame(self.template, item_id)

    def pieces(self, item_id: int) -> tuple[bytes, bytes, bytes, bytes]:
        """`ws_text_frame(self.text(item_id))`, in pieces."""
        digits = b"%d" % item_id
        header = self._headers.get(len(digits))
        if header is None:
            header = self._headers[len(digits)] = ws_header(self._fixed + len(digits))
        return header, self._head, digits, self._tail
