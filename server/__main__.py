"""`python -m server migrate | run | demo | simulate`."""

from __future__ import annotations

import argparse
import os

from server import logs
from server.config import Settings
from server.demo import run as demo
from server.demo import simulate
from server.serving import UVICORN_OPTIONS, Server
from server.state.db import Database
from server.state.migrate import make_revision, upgrade


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m server")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database schema up to date")
    revision = commands.add_parser("revision", help="(developers) autogenerate a migration")
    revision.add_argument("message")
    run = commands.add_parser("run", help="serve the app with uvicorn")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    demo.add_arguments(commands.add_parser("demo", help="serve a demo workspace (make demo)"))
    simulate.add_arguments(
        commands.add_parser("simulate", help="simulated customers for a running server")
    )
    args = parser.parse_args(argv)
    # The demo's and the simulator's own output is for people: keep the logs to what matters.
    for_people = args.command in ("demo", "simulate")
    log_config = logs.configure(
        os.environ.get("LOG_FORMAT", "text" if for_people else "json"),
        os.environ.get("LOG_LEVEL", "WARNING" if for_people else "INFO"),
    )

    if args.command == "migrate":
        settings = Settings.from_env()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        upgrade(db.write_engine)
        db.dispose()
        print("schema is up to date")
    elif args.command == "revision":
        settings = Settings.from_env()
        make_revision(Database(settings.database_url).write_engine, args.message)
    elif args.command == "demo" or (args.command == "run" and demo.requested()):
        demo.main(args, log_config)  # DEMO=1: `run` serves the demo (with its defaults)
    elif args.command == "simulate":
        raise SystemExit(simulate.main(args))
    elif args.command == "run":
        import uvicorn

        config = uvicorn.Config(
            "server.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            log_config=log_config,
            **UVICORN_OPTIONS,
        )
        Server(config).run()


if __name__ == "__main__":
    main()
