"""The ``livesales`` command: run, serve, migrate, demo, replay, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from livesales.settings import Settings


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM, so every command shuts down the same clean way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _run(settings: Settings) -> None:
    from livesales.runtime import Runtime

    stop = _stop_event()
    runtime = Runtime(settings)
    try:
        await runtime.start()
        await stop.wait()
    finally:
        await runtime.stop()


async def _serve(settings: Settings) -> None:
    """The API alone (against a ClickHouse server DSN); no consumers in this process."""
    from livesales.runtime import Runtime

    stop = _stop_event()
    runtime = Runtime(settings, consumers=0)
    try:
        await runtime.start_storage()
        try:
            await asyncio.wait_for(runtime.producer.start(), timeout=10)
        except Exception as exc:  # the query API is useful without Kafka
            logging.getLogger(__name__).warning("Kafka unavailable (%r): POST /v1/events answers 503", exc)
        await runtime.start_api()
        await stop.wait()
    finally:
        await runtime.stop()


async def _migrate(settings: Settings) -> None:
    from processors.store import ClickHouse

    ch = ClickHouse(settings.clickhouse_dsn, cluster=settings.clickhouse_cluster)
    await ch.open()  # open() applies pending migrations
    rows = await ch.query("SELECT max(version) AS v FROM schema_migrations")
    print(f"schema at version {rows[0]['v']}")
    await ch.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livesales", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="consumers + API in one process")
    sub.add_parser("serve", help="the API alone")
    sub.add_parser("migrate", help="apply ClickHouse migrations and exit")
    demo = sub.add_parser("demo", help="local broker + embedded ClickHouse + seed scenarios + dashboard")
    demo.add_argument("--speed", type=float, default=60.0, help="scenario seconds per wall second")
    demo.add_argument("--seed", type=int, default=2020)
    demo.add_argument("--data-dir", default="data/demo")
    demo.add_argument("--port", type=int, default=None)
    replay = sub.add_parser("replay", help="produce a seed scenario to Kafka")
    replay.add_argument("--scenario", required=True)
    replay.add_argument("--speed", type=float, default=60.0)
    replay.add_argument("--seed", type=int, default=2020)
    bench = sub.add_parser("bench", help="benchmarks (docs/BENCHMARKS.md)")
    bench.add_argument("which", choices=["ingest", "api", "stages", "analytics", "live", "startup", "refresh"])
    bench.add_argument("--events", type=int, default=None, help="default: 400,000 (ingest, stages), 10,000,000 (api)")
    bench.add_argument("--freshness-seconds", type=int, default=60)
    bench.add_argument("--rate", type=int, default=5_000)
    bench.add_argument("--days", type=float, default=365.0, help="startup: days of history the events span")
    bench.add_argument("--all-history", action="store_true", help="startup: also load every hash (the old way)")
    bench.add_argument("--keep-projections", action="store_true", help="startup: generate with projections")
    bench.add_argument("--idle-seconds", type=int, default=30, help="bench live: CPU with viewers and no orders")
    bench.add_argument("--phase-seconds", type=int, default=60, help="bench live: seconds per order rate")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    if args.command in ("run", "demo", "bench"):
        from processors.gctune import tune_gc

        tune_gc()
    if args.command == "run":
        asyncio.run(_run(settings))
    elif args.command == "serve":
        asyncio.run(_serve(settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "demo":
        from demo.run import run_demo

        asyncio.run(run_demo(args.speed, args.seed, args.data_dir, args.port))
    elif args.command == "replay":
        from scenarios.replay_cli import replay_to_kafka

        asyncio.run(replay_to_kafka(settings, args.scenario, args.speed, args.seed))
    elif args.command == "bench":
        from benchmarks.ingest import run_bench

        asyncio.run(run_bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
