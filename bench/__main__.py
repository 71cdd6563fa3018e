"""`python -m bench [--quick]`: see docs/PERFORMANCE.md.

The last line printed is one JSON object with the run's key figures (for the quick run: N=1000
agents, 20 messages/s, one node).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import replace
from typing import Any, NoReturn

import orjson

from bench.driver import FULL, QUICK, execute


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the < 3 minute run")
    parser.add_argument("--nodes", type=_ints, help="cluster sizes, e.g. 1,2")
    parser.add_argument("--n", type=_ints, help="connected agents, e.g. 100,1000,5000")
    parser.add_argument("--rate", type=_ints, help="messages per second, e.g. 5,20,50")
    parser.add_argument("--duration", type=float, help="seconds of traffic per cell")
    parser.add_argument("--idle", type=int, help="idle connections to hold (ramp target)")
    parser.add_argument("--generators", type=int, help="load generator processes")
    parser.add_argument("--no-deflate", action="store_true", help="clients offer no compression")
    parser.add_argument(
        "--compression",
        action="store_true",
        help="servers and the ceiling accept permessage-deflate (WS_COMPRESSION=1)",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceiling server")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--postgres", help="admin URL of the PostgreSQL server")
    parser.add_argument("--name", help="results name (bench/results/<name>.json)")
    parser.add_argument("--server-rev", help="benchmark server/ of this git revision (e.g. HEAD)")
    parser.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    args = parser.parse_args(argv)

    config = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    for option, name in (
        ("nodes", "nodes"),
        ("n", "ns"),
        ("rate", "rates"),
        ("duration", "duration"),
        ("idle", "idle"),
        ("generators", "generators"),
        ("postgres", "postgres"),
        ("name", "name"),
        ("server_rev", "server_rev"),
    ):
        if getattr(args, option) is not None:
            changes[name] = getattr(args, option)
    if args.no_deflate:
        changes["deflate"] = False
    if args.compression:
        changes["compression"] = True
    if args.no_ceiling:
        changes["ceiling"] = False
    if args.sqlite:
        changes["sqlite"] = True
    if args.no_profile:
        changes["profile"] = False
    config = replace(config, **changes)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        results = asyncio.run(execute(config))
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print(orjson.dumps(results["headline"]).decode(), flush=True)


if __name__ == "__main__":
    main()
