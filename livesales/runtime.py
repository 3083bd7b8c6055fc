"""The composition root: one object that builds and owns every resource of a process.

``livesales run`` = ClickHouse + writer + producer + consumers + API, started in that
order and stopped in reverse, so that nothing is ever used after it is closed and the
consumers have stored and committed everything they fetched before storage closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web
from aiokafka.errors import KafkaError

from api.live_hub import LiveHub
from ingest.consumer import Backoff, Consumer
from ingest.producer import Producer
from ingest.topics import ensure_topics
from livesales.metrics import Metrics
from livesales.settings import Settings
from processors.checkpool import CheckPool
from processors.store import ClickHouse
from processors.writer import Writer

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, consumers: int = 1) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = ClickHouse(settings.clickhouse_dsn, cluster=settings.clickhouse_cluster)
        self.writer = Writer(self.store, settings.dedupe_horizon_hours * 3600)
        self.live = LiveHub(self.store, settings, self.metrics)  # woken by the consumers' stores
        self.producer = Producer(settings.kafka_bootstrap)
        self.checks = CheckPool(settings.validation_processes, settings.max_value_bytes)
        self._n_consumers = consumers
        self.consumers: list[Consumer] = []
        self._runner: web.AppRunner | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self.port: int | None = None

    def is_ready(self) -> bool:
        return self.store.is_open and bool(self.consumers) and all(c.subscribed for c in self.consumers)

    async def start_storage(self) -> None:
        await self.store.open()
        await self.writer.open()

    async def start_kafka(self, create_topics: bool = True) -> None:
        backoff = Backoff(cap=5.0)
        while True:
            try:
                if create_topics:
                    await ensure_topics(
                        self.settings.kafka_bootstrap, [*self.settings.topics, self.settings.topic_dlq]
                    )
                await self.producer.start()
                break
            except (KafkaError, OSError) as exc:
                log.warning("broker unavailable (%s); retrying", exc)
                await self.producer.stop()
                await asyncio.sleep(backoff.next())
        await self.checks.start()
        for i in range(self._n_consumers):
            consumer = Consumer(
                self.settings, self.writer, self.producer, self.metrics, self.checks, name=f"consumer-{i}",
                on_stored=self.live.stored,
            )
            await consumer.start()
            self.consumers.append(consumer)
        self._lag_task = asyncio.create_task(self._watch_lag())

    def build_app(self) -> web.Application:
        from api.app import create_app

        app: web.Application = create_app(
            self.settings, self.store, self.metrics, self.producer, self.is_ready, live_hub=self.live
        )
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

    async def start(self, api: bool = True) -> None:
        await self.start_storage()
        if api:
            await self.start_api()
        await self.start_kafka()

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        for consumer in self.consumers:
            await consumer.stop()
        self.consumers.clear()
        self.checks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.producer.stop()
        await self.store.close()

    async def _watch_lag(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            for consumer in self.consumers:
                await consumer.update_lag()
