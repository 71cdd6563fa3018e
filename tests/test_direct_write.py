"""The websocket direct write path: frames written to uvicorn's transport by `Connection.push`.

The encoder against websockets' own serialisation; the direct mode's overflow and ordering rules
on a stand-in transport; then live servers: the direct path where it applies (and one task per
socket), the queued path under permessage-deflate, and a client that stops reading.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from starlette.websockets import WebSocket
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from server.domain.events import personal_template
from server.realtime import frames as frames_module
from server.realtime.connection import WRITE_BUFFER_LIMIT, Connection, Corked
from server.realtime.frames import PONG_FRAME, PersonalFrames, resync_frame, ws_text_frame
from server.state.db import Database
from tests import support
from tests.nodes import Frame, WsClient
from tests.support import Api, LiveServer, Team, event_log, settings_for, wait_for

EMOJI = [chr(c) for c in range(0x1F600, 0x1F640)]

# The frame encoder ------------------------------------------------------------------------------

TEXTS = {
    "empty": "",
    "125": "a" * 125,
    "126": "b" * 126,
    "65535": "c" * 65535,
    "65536": "d" * 65536,
    "non-ascii short": "héllo wörld ✓",
    # 40 characters but 160 bytes: the length field counts bytes, not characters.
    "non-ascii over 125 bytes": "".join(EMOJI[:40]),
    "non-ascii over 65535 bytes": "é" * 40000,
}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_text_frames_equal_websockets_own_serialisation(text: str) -> None:
    expected = WsFrame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert ws_text_frame(text) == expected
    # And what uvicorn's protocol object itself would have written for `websocket.send`.
    server = ServerProtocol()
    server.state = State.OPEN
    server.send_text(text.encode())
    assert server.data_to_send() == [expected]


def test_one_event_is_encoded_once_for_all_its_sockets() -> None:
    text = orjson.dumps({"type": "x", "seq": 1, "data": {"n": random.random()}}).decode()
    first = frames_module.encoded(text)
    assert frames_module.encoded(text) is first  # the same str: the same bytes object
    equal = "".join(list(text))  # equal, but another object: encoded again (and correctly)
    assert equal is not text
    again = frames_module.encoded(equal)
    assert again == first and again is not first


def test_personal_frames_are_the_template_filled_in_as_websocket_frames() -> None:
    long_body = "é" * 70_000  # a frame over 65,535 bytes: the 8-byte length
    for body in ("short", "x" * 100, long_body):
        template = personal_template("notification.created", "notification", {"body": body})
        frames = PersonalFrames(template)
        for item_id in (0, 7, 99, 100, 123_456_789_012):
            text = frames.text(item_id)
            assert orjson.loads(text)["data"]["notification"] == {"id": item_id, "body": body}
            assert b"".join(frames.pieces(item_id)) == ws_text_frame(text)


# Direct mode on a stand-in transport -------------------------------------------------------------


class FakeTransport:
    """What `Connection` uses of an asyncio transport; `buffered` is set by the test."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def texts(self) -> list[str]:
        return [text for data in self.written for text in _payloads(data)]


def _payloads(data: bytes) -> list[str]:
    """The texts of the unmasked server frames (as ws_text_frame builds them) in one write."""
    texts = []
    while data:
        length = data[1] & 0x7F
        start = 2 + {126: 2, 127: 8}.get(length, 0)
        if length >= 126:
            length = int.from_bytes(data[2:start], "big")
        texts.append(data[start : start + length].decode())
        data = data[start + length :]
    return texts


class Turns:
    """Stands in for the event loop under `Corked`: `end_turn()` runs what was scheduled."""

    def __init__(self) -> None:
        self.scheduled: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.scheduled.append(callback)

    def end_turn(self) -> None:
        scheduled, self.scheduled = self.scheduled, []
        for callback in scheduled:
            callback()


def _direct(cursor: int = 0) -> tuple[Connection, FakeTransport, Any, Turns]:
    transport = FakeTransport()
    protocol = SimpleNamespace(
        transport=transport, close_sent=False, conn=SimpleNamespace(state=State.OPEN)
    )
    connection = Connection(cast(WebSocket, None), user_id=1, account_id=1)
    connection.cursor = cursor
    return connection, transport, protocol, Turns()


