"""Fakes of the outside world that the server talks to, for tests to reuse.

`FakeCallback` is a tiny HTTP server on 127.0.0.1 (a free port, in a thread) standing in for an
`api` integration's `callback_url`: it records every request it gets and answers with scripted
status codes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    """One request the fake got: method, path, headers (lower-cased names) and the raw body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class FakeCallback:
    """A local HTTP endpoint that records requests and answers them with scripted statuses.

    `statuses` are used one per request, in order; once they run out every request gets
    `default`. Use it as a context manager (or call `start`/`stop`).
    """

    def __init__(self, statuses: Iterable[int] = (), default: int = 200) -> None:
        self._statuses = list(statuses)
        self.default = default
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/callback"

    @property
    def requests(self) -> list[Received]:
        """A snapshot of what was received so far, oldest first."""
        with self._lock:
            return list(self._received)

    def set_statuses(self, statuses: Iterable[int], default: int | None = None) -> None:
        with self._lock:
            self._statuses = list(statuses)
            if default is not None:
                self.default = default

    def _next_status(self, received: Received) -> int:
        with self._lock:
            self._received.append(received)
            return self._statuses.pop(0) if self._statuses else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                status = fake._next_status(received)
                payload = orjson.dumps({"ok": 200 <= status < 300})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = _handle
            do_PUT = _handle
            do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

    def start(self) -> FakeCallback:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeCallback:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
