"""Fakes of the outside world that the server talks to, for tests to reuse.

`LocalHTTPServer` is the common ground of the fakes that are HTTP servers: a threaded server on
127.0.0.1 (a free port, in a daemon thread) that reads each request into a `Received` and writes
back the `Answer` a subclass's `answer` decides on.

`FakeCallback` stands in for an `api` integration's `callback_url`: it records every request it
gets and answers with scripted status codes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self

import orjson


@dataclass(frozen=True)
class Received:
    """One request the fake got: method, path, headers (lower-cased names) and the raw body."""

    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """What the fake answers: status, body, its content type, and any other headers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls,
        status: int,
        document: Any,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        return cls(status, orjson.dumps(document), content_type, dict(headers or {}))


class LocalHTTPServer:
    """An HTTP server on a free local port, in a thread; subclasses decide the answers.

    It serves the HTTP `methods` listed (others get the standard library's 501) and hands each
    request to `answer`, from the server's threads. `_lock` is there for the subclass's state.
    Use it as a context manager (or call `start`/`stop`).
    """

    methods: ClassVar[tuple[str, ...]] = ("GET", "POST")
    poll_interval: ClassVar[float] = 0.5  # how often `serve_forever` looks for a shutdown

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.base_url

    def answer(self, request: Received) -> Answer:
        """The answer to `request`; called once per request, from the server's threads."""
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                answer = fake.answer(request)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        for method in self.methods:
            setattr(Handler, f"do_{method}", Handler._handle)
        return Handler

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeCallback(LocalHTTPServer):
    """A local HTTP endpoint that records requests and answers them with scripted statuses.

    `statuses` are used one per request, in order; once they run out every request gets
    `default`. Use it as a context manager (or call `start`/`stop`).
    """

    methods = ("POST", "PUT", "GET")

    def __init__(self, statuses: Iterable[int] = (), default: int = 200) -> None:
        super().__init__()
        self._statuses = list(statuses)
        self.default = default
        self._received: list[Received] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/callback"

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

    def answer(self, request: Received) -> Answer:
        status = self._next_status(request)
        return Answer.json(status, {"ok": 200 <= status < 300})
