"""CPU per inbound message of the ingest transaction alone: `python -m bench.ingest`.

The webhook path's database work, run in this process exactly as the server runs it (one write
transaction: `ingest_inbound_message` and the events' `seal`; the integration's secrets are read
once, as the server's cache does) against a fresh PostgreSQL database (or SQLite with
`--sqlite`), with N agents sharing the integration. No HTTP, no websockets, no fan-out: the
figure is what one message costs the server before anything is delivered, the part of
`us_per_delivery` that does not shrink with N. `--profile FILE` writes a cProfile of the
measured loop.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.procs import PostgresDatabase
from server.config import Settings
from server.domain import integrations
from server.domain.accounts import sign_up
from server.domain.events import seal
from server.domain.ingest import ingest_inbound_message
from server.domain.services import Actor, Services
from server.providers.base import InboundMessage
from server.state.db import Database
from server.state.migrate import upgrade
from server.state.models import User


def _settings(database_url: str, data_dir: Path) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "SWITCHBOARD_DATA_DIR": str(data_dir),
            "SECRET_KEY": secrets.token_urlsafe(32),
            "PASSWORD_HASH_PROFILE": "fast",
        }
    )


def _seed(db: Database, services: Services, agents: int) -> int:
    """One account, `agents` users, one `api` integration shared with all; its id."""

    def work(s: Any) -> int:
        account, issued = sign_up(
            s,
            services,
            company_name="Bench",
            name="Admin",
            email=f"admin-{secrets.token_hex(4)}@bench.test",
            password="bench-password-1",
        )
        assert account.id is not None and issued.user.id is not None
        now = services.now()
        users = [
            User(
                account_id=account.id,
                name=f"Agent {i}",
                email=f"agent-{i}-{secrets.token_hex(3)}@bench.test",
                password_hash="x",
                role="agent",
                notification_settings={},
                created_at=now,
            )
            for i in range(agents - 1)
        ]
        s.add_all(users)
        s.flush()
        actor = Actor(issued.user.id, account.id, "admin", "Admin")
        integration = integrations.install(
            s,
            services,
            actor,
            provider="api",
            name="Bench",
            config={"webhook_secret": "bench-webhook-secret"},
            shared_with=[u.id for u in users if u.id is not None],
        )
        assert integration.id is not None
        seal(s)
        return integration.id

    return db.write(work)


def _one_message(
    db: Database, services: Services, integration_id: int, contacts: int
) -> Callable[[int], None]:
    # Read once, as the server's cache does for every webhook but the first few seconds' one.
    found = db.read(
        lambda s: integrations.secrets_for(
            s, services, integration_id=integration_id, provider="api"
        )
    )
    assert found is not None

    def ingest(i: int) -> None:
        inbound = InboundMessage(
            external_id=f"bench-{i}-{secrets.token_hex(4)}",
            contact_handle=f"contact-{i % contacts}",
            contact_name=f"Customer {i % contacts}",
            text=f"Hello, this is message {i}",
        )
        verified = found.integration

        def work(s: Any) -> Any:
            integration = s.merge(verified, load=False)
            result = ingest_inbound_message(s, services, integration=integration, inbound=inbound)
            return result, seal(s)

        db.write(work)

    return ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the measured loop")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="switchboard-bench-ingest-") as tmp:
        pg = None if args.sqlite else PostgresDatabase(args.postgres)
        try:
            url = f"sqlite:///{tmp}/bench.db" if pg is None else pg.url
            db = Database(url)
            upgrade(db.write_engine)
            services = Services.from_settings(_settings(url, Path(tmp)))
            integration_id = _seed(db, services, args.agents)
            ingest = _one_message(db, services, integration_id, args.contacts)
            for i in range(args.contacts * 2):  # warm up: contacts, conversations, caches
                ingest(-1 - i)
            profiler = cProfile.Profile() if args.profile else None
            cpu: list[float] = []
            wall0 = time.perf_counter()
            for i in range(args.messages):
                if profiler:
                    profiler.enable()
                t0 = time.thread_time()
                ingest(i)
                cpu.append(time.thread_time() - t0)
                if profiler:
                    profiler.disable()
            wall = time.perf_counter() - wall0
            if profiler:
                profiler.dump_stats(args.profile)
            db.write_engine.dispose()
            db.read_engine.dispose()
        finally:
            if pg is not None:
                pg.drop()
    ms = sorted(c * 1000 for c in cpu)
    print(
        orjson.dumps(
            {
                "database": "sqlite" if args.sqlite else "postgresql",
                "agents": args.agents,
                "messages": args.messages,
                "cpu_ms_per_message": round(statistics.fmean(ms), 3),
                "cpu_ms_p50": round(ms[len(ms) // 2], 3),
                "wall_ms_per_message": round(wall * 1000 / args.messages, 3),
                "pid": os.getpid(),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
