"""Real server processes, a private Redis and a websocket client, for multi-node realtime tests."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from server.state.redis_server import redis_server_argv

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
# Settings a developer's environment might carry that would change what the nodes do.
_SCRUBBED = (
    "ALLOWED_ORIGINS",
    "SMTP_URL",
    "METRICS_TOKEN",
    "ALLOW_SIGNUP",
    "HOST",
    "PORT",
    "PYTHONTRACEMALLOC",
    "PYTHONDEVMODE",
)

Frame = dict[str, Any]


def _die_with_parent() -> None:
    """Linux: have the kernel stop the child if the test process dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 120) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def node_env(
    *, database_url: str, redis_url: str, secret_key: str, public_url: str, **extra: str
) -> dict[str, str]:
    """The settings every node of one cluster shares (each node adds its own data dir)."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret_key,
        "PUBLIC_URL": public_url,
        "PASSWORD_HASH_PROFILE": "fast",
        # Tests drive far more than a person would, from one address (see tests/support.py).
        "RATE_LIMIT_SIGNUP": "100000/hour",
        "RATE_LIMIT_LOGIN": "100000/hour",
        "RATE_LIMIT_WEBHOOK": "100000/minute",
        "LOGIN_DELAY_BASE": "0.001",
        **extra,
    }


class ServerProcess:
    """`python -m server run` in a child process, ready (GET /readyz is 200) once constructed."""

    def __init__(self, env: dict[str, str], port: int, *, name: str = "node") -> None:
        self.name = name
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix=f"switchboard-{name}-"))
        self.log_path = self.dir / "server.log"
        full_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        full_env.update(env)
        full_env["SWITCHBOARD_DATA_DIR"] = str(self.dir / "data")
        full_env.setdefault("PASSWORD_HASH_PROFILE", "fast")
        full_env["PYTHONUNBUFFERED"] = "1"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            print(f"--- {self.name} (port {port}) did not become ready; its log:\n{self.log()}")
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll until GET /readyz is 200 (at start, or again after Redis came back)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready within {timeout} s")
                time.sleep(0.1)

    def rss_bytes(self) -> int:
        """The process's resident set size (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log(self, lines: int = 120) -> str:
        return _tail(self.log_path, lines)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash."""
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()

    def stop(self) -> None:
        """SIGTERM and wait for a graceful shutdown (SIGKILL if it takes too long)."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"--- {self.name} ignored SIGTERM; killing it. Its log:\n{self.log()}")
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A private redis-server on 127.0.0.1:<port>, which can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="switchboard-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            redis_server_argv(self.dir, port=self.port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self._pings():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = _tail(self.dir / "redis.log")
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")
            time.sleep(0.05)

    def _pings(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def logs_on_failure(*nodes: ServerProcess) -> Iterator[None]:
    """Print the nodes' logs when the block fails (pytest shows them with the failure)."""
    try:
        yield
    except BaseException:
        for node in nodes:
            print(f"--- log of {node.name} (port {node.port}, pid {node.pid}):\n{node.log()}")
        raise


# Websocket client ----------------------------------------------------------------------------


class WsClient:
    """A websocket client whose frames a background task collects into `frames`."""

    def __init__(self, connection: ClientConnection, name: str = "client") -> None:
        self.connection = connection
        self.name = name
        self.frames: list[Frame] = []
        self.arrived: list[float] = []  # time.monotonic() of each frame's arrival
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"ws-reader-{name}")

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str | None = None,
        *,
        since: int | None = None,
        origin: str | None = None,
        name: str = "client",
        **kwargs: Any,
    ) -> WsClient:
        connection = await open_ws(url, token, since=since, origin=origin, **kwargs)
        return cls(connection, name)

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                if isinstance(message, bytes):
                    frame: Frame = {"type": "<binary>", "seq": None, "data": {"raw": message}}
                else:
                    frame = orjson.loads(message)
                self.frames.append(frame)
                self.arrived.append(time.monotonic())
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.connection.close_code
            self.closed.set()
            self._changed.set()

    async def wait_for_frames(
        self,
        predicate: Callable[[list[Frame]], Any],
        timeout: float = 5.0,  # noqa: ASYNC109  (a deadline for a loop of awaits)
    ) -> Any:
        """Wait until `predicate(frames)` is truthy and return its value; AssertionError after
        `timeout` seconds (or if the socket closed without the condition being met)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self._changed.clear()
            value = predicate(self.frames)
            if value:
                return value
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self.closed.is_set():
                summary = [(f.get("type"), f.get("seq")) for f in self.frames[-20:]]
                state = "closed" if self.closed.is_set() else "open"
                raise AssertionError(
                    f"{self.name}: condition not met within {timeout} s ({state}, "
                    f"{len(self.frames)} frames, last ones {summary})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for(
        self,
        predicate: Callable[[Frame], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Frame:
        """The first frame (ever received) matching `predicate`, waiting for it if need be."""
        found: Frame = await self.wait_for_frames(
            lambda frames: next((f for f in frames if predicate(f)), None), timeout
        )
        return found

    async def wait_for_new(
        self,
        predicate: Callable[[Frame], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        start: int,
    ) -> Frame:
        """The first frame at index >= `start` matching `predicate`."""
        found: Frame = await self.wait_for_frames(
            lambda frames: next((f for f in frames[start:] if predicate(f)), None), timeout
        )
        return found

    async def send_json(self, frame: Frame) -> None:
        await self.connection.send(orjson.dumps(frame).decode())

    async def send(self, message: str | bytes) -> None:
        await self.connection.send(message)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), 5)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    def seqs(self, types: tuple[str, ...] | None = None) -> list[int]:
        """The seqs received, in arrival order (only frames whose type starts with `types`)."""
        return [
            int(f["seq"])
            for f in self.frames
            if f.get("seq") is not None and (types is None or str(f["type"]).startswith(types))
        ]


async def open_ws(
    url: str,
    token: str | None = None,
    *,
    since: int | None = None,
    origin: str | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """A raw websocket connection (no background reader): for handshake and slow-reader tests."""
    if since is not None:
        url = f"{url}?since={since}"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    kwargs.setdefault("open_timeout", 10)
    connection: ClientConnection = await websockets.connect(
        url,
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        proxy=None,
        **kwargs,
    )
    return connection


async def handshake_outcome(url: str, token: str | None = None, **kwargs: Any) -> str:
    """How a handshake ends: "status 403", "close 4401", or "open" (hello received)."""
    try:
        connection = await open_ws(url, token, **kwargs)
    except websockets.InvalidStatus as exc:
        return f"status {exc.response.status_code}"
    try:
        message = await asyncio.wait_for(connection.recv(), 5)
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        return f"close {code}"
    finally:
        await connection.close()
    frame = orjson.loads(message)
    return "open" if frame.get("type") == "hello" else f"open, first frame {frame.get('type')}"
