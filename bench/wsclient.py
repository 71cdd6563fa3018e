"""A deliberately small websocket client (RFC 6455) for the load generator.

The `websockets` client costs tens of microseconds of Python per frame; a generator built on it
saturates long before the server does. This one is an asyncio Protocol that parses server
frames in place and hands each complete text message to a callback with the arrival time of
the read that completed it. It answers pings (servers drop peers that don't) and close frames,
and can negotiate permessage-deflate the way browsers offer it. It never sends data frames.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
import zlib
from collections.abc import Callable
from typing import cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TAIL = b"\x00\x00\xff\xff"
# The extension offer of Chrome and Firefox.
BROWSER_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"

OnMessage = Callable[["WsClient", bytes, int], None]


class HandshakeFailed(Exception):
    pass


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return key + masked


def _client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (control frames only: payloads under 126 bytes)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _mask(payload)


class WsClient(asyncio.Protocol):
    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        token: str,
        on_message: OnMessage,
        *,
        deflate: bool,
        index: int = 0,
    ) -> None:
        self.index = index
        self._request = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: {key}\r\n"
            f"Authorization: Bearer {token}\r\n"
            + (f"Sec-WebSocket-Extensions: {BROWSER_DEFLATE_OFFER}\r\n" if deflate else "")
            + "\r\n"
        )
        self._key = base64.b64encode(os.urandom(16)).decode()
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.deflate = False
        self._no_context_takeover = False
        self._decoder: zlib._Decompress | None = None
        self._buf = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_compressed = False
        self.frames = 0

    # asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request.replace("{key}", self._key).encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed(f"connection lost: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self._buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self._fail("handshake response too long")
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            if not self._handshake(head):
                return
        self._frames(now)

    # Handshake ---------------------------------------------------------------------------------

    def _handshake(self, head: str) -> bool:
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            self._fail(f"status {status[1] if len(status) > 1 else lines[0]!r}")
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key.encode() + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            self._fail("bad Sec-WebSocket-Accept")
            return False
        extensions = headers.get("sec-websocket-extensions", "")
        if extensions:
            params = [p.strip() for p in extensions.split(";")]
            if params[0] != "permessage-deflate":
                self._fail(f"unexpected extension {extensions!r}")
                return False
            self.deflate = True
            self._no_context_takeover = "server_no_context_takeover" in params
        self.upgraded = True
        if not self.opened.done():
            self.opened.set_result(None)
        return True

    def _fail(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed(why))
        if self.transport is not None:
            self.transport.close()

    # Frames ------------------------------------------------------------------------------------

    def _frames(self, now: int) -> None:
        buf = self._buf
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                header = 10
            end = pos + header + length
            if end > size:
                break
            payload = bytes(buf[pos + header : end])
            pos = end
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:  # text or binary: a message starts
                if b0 & 0x80:
                    self._message(payload, bool(b0 & 0x40), now)
                else:
                    self._fragments = [payload]
                    self._fragment_compressed = bool(b0 & 0x40)
            elif opcode == 0:  # continuation
                self._fragments.append(payload)
                if b0 & 0x80:
                    whole = b"".join(self._fragments)
                    self._fragments = []
                    self._message(whole, self._fragment_compressed, now)
            elif opcode == 9:  # ping
                if self.transport is not None:
                    self.transport.write(_client_frame(0xA, payload))
            elif opcode == 8:  # close: echo it and let the server close the TCP connection
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if self.transport is not None:
                    self.transport.write(_client_frame(0x8, payload[:2]))
                    self.transport.close()
                break
        del buf[:pos]

    def _message(self, payload: bytes, compressed: bool, now: int) -> None:
        if compressed:
            if self._decoder is None or self._no_context_takeover:
                self._decoder = zlib.decompressobj(wbits=-15)
            payload = self._decoder.decompress(payload + TAIL)
        self.frames += 1
        self.on_message(self, payload, now)

    # Closing -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Send a normal close frame; the server closes the TCP connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_client_frame(0x8, struct.pack("!H", 1000)))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(
    host: str,
    port: int,
    path: str,
    token: str,
    on_message: OnMessage,
    *,
    deflate: bool,
    index: int = 0,
    limit_s: float = 30.0,
) -> WsClient:
    """Open a connection and wait for the 101 (not for any frame)."""
    loop = asyncio.get_running_loop()
    client = WsClient(host, port, path, token, on_message, deflate=deflate, index=index)
    async with asyncio.timeout(limit_s):
        await loop.create_connection(lambda: client, host, port)
        await client.opened
    return client