def _live(connection: Connection, protocol: Any, turns: Turns) -> Corked:
    corked = Corked(turns.call_soon)
    connection.go_live(protocol, corked)
    return corked


def _event(seq: int) -> str:
    return orjson.dumps({"type": "message.created", "seq": seq, "data": {}}).decode()


def test_live_events_pushed_during_the_greeting_follow_it_in_order() -> None:
    connection, transport, protocol, turns = _direct(cursor=10)
    connection.push(_event(11), 11)
    connection.push(_event(11), 11)  # seen: not again
    connection.push(PONG_FRAME)
    connection.push(_event(12), 12)
    assert transport.written == [] and connection.backlog == 3  # queued until live
    _live(connection, protocol, turns)
    assert connection.direct and connection.backlog == 0
    # What waited is written at once, in one piece.
    assert [_payloads(w) for w in transport.written] == [[_event(11), PONG_FRAME, _event(12)]]
    connection.push(_event(13), 13)
    connection.push(_event(9), 9)  # below the cursor: never
    turns.end_turn()
    assert transport.texts() == [_event(11), PONG_FRAME, _event(12), _event(13)]
    transport.buffered = 1234
    assert connection.backlog == 1234  # direct mode: what waits in the transport


def test_one_turns_frames_are_one_write_per_socket_in_order() -> None:
    a, transport_a, protocol_a, turns = _direct()
    b, transport_b, protocol_b, _ = _direct()
    corked = Corked(turns.call_soon)
    a.go_live(protocol_a, corked)
    b.go_live(protocol_b, corked)
    for seq in (1, 2, 3):
        a.push(_event(seq), seq)
        b.push(_event(seq), seq)
    a.push(PONG_FRAME)
    assert transport_a.written == transport_b.written == []  # not before the turn ends
    assert len(turns.scheduled) == 1  # one flush per turn, however many sockets
    turns.end_turn()
    assert [_payloads(w) for w in transport_a.written] == [
        [_event(1), _event(2), _event(3), PONG_FRAME]
    ]
    assert [_payloads(w) for w in transport_b.written] == [[_event(1), _event(2), _event(3)]]
    turns.end_turn()  # nothing new: nothing written
    assert len(transport_a.written) == len(transport_b.written) == 1


