"""`python -m server demo` (`make demo`, or `DEMO=1 python -m server run`).

1. Creates the demo workspace unless it is there already (`seed.ensure_demo`), in the database
   the settings name: by default SQLite under `./data/`, so it is kept between runs.
2. Starts the stand-in for Twilio's and Meta's APIs on a free local port and points
   `TWILIO_API_BASE` and `MESSENGER_API_BASE` at it for this run: replies on the demo's WhatsApp
   and Messenger channels are delivered, and get their receipts, without leaving the machine.
3. Serves the app as `python -m server run` does (embedded Redis unless `REDIS_URL` is set).
4. Once the server listens, starts the simulated customers against it, logged in as the demo
   admin to see the agents' answers (`--no-simulate` leaves them out).

Ctrl-C stops the customers first, then the server, then the stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import threading
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from sqlalchemy.engine import make_url

from server.config import Settings
from server.demo.seed import DemoWorkspace, ensure_demo
from server.demo.simulate import (
    Channel,
    Simulator,
    SimulatorConfig,
    add_pace_arguments,
    pace,
)
from server.demo.standin import MessengerPage, ProviderStandIn
from server.serving import UVICORN_OPTIONS, Server

# The PUBLIC_URL default (config.py): a demo on another port takes its own address instead.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def requested(env: dict[str, str] | None = None) -> bool:
    """Whether `DEMO=1` (or true/yes/on) asks `python -m server run` for the demo."""
    value = (os.environ if env is None else env).get("DEMO", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=os.environ.get("HOST", "127.0.0.1"), help="default: $HOST or 127.0.0.1"
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8000")), help="default: 8000"
    )
    parser.add_argument(
        "--no-simulate",
        dest="simulate",
        action="store_false",
        help="no simulated customers (run `python -m server simulate --demo` on the side)",
    )
    add_pace_arguments(parser)


def main(args: argparse.Namespace, log_config: dict[str, Any]) -> None:
    """`python -m server demo`, or `run` with `DEMO=1` (whose arguments are only host and port)."""
    run_demo(
        host=args.host,
        port=args.port,
        log_config=log_config,
        simulate=getattr(args, "simulate", True),
        pace=pace(args) if hasattr(args, "rate") else None,
    )


def demo_settings(settings: Settings, *, host: str, port: int) -> Settings:
    """The settings of a demo run: PUBLIC_URL is where it listens, unless one was set."""
    if settings.public_url != DEFAULT_PUBLIC_URL:
        return settings
    public_url = f"http://{_browser_host(host)}:{port}"
    parts = urlsplit(public_url)
    origins = settings.allowed_origins | {f"{parts.scheme}://{parts.netloc}"}
    return replace(settings, public_url=public_url, allowed_origins=frozenset(origins))


def _browser_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def run_demo(
    *,
    host: str,
    port: int,
    log_config: dict[str, Any] | None = None,
    simulate: bool = True,
    pace: dict[str, Any] | None = None,
) -> None:
    settings = demo_settings(Settings.from_env(), host=host, port=port)
    print("Preparing the demo workspace…", flush=True)
    workspace = ensure_demo(settings)
    server_url = f"http://{_browser_host(host)}:{port}"
    standin = ProviderStandIn(
        server_url=server_url,
        public_url=settings.public_url,
        messenger_pages=_messenger_pages(workspace),
    )
    standin_url = standin.start()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per customer's request
    customers: SimulatorThread | None = None
    try:
        settings = replace(settings, twilio_api_base=standin_url, messenger_api_base=standin_url)
        if simulate and workspace.channels:
            customers = SimulatorThread(
                SimulatorConfig(
                    url=server_url,
                    public_url=settings.public_url,
                    channels=tuple(
                        Channel(c.provider, c.id, c.secret, c.name, page_id=c.public.get("page_id"))
                        for c in workspace.channels
                    ),
                    email=workspace.admin.email,
                    password=workspace.password,
                    **(pace or {}),
                )
            )
        print(banner(settings, workspace, standin_url, customers), flush=True)
        from server.app import create_app  # only here: parsing the command line needs no app

        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_config=log_config,
            **UVICORN_OPTIONS,
        )
        DemoServer(config, customers).run()
    except KeyboardInterrupt:
        pass  # Ctrl-C: everything below stops
    finally:
        if customers is not None:
            customers.stop()
        standin.stop()


def _messenger_pages(workspace: DemoWorkspace) -> dict[str, MessengerPage]:
    return {
        str(c.secrets["page_access_token"]): MessengerPage(
            c.id, str(c.public.get("page_id", "")), c.secret
        )
        for c in workspace.channels
        if c.provider == "messenger" and c.secrets.get("page_access_token")
    }


class DemoServer(Server):
    """The server, starting the customers once it listens and stopping them before it stops."""

    def __init__(self, config: uvicorn.Config, customers: SimulatorThread | None) -> None:
        super().__init__(config)
        self.customers = customers

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            print("The demo is ready.", flush=True)
            if self.customers is not None:
                self.customers.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.customers is not None:
            await asyncio.to_thread(self.customers.stop)
        await super().shutdown(sockets)


class SimulatorThread:
    """The simulated customers on a thread of their own (their own event loop)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.simulator = Simulator(config)
        self._thread = threading.Thread(target=self._run, name="demo-customers", daemon=True)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._loop = asyncio.get_running_loop()
        stats = await self.simulator.run()
        self.simulator.say(f"stopped: {stats.summary()}")

    def stop(self, timeout: float = 15.0) -> None:
        with self._lock:
            self._stopping = True
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.simulator.stop)
        if self._thread.is_alive():
            self._thread.join(timeout)


def banner(
    settings: Settings,
    workspace: DemoWorkspace,
    standin_url: str,
    customers: SimulatorThread | None,
) -> str:
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    state = "created just now" if workspace.created else "already there: kept from the last run"
    lines = [
        "",
        f"Switchboard demo: open {settings.public_url}",
        "",
        f'Workspace "{workspace.account_name}" ({state}), in {where}',
        f"Sign in as any of these; the password is {workspace.password}",
    ]
    for user in workspace.users:
        away = "" if user.available else ", unavailable"
        lines.append(f"  {user.email:<28} {user.name} ({user.role}{away})")
    lines += ["", "Channels (demo credentials):"]
    for channel in workspace.channels:
        key = {"api": "webhook secret", "twilio_whatsapp": "auth token"}.get(
            channel.provider, "app secret"
        )
        lines.append(
            f"  #{channel.id:<3} {channel.name:<22} {channel.provider:<16} {key}: {channel.secret}"
        )
    lines += [
        f"  Replies to WhatsApp and Messenger go to a local stand-in at {standin_url},",
        "  never to Twilio or Meta.",
        "",
    ]
    if customers is not None:
        rate = customers.simulator.config.rate
        lines.append(
            f"Simulated customers: on, at most {rate:g} messages a minute "
            "(`make demo DEMO_ARGS=--no-simulate` leaves them out)."
        )
    else:
        lines.append("Simulated customers: off (`python -m server simulate --demo` starts them).")
    lines += ["Ctrl-C stops it all.", ""]
    return "\n".join(lines)
