"""Child processes of a benchmark run: PostgreSQL database, Redis, server nodes, the ceiling.

Every child is started in its own session (a terminal's Ctrl-C reaches only the driver, which
then stops them in order) and with PR_SET_PDEATHSIG, so that none outlives a driver that dies
even by SIGKILL. CPU time and RSS are read from /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from server.state.redis_server import redis_server_argv

REPO_ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Settings a developer's environment might carry that would change what the server does.
_SCRUBBED = (
    "ALLOWED_ORIGINS",
    "SMTP_URL",
    "METRICS_TOKEN",
    "ALLOW_SIGNUP",
    "HOST",
    "PORT",
    "PYTHONTRACEMALLOC",
    "PYTHONDEVMODE",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_PREFIX",
    "SECRET_KEY",
    "PUBLIC_URL",
    "SWITCHBOARD_DATA_DIR",
)


# CPUs -----------------------------------------------------------------------------------------


class Cores:
    """Which CPUs the server side and the client side (generators, Redis, driver) run on."""

    def __init__(self) -> None:
        available = sorted(os.sched_getaffinity(0))
        self.pinned = len(available) >= 2
        self.server: set[int] = {available[0]} if self.pinned else set(available)
        self.clients: set[int] = {available[1]} if self.pinned else set(available)

    def describe(self) -> str:
        if not self.pinned:
            return "not pinned (fewer than 2 CPUs available)"
        return f"server on CPU {min(self.server)}; load generators, Redis, driver on CPU " + str(
            min(self.clients)
        )


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE (the hard limit too when allowed, e.g. as root); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        if hard != resource.RLIM_INFINITY and hard < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            soft, hard = wanted, wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        if soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def child_setup(cpus: Iterable[int] | None) -> Callable[[], None]:
    """A preexec_fn: die with the parent (Linux), and run on `cpus`."""
    wanted = set(cpus) if cpus else None

    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PDEATHSIG
        if wanted:
            os.sched_setaffinity(0, wanted)

    return setup


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # After the command: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


class Child:
    """A child process with its log in a temporary directory."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cpus: Iterable[int] | None,
        env: dict[str, str] | None = None,
        workdir: Path | None = None,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.name = name
        self.dir = workdir or Path(tempfile.mkdtemp(prefix=f"switchboard-bench-{name}-"))
        self.log_path = self.dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup(cpus),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def log(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# Redis -----------------------------------------------------------------------------------------


class RedisProcess(Child):
    def __init__(self, cpus: Iterable[int] | None) -> None:
        self.port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-redis-"))
        argv = [*redis_server_argv(workdir, port=self.port), "--maxclients", "10000"]
        super().__init__("redis", argv, cpus=cpus, workdir=workdir)
        deadline = time.monotonic() + 15
        while not self._pings():
            if not self.alive() or time.monotonic() > deadline:
                self.cleanup()
                raise RuntimeError(f"redis-server did not start:\n{self.log()}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _pings(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


# PostgreSQL ------------------------------------------------------------------------------------


class PostgresDatabase:
    """A database of our own on the local PostgreSQL server, dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.admin_url = admin_url
        self.name = f"switchboard_bench_{secrets.token_hex(4)}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    @property
    def url(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).set(database=self.name).render_as_string(False)

    def drop(self) -> None:
        import psycopg

        if not self.created:
            return
        with (
            contextlib.suppress(Exception),
            psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False


# Servers ---------------------------------------------------------------------------------------


class ServerNode(Child):
    """`python -m server run` on a free port, ready once GET /readyz is 200."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        cpus: Iterable[int] | None,
        *,
        tree: Path = REPO_ROOT,
    ) -> None:
        self.port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix=f"switchboard-bench-{name}-"))
        full_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        full_env.update(env)
        full_env["SWITCHBOARD_DATA_DIR"] = str(workdir / "data")
        full_env["PUBLIC_URL"] = f"http://127.0.0.1:{self.port}"
        full_env["PYTHONUNBUFFERED"] = "1"
        argv = [
            sys.executable,
            "-m",
            "server",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        # `python -m server` imports the package from its working directory first.
        super().__init__(name, argv, cpus=cpus, env=full_env, workdir=workdir, cwd=tree)
        try:
            wait_http(self, f"{self.url}/readyz")
        except BaseException:
            print(f"--- {name} did not become ready; its log:\n{self.log()}", file=sys.stderr)
            self.cleanup()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class CeilingNode(Child):
    """bench/ceiling.py: the bare websockets broadcaster fed by Redis pub/sub."""

    def __init__(
        self, redis_url: str, channel: str, *, deflate: bool, cpus: Iterable[int] | None
    ) -> None:
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "bench.ceiling",
            "--port",
            str(self.port),
            "--redis-url",
            redis_url,
            "--channel",
            channel,
        ]
        if not deflate:
            argv.append("--no-deflate")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        super().__init__("ceiling", argv, cpus=cpus, env=env)
        try:
            wait_http(self, f"{self.url}/healthz")
        except BaseException:
            print(f"--- the ceiling did not start; its log:\n{self.log()}", file=sys.stderr)
            self.cleanup()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


def wait_http(child: Child, url: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, trust_env=False) as client:
        while True:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready within {timeout} s")
            time.sleep(0.1)


def export_tree(rev: str) -> tuple[Path, str]:
    """`server/` as of git revision `rev`, in a temporary directory; and the commit it is."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{rev}^{{commit}}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = Path(tempfile.mkdtemp(prefix="switchboard-bench-tree-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "server"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree, commit


class Profiler:
    """py-spy sampling a process without pausing it (--nonblocking), as collapsed stacks."""

    def __init__(self, pid: int, seconds: float, out: Path, cpus: Iterable[int] | None) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.out = out
        self.process: subprocess.Popen[bytes] | None = None
        if not Path(binary).exists():
            return
        argv = [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100"]
        argv += ["-f", "raw", "-o", str(out), "--gil"]
        # BENCH_PROFILE_NATIVE=1: C frames too (e.g. the write syscall under Connection.flush).
        # py-spy then pauses the server for each sample, which costs it some CPU of its own.
        native = os.environ.get("BENCH_PROFILE_NATIVE") == "1"
        argv += ["--native"] if native else ["--nonblocking"]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_setup(cpus),
        )

    @property
    def available(self) -> bool:
        return self.process is not None

    def wait(self) -> Path | None:
        if self.process is None:
            return None
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.out if self.out.exists() else None


def summarise_profile(path: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Share of samples per function: inclusive (on the stack) and self (at its top)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    if not total:
        return {"inclusive": [], "self": []}

    def share(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100 * n / total, 1)) for name, n in ranked]

    return {"inclusive": share(inclusive), "self": share(own), "samples": [("total", total)]}


def _frame(raw: str) -> str:
    """`func (path/to/file.py:12)` -> `func (path/to/file.py)`: a function, not a line."""
    name, _, where = raw.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name
