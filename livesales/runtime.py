"""The composition root: one object that builds and owns every resource of a process.

``livesales run`` = ClickHouse + writer + producer + consumers + API, started in that
order and stopped in reverse, so that nothing is ever used after it is closed and the
consumers have stored and committed everything they fetched before storage closes.
``livesales consume`` is the same without the API (its health endpoints get a port of
their own), ``livesales serve`` the API without consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import tracemalloc
from datetime import datetime
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError

from api.context import CONNECTOR_STATUS
from api.live.hub import LiveHub
from api.queries.alerts import alerts_of
from connectors.config import load_connectors
from connectors.service import ConnectorService
from ground.config_errors import ConfigError
from ground.heap import Heap
from ground.metrics import Metrics
from ground.nice import MERGE_THREADS, renice_threads
from ground.settings import Settings
from ground.stopping import Stopped, sleep_unless_stopped, unless_stopped
from ingest.backoff import Backoff
from ingest.consumer import Consumer
from ingest.kafka_security import kafka_security
from ingest.producer import Producer
from ingest.topics import ensure_topics
from livesales import wiring
from livesales.health import Health
from notify import routes as notify_routes
from notify.config import load_robots
from notify.metrics import NotifyMetrics
from notify.sender import NOTIFY_TOPIC
from notify.service import Notifications
from processors.checkpool import CheckPool
from processors.retention import apply_retention
from processors.validate import MAX_VALUE_BYTES
from processors.writer import Writer

log = logging.getLogger(__name__)
# How often chDB's memory figures (livesales_clickhouse_memory_bytes) are read: two small
# system-table queries. Every 5 s was tried: make bench's freshness came out worse in
# those runs (not isolated from the other changes tried with it), so 15 s as before.
MEMORY_SAMPLE_S = 15.0
RENICE_S = 1.0  # how soon a new merge thread of chDB's gets Tuning.chdb_merge_nice (a pass: under 1 ms)


class Runtime:
    def __init__(
        self, settings: Settings, consumers: int = 1, stop: asyncio.Event | None = None, role: str | None = None
    ) -> None:
        self.settings = settings
        # Set by SIGTERM/SIGINT: every start-up retry below gives up at once (Stopped).
        self.stopping = stop or asyncio.Event()
        self.metrics = Metrics()
        self.store = wiring.clickhouse(settings)
        tuning = settings.tuning
        self.writer = Writer(
            self.store,
            tuning.dedupe_horizon_hours * 3600,
            tuning.dedupe_memory_mb,
            sole_writer=settings.clickhouse_dsn.startswith("chdb://"),  # one process per chDB path
        )
        self.api_config = wiring.api_config(settings)
        self.consumer_config = wiring.consumer_config(settings)
        self.live = LiveHub(self.store, self.api_config.live, self.metrics)  # woken by the consumers' stores
        kafka = self.consumer_config.kafka
        self.producer = Producer(kafka.bootstrap, security=kafka_security(kafka))
        self.checks = CheckPool(settings.validation_processes, MAX_VALUE_BYTES, tuning.heap_trim_s)
        self._n_consumers = consumers
        self.consumers: list[Consumer] = []
        self._runner: web.AppRunner | None = None
        self._health_runner: web.AppRunner | None = None
        self.health_port: int | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._checks_task: asyncio.Task[None] | None = None
        self._memory_task: asyncio.Task[None] | None = None
        self.notifications = self._notifications(settings) if consumers else None
        self.connectors = self._connectors(settings)
        self.heap = Heap()
        self.metrics.watch_heap(self.heap.usage)
        self._trim_task: asyncio.Task[None] | None = None
        self._nice_task: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.health = Health(
            role or ("run" if consumers else "serve"), wiring.ready_policy(settings), self.store, self.producer,
            self.consumers, self.metrics,
        )

    def _notifications(self, settings: Settings) -> Notifications | None:
        """The robots' detector and sender (contract §8), in processes with consumers."""
        if settings.notify_file is None:
            return None
        robots = load_robots(settings.notify_file)
        if not robots:
            return None
        thresholds = wiring.thresholds(settings)
        store = self.store

        async def alerts(channel_id: str, now: datetime) -> list[dict[str, Any]]:
            return await alerts_of(store, channel_id, thresholds, None, now)

        return Notifications(
            wiring.notify_config(settings), robots, store, self.producer, alerts, NotifyMetrics(self.metrics.registry)
        )

    def _connectors(self, settings: Settings) -> ConnectorService | None:
        """The platform connectors (contract §7): push routes where the API runs, the push
        worker and reconciliation where consumers run."""
        if settings.connectors_file is None:
            return None
        config = load_connectors(settings.connectors_file)
        if not config.connectors:
            return None
        return ConnectorService(wiring.connector_config(settings), config, self.producer, self.store,
                                self.metrics.registry)  # fmt: skip

    def is_ready(self) -> bool:
        if not self._n_consumers:  # `serve`: the API needs storage only
            return self.store.is_open
        return self.store.is_open and bool(self.consumers) and all(c.subscribed for c in self.consumers)

    async def start_storage(self) -> None:
        """Open ClickHouse, retrying while it is away; a stop ends the retries."""
        backoff = Backoff(cap=5.0)
        tuning = self.settings.tuning
        self.heap.limit_arenas(tuning.malloc_arenas)  # before the threads that allocate start
        self.heap.fix_mmap_threshold(tuning.malloc_mmap_threshold_kb)
        if self.settings.clickhouse_dsn.startswith("chdb:"):
            self.heap.configure_chdb_allocator(tuning.chdb_dirty_decay_ms)
        while True:
            try:
                await unless_stopped(self.store.open(), self.stopping)
                break
            except Stopped:
                raise
            except ValueError as exc:  # a DSN no retry can fix
                raise ConfigError("LIVESALES_CLICKHOUSE_DSN", str(exc)) from None
            except Exception as exc:
                log.warning("ClickHouse unavailable (%s); retrying", (str(exc) or repr(exc)).splitlines()[0][:200])
                await self.store.close()
                await sleep_unless_stopped(backoff.next(), self.stopping)
        days, cluster = self.settings.retention_days, self.settings.clickhouse_cluster
        await self.store.run_in_thread(lambda: apply_retention(self.store.client, days, cluster))
        if self._memory_task is None and self.settings.clickhouse_dsn.startswith("chdb:"):
            self._memory_task = asyncio.create_task(self._watch_memory())
        if self._trim_task is None and self.settings.tuning.heap_trim_s > 0 and self.heap.available:
            self._trim_task = asyncio.create_task(self._trim_heap())
        if self._nice_task is None and self.settings.clickhouse_dsn.startswith("chdb:") and tuning.chdb_merge_nice:
            self._nice_task = asyncio.create_task(self._renice_merges(tuning.chdb_merge_nice))
        if self._n_consumers:  # `serve` writes nothing: no dedupe state to load
            await self.writer.open()

    async def start_kafka(self, create_topics: bool = True, storage_ready: asyncio.Event | None = None) -> None:
        """Producer, validation pool and consumers. With ``storage_ready`` (start()), this
        runs while storage opens: consumers join their group meanwhile and begin
        fetching once storage is open (docs/RELIABILITY.md: back after a crash)."""
        backoff = Backoff(cap=5.0)
        while True:
            try:
                if create_topics:
                    await unless_stopped(
                        ensure_topics(
                            self.consumer_config.kafka.bootstrap,
                            [*self.consumer_config.topics.inputs, self.consumer_config.topics.dlq, *self._own_topics()],
                            security=kafka_security(self.consumer_config.kafka),
                            routed_from=self.consumer_config.topics.inputs,  # ingest.routing
                        ),
                        self.stopping,
                    )
                await unless_stopped(self.producer.start(), self.stopping)
                break
            except (KafkaError, OSError) as exc:
                log.warning("broker unavailable (%s); retrying", exc)
                await self.producer.stop()
                await sleep_unless_stopped(backoff.next(), self.stopping)
        # The validation process starts beside the group join; until it is up, batches
        # are validated in a thread (processors.checkpool).
        self._checks_task = asyncio.create_task(self.checks.start())
        for i in range(self._n_consumers):
            consumer = Consumer(
                self.consumer_config, self.writer, self.producer, self.metrics, self.checks, name=f"consumer-{i}",
                on_stored=self.live.stored,
            )
            await unless_stopped(consumer.start(storage_ready), self.stopping)
            self.consumers.append(consumer)
        self._lag_task = asyncio.create_task(self._watch_lag())

    def _own_topics(self) -> list[str]:
        """Topics of the components beside the consumers (robots' deliveries)."""
        return [NOTIFY_TOPIC] if self.notifications is not None else []

    def build_app(self) -> web.Application:
        from api.app import create_app

        app: web.Application = create_app(
            self.api_config, self.store, self.metrics, self.producer, self.is_ready, live_hub=self.live,
            readiness=self.health,
        )
        app.add_routes(notify_routes.routes)  # GET /v1/notifications: empty without robots
        if self.connectors is not None:
            app.add_routes(self.connectors.routes())  # POST /connect/{platform}: the platforms' own signatures
            app[CONNECTOR_STATUS] = self.connectors.status
        return app

    async def start_api(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.api_host, self.settings.api_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.api_port
        log.info("API listening on http://%s:%s", self.settings.api_host, self.port)

    def is_alive(self) -> bool:
        return all(c.alive for c in self.consumers)

    async def start_health(self) -> None:
        """/healthz, /readyz and /metrics alone, for a process without the API (`consume`).

        /healthz here also fails when a consumer's loop died, so a liveness probe restarts
        the process rather than leave its partitions assigned and idle."""
        from api.context import HEALTH, METRICS, READY
        from api.responses import json_response
        from api.routes import health

        async def healthz(request: web.Request) -> web.Response:
            if self.is_alive():
                return json_response({"status": "ok"})
            return json_response(
                {"error": {"code": "unavailable", "message": "a consumer loop ended; restart the process"}}, status=503
            )

        app = web.Application()
        app[METRICS] = self.metrics
        app[READY] = self.is_ready
        app[HEALTH] = self.health
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", health.readyz)
        app.router.add_get("/metrics", health.metrics)
        self._health_runner = web.AppRunner(app, access_log=None)
        await self._health_runner.setup()
        site = web.TCPSite(self._health_runner, self.settings.api_host, self.settings.health_port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.health_port = sockets[0].getsockname()[1] if sockets else self.settings.health_port
        log.info("health endpoints on http://%s:%s", self.settings.api_host, self.health_port)

    async def start(self, api: bool = True) -> None:
        """Storage and Kafka start side by side (a restart joins its group while storage
        opens); the API listens as soon as storage is open, so /readyz can tell why the
        rest is not."""
        storage_ready = asyncio.Event()
        storage = asyncio.ensure_future(self.start_storage())
        kafka = asyncio.ensure_future(self.start_kafka(storage_ready=storage_ready))
        try:
            await storage
            storage_ready.set()
            if api:
                await self.start_api()
            await kafka
            if self.notifications is not None:
                await unless_stopped(self.notifications.start(), self.stopping)
            if self.connectors is not None:
                await unless_stopped(self.connectors.start(work=bool(self._n_consumers)), self.stopping)
        except BaseException:
            for task in (kafka, storage):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise

    async def stop(self) -> None:
        for part in (self.connectors, self.notifications):  # before the producer and storage they use
            if part is not None:
                await part.stop()
        for task in (self._memory_task, self._trim_task, self._nice_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._memory_task = self._trim_task = self._nice_task = None
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        for consumer in self.consumers:
            await consumer.stop()
        self.consumers.clear()
        if self._checks_task is not None:
            with contextlib.suppress(BaseException):
                await self._checks_task
        self.checks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._health_runner is not None:
            await self._health_runner.cleanup()
            self._health_runner = None
        try:  # a frozen broker never acknowledges the last sends: what they carried is re-read
            await asyncio.wait_for(self.producer.stop(), timeout=1.0)
        except (TimeoutError, Exception) as exc:
            log.warning("producer stopped without the broker's last acknowledgements (%r)", exc)
        await self.store.close()

    async def _watch_lag(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            for consumer in self.consumers:
                await consumer.update_lag()

    async def _trim_heap(self) -> None:
        """Every ``Tuning.heap_trim_s``, hand the C heap's free pages back to the OS
        (ground/heap.py): what glibc keeps after a merge or a big batch would otherwise
        show as RSS that creeps (docs/BENCHMARKS.md "Memory soak")."""
        while True:
            await asyncio.sleep(self.settings.tuning.heap_trim_s)
            began = time.monotonic()
            await asyncio.to_thread(self.heap.trim)
            self.metrics.heap_trim_seconds.observe(time.monotonic() - began)

    async def _renice_merges(self, nice: int) -> None:
        """chDB's merge threads at ``Tuning.chdb_merge_nice`` where ClickHouse cannot put
        them (no CAP_SYS_NICE: ground.nice), so they take the CPU ingest leaves."""
        while True:
            renice_threads(MERGE_THREADS, nice)
            await asyncio.sleep(RENICE_S)

    async def _watch_memory(self) -> None:
        """livesales_clickhouse_memory_bytes{kind}: chDB's caches live in this process's
        RSS, so an operator can tell them from Python's share (docs/BENCHMARKS.md).

        Run with PYTHONTRACEMALLOC=1 (Python's own switch), it also logs every minute the
        Python allocations that grew most since the first minute: what a soak needs to
        find a Python-side leak (slow: tracing costs every allocation)."""
        first: tracemalloc.Snapshot | None = None
        tick = 0
        while True:
            try:
                for kind, value in (await self.store.memory_bytes()).items():
                    self.metrics.clickhouse_memory.labels(kind).set(value)
            except Exception as exc:  # a sample missed is no reason to stop sampling
                log.debug("chDB memory figures unavailable: %s", exc)
            if tracemalloc.is_tracing() and tick % round(60 / MEMORY_SAMPLE_S) == 0:
                snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                if first is None:
                    first = snap
                else:
                    top = snap.compare_to(first, "lineno")[:12]
                    traced, _peak = tracemalloc.get_traced_memory()
                    grew = "; ".join(f"{st.traceback[0].filename}:{st.traceback[0].lineno}"
                                     f" {st.size_diff / 2**20:+.2f} MiB ({st.count_diff:+d})"
                                     for st in top)  # fmt: skip
                    log.info("tracemalloc: %.1f MiB traced; grew most since the first minute: %s",
                             traced / 2**20, grew)  # fmt: skip
            tick += 1
            await asyncio.sleep(MEMORY_SAMPLE_S)