def test_a_client_too_far_behind_gets_one_resync_and_nothing_until_its_buffer_drains() -> None:
    connection, transport, protocol, turns = _direct()
    _live(connection, protocol, turns)

    def push(seq: int | None, *, buffered: int) -> None:
        transport.buffered = buffered
        connection.push(_event(seq) if seq else PONG_FRAME, seq)
        turns.end_turn()

    push(1, buffered=0)
    push(2, buffered=WRITE_BUFFER_LIMIT)  # at the limit: still written
    push(3, buffered=WRITE_BUFFER_LIMIT + 1)  # over it: told to resync from 3 instead
    push(4, buffered=WRITE_BUFFER_LIMIT + 1)
    push(5, buffered=10)  # draining, but not yet drained: still dropped
    push(None, buffered=10)
    assert transport.texts() == [_event(1), _event(2), resync_frame(3)]
    assert connection.overflows == 1 and connection.cursor == 5
    # The resync frame has left the buffer: what comes next is written again.
    push(6, buffered=0)
    push(7, buffered=WRITE_BUFFER_LIMIT // 2)
    assert transport.texts()[3:] == [_event(6), _event(7)]
    # Behind again: a second resync.
    push(8, buffered=WRITE_BUFFER_LIMIT + 1)
    assert transport.texts()[5:] == [resync_frame(8)] and connection.overflows == 2


def test_nothing_is_written_to_a_closing_socket_or_after_close() -> None:
    connection, transport, protocol, turns = _direct()
    _live(connection, protocol, turns)
    protocol.close_sent = True  # the server sent its close frame (e.g. 1001, going away)
    connection.push(_event(1), 1)
    turns.end_turn()
    protocol.close_sent = False
    # The client sent its close frame (or broke the protocol): uvicorn answered and closed the
    # transport while reading it (`test_uvicorn_closes_the_transport_as_it_reads_a_close_frame`).
    transport.closing = True
    connection.push(_event(3), 3)
    turns.end_turn()
    transport.closing = False
    connection.push(_event(4), 4)
    connection.close()  # closed before the turn ended: what was pending goes with it
    connection.push(_event(5), 5)
    turns.end_turn()
    assert transport.written == []


def test_personal_frames_join_the_turns_other_frames_in_one_write() -> None:
    connection, transport, protocol, turns = _direct()
    _live(connection, protocol, turns)
    frames = PersonalFrames(personal_template("notification.created", "notification", {}))
    connection.push(_event(1), 1)
    connection.push_personal(frames, 41)
    turns.end_turn()
    assert [_payloads(w) for w in transport.written] == [[_event(1), frames.text(41)]]
    connection.close()
    connection.push_personal(frames, 42)
    turns.end_turn()
    assert len(transport.written) == 1

    queued = Connection(cast(WebSocket, None), user_id=1, account_id=1)
    queued.push_personal(frames, 43)  # not live yet: queued as text, sent on going live
    transport = FakeTransport()
    protocol.transport = transport
    _live(queued, protocol, turns)
    assert transport.texts() == [frames.text(43)]


def test_the_queued_path_still_bounds_its_outbox_and_sends_in_order() -> None:
    sent: list[str] = []

    class FakeWebSocket:
        async def send_text(self, text: str) -> None:
            sent.append(text)
            if len(sent) == 2:
                connection.close()  # as the handler does when the socket ends

    connection = Connection(cast(WebSocket, FakeWebSocket()), user_id=1, account_id=1, limit=3)
    for seq in range(1, 6):
        connection.push(_event(seq), seq)
    assert not connection.direct and connection.overflows == 1 and connection.backlog == 2
    asyncio.run(asyncio.wait_for(connection.send_forever(), 5))
    # The fourth found the outbox full: it and the three before it became one resync frame.
    assert sent == [resync_frame(4), _event(5)]


# Live servers -----------------------------------------------------------------------------------


def ws_url(server: LiveServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


def server_connections(server: LiveServer, account_id: int, user_id: int) -> list[Connection]:
    feed = server.runtime.realtime.hub.feeds.get(account_id)
    if feed is None:
        return []
    return [c for c in list(feed.connections.values()) if c.user_id == user_id]


def the_connection(server: LiveServer, team: Team, key: str = "admin") -> Connection:
    found: list[Connection] = wait_for(
        lambda: server_connections(server, team.account_id, team[key].id)
    )
    assert len(found) == 1, found
    return found[0]


def tasks_on(server: LiveServer) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    result: int = server.run_coroutine(count())
    return result


def is_type(type_: str) -> Any:
    return lambda frame: frame["type"] == type_


def test_uvicorn_closes_the_transport_as_it_reads_a_close_frame(api: Api) -> None:
    """`Connection.flush` checks only `close_sent` and `transport.is_closing()`, not the
    protocol's state: uvicorn must close the transport in the very call that reads the client's
    close frame (the state leaves OPEN there), so nothing can be written after it."""
    server = api.server
    team = api.signup()

    async def main() -> None:
        client = await WsClient.connect(ws_url(server), team.admin.token, name="admin")
        await client.wait_for(is_type("hello"))
        connection = await asyncio.to_thread(the_connection, server, team)
        protocol: Any = connection._protocol
        assert protocol is not None
        seen: list[tuple[State, bool, bool]] = []
        handle_events = protocol.handle_events

        def spy() -> None:  # what data_received calls once it has parsed what came in
            handle_events()
            seen.append((protocol.conn.state, protocol.close_sent, protocol.transport.is_closing()))

        protocol.handle_events = spy
        await client.close()
        left_open = await asyncio.to_thread(
            wait_for, lambda: [s for s in seen if s[0] is not State.OPEN]
        )
        assert all(close_sent or closing for _, close_sent, closing in left_open), left_open

    asyncio.run(main())


def test_a_socket_is_fed_directly_and_costs_one_task(api: Api) -> None:
    server = api.server
    team = api.signup()
    integration = team.install()

    async def main() -> None:
        client = await WsClient.connect(ws_url(server), team.admin.token, name="admin")
        try:
            hello = await client.wait_for(is_type("hello"))
            connection = await asyncio.to_thread(the_connection, server, team)
            assert connection.direct
            await client.send_json({"type": "ping"})
            await client.wait_for(is_type("pong"))
            await client.send("not json")
            error = await client.wait_for(is_type("error"))
            assert error["data"]["code"] == "bad_request"
            await asyncio.to_thread(team.inbound, integration, text="Direct!")
            created = await client.wait_for(is_type("message.created"))
            assert created["data"]["message"]["text"] == "Direct!"
            seqs = client.seqs()
            assert seqs == sorted(set(seqs)) and seqs[0] == hello["seq"]
            assert connection.overflows == 0 and connection.backlog == 0

            # Queued mode ran three tasks per socket (the ASGI app's, a sender, a receiver).
            before = await asyncio.to_thread(tasks_on, server)
            more = [
                await WsClient.connect(ws_url(server), team.admin.token, name=f"more-{n}")
                for n in range(10)
            ]
            for other in more:
                await other.wait_for(is_type("hello"))
            await asyncio.to_thread(
                wait_for,
                lambda: len(server_connections(server, team.account_id, team.admin.id)) == 11,
            )
            grown = await asyncio.to_thread(tasks_on, server) - before
            assert 10 <= grown < 15, grown
            for other in more:
                await other.close()
        finally:
            await client.close()

    asyncio.run(main())


# permessage-deflate (WS_COMPRESSION=1) and a client that stops reading: a server of their own.


@pytest.fixture(scope="module")
def deflate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """SQLite, and uvicorn offering permessage-deflate as with WS_COMPRESSION=1."""
    data_dir: Path = tmp_path_factory.mktemp("direct-write")
    live = LiveServer(
        settings_for(f"sqlite:///{data_dir / 'test.db'}", data_dir), support.TestClock()
    )
    live.server.config.ws_per_message_deflate = True  # read by each new protocol object
    live.start()
    yield live
    live.stop()


@pytest.fixture
def deflate_api(deflate_server: LiveServer) -> Iterator[Api]:
    client = Api(deflate_server)
    yield client
    client.close()


def test_with_permessage_deflate_the_queued_path_delivers(deflate_api: Api) -> None:
    server = deflate_api.server
    team = deflate_api.signup()
    plain = team.add("plain")
    integration = team.install(shared_with=["plain"])

    async def main() -> None:
        compressed = await WsClient.connect(ws_url(server), team.admin.token, name="deflate")
        # The server offers the extension; a client that does not accept it gets the direct path.
        uncompressed = await WsClient.connect(
            ws_url(server), plain.token, name="plain", compression=None
        )
        try:
            assert compressed.connection.protocol.extensions  # negotiated
            assert not uncompressed.connection.protocol.extensions
            for client in (compressed, uncompressed):
                await client.wait_for(is_type("hello"))
            queued = await asyncio.to_thread(the_connection, server, team, "admin")
            direct = await asyncio.to_thread(the_connection, server, team, "plain")
            assert not queued.direct and direct.direct
            await compressed.send_json({"type": "ping"})
            await compressed.wait_for(is_type("pong"))
            await asyncio.to_thread(team.inbound, integration, text="Squeezed")
            for client in (compressed, uncompressed):
                created = await client.wait_for(is_type("message.created"))
                assert created["data"]["message"]["text"] == "Squeezed"
            assert compressed.seqs() == uncompressed.seqs()
        finally:
            await compressed.close()
            await uncompressed.close()

    asyncio.run(main())


class RawClient:
    """A websocket client on a bare socket with a small receive buffer, so that not reading
    fills the server's buffers fast; it reads only when told to."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self._exactly(1)  # byte by byte: not a byte of the first frame
        assert head.startswith(b"HTTP/1.1 101"), head

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def frame(self) -> Frame:
        """The next text frame (control frames, e.g. the server's pings, are skipped)."""
        while True:
            first, second = self._exactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._exactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._exactly(8))
            payload = self._exactly(length)
            if first & 0x0F == Opcode.TEXT:
                assert first & 0x80, "fragmented"
                frame: Frame = orjson.loads(payload)
                return frame

    def close(self) -> None:
        self.sock.close()


def test_a_client_that_stops_reading_is_told_to_resync_and_others_keep_up(
    deflate_api: Api,
) -> None:
    server = deflate_api.server
    db: Database = server.runtime.db
    team = deflate_api.signup()
    bob = team.add("bob")
    integration = team.install(shared_with=["bob"])
    texts = ["".join(random.choices(EMOJI, k=4000)) for _ in range(20)]  # ~16 KB, incompressible

    async def main() -> None:
        reader = await WsClient.connect(ws_url(server), team.admin.token, name="reader")
        stalled = await asyncio.to_thread(RawClient, server.port, bob.token)
        try:
            start = (await reader.wait_for(is_type("hello")))["seq"]
            assert (await asyncio.to_thread(stalled.frame))["type"] == "hello"
            connection = await asyncio.to_thread(the_connection, server, team, "bob")
            assert connection.direct

            def inbound(n: int) -> None:
                r = team.inbound(integration, text=texts[n % len(texts)], contact=f"c{n % 5}")
                assert r.status_code == 200, r.text

            # Until it is too far behind, then some more that it must not be sent.
            sent, peak = 0, 0
            while connection.overflows == 0:
                assert sent < 1000, "never overflowed"
                await asyncio.gather(*(asyncio.to_thread(inbound, sent + i) for i in range(4)))
                sent += 4
                peak = max(peak, connection.backlog)
            for _ in range(5):
                await asyncio.to_thread(inbound, sent)
                sent += 1
                peak = max(peak, connection.backlog)
            # Bounded: the limit, plus the one frame that crossed it, plus the resync frame.
            assert peak <= WRITE_BUFFER_LIMIT + 64 * 1024, peak
            assert connection.overflows == 1
            print(f"overflowed after {sent - 5} inbound messages; peak backlog {peak} bytes")

            # The reading client got everything, in order.
            events = await asyncio.to_thread(event_log, db, team.account_id, start)
            expected = [e["seq"] for e in events]
            await reader.wait_for_frames(lambda _: set(expected) <= set(reader.seqs()), 30)
            assert reader.seqs() == [start, *expected]  # hello's, then every event's
            assert not any(f["type"] == "resync_required" for f in reader.frames)

            # Every event was pushed to it (written or dropped) before it reads: the feed works
            # after the webhook's answer, and a frame pushed after it drained would be written.
            await asyncio.to_thread(wait_for, lambda: connection.cursor >= expected[-1])
            # The stalled one, reading at last: events in order, then resync, then nothing more.
            frames = [await asyncio.to_thread(stalled.frame)]
            while frames[-1]["type"] != "resync_required":
                frames.append(await asyncio.to_thread(stalled.frame))
            got = [f["seq"] for f in frames[:-1] if f["seq"] is not None]
            resync_seq = frames[-1]["data"]["seq"]
            # (The frame that overflowed may have had no seq: then the resync repeats the last.)
            assert got == sorted(set(got)) and got[-1] <= resync_seq < expected[-1]
            assert got == [s for s in expected if s <= got[-1]]  # none missing before it

            # Drained: the next event reaches it again (the REST refetch covers those between).
            await asyncio.to_thread(inbound, sent)
            latest = (await asyncio.to_thread(event_log, db, team.account_id, expected[-1]))[-1]
            frame = await asyncio.to_thread(stalled.frame)
            # Frames of no seq may come first (a notification, presence); a resync may not.
            skipped = []
            while frame["seq"] is None:
                assert frame["type"] != "resync_required", (skipped, frame)
                skipped.append(frame["type"])
                frame = await asyncio.to_thread(stalled.frame)
            assert frame["seq"] > expected[-1], (skipped, frame["type"])
            while frame["seq"] != latest["seq"]:
                frame = await asyncio.to_thread(stalled.frame)
            assert connection.overflows == 1
        finally:
            stalled.close()
            await reader.close()

    asyncio.run(main())
