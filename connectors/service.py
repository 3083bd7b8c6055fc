"""The connectors as one piece a process starts and stops (``livesales/runtime.py`` wires it).

Which parts run depends on the role: ``serve`` receives pushes (the routes) and flushes its
push counters; ``consume`` runs the push worker and reconciliation; ``run`` does both. Any
number of each may run: the receivers share nothing but Kafka, and the workers share the
raw topic's consumer group, whose assignment decides which of them reconciles which shop.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from connectors import RAW_TOPIC
from connectors.apis import Apis
from connectors.config import ConnectorsConfig
from connectors.events import RegistryRooms, RoomDirectory
from connectors.metrics import ConnectorMetrics
from connectors.receiver import ReceiverConfig, push_routes
from connectors.reconcile import ReconcileConfig, Reconciler
from connectors.state import ConnectorState
from connectors.status import StatusBook, StatusConfig, StatusFlusher, connectors_status
from connectors.worker import PushWorker, WorkerConfig
from ingest.kafka_security import KafkaAccess, kafka_security
from ingest.producer import Producer
from ingest.topics import ensure_topics
from processors.store import ClickHouse

log = logging.getLogger(__name__)


def process_id() -> str:
    """Unique per process start: the key of this process's counter rows and watermarks."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ServiceConfig:
    receiver: ReceiverConfig
    worker: WorkerConfig
    reconcile: ReconcileConfig
    status: StatusConfig = field(default_factory=StatusConfig)
    api_timeout_s: float = 10.0
    raw_partitions: int = 4  # when the raw topic is created here


def service_config(
    kafka: KafkaAccess, group_id: str, orders_topic: str, *, raw_topic: str = RAW_TOPIC,
    reconcile_interval_s: float = 300.0, owner: str | None = None, session_timeout_ms: int = 10_000,
    reconcile_lag_s: float = 180.0, reconcile_overlap_s: float = 600.0, reconcile_retry_s: float = 30.0,
    push_rate_per_s: float = 500.0,
) -> ServiceConfig:
    """The usual configuration from the few settings that vary (``group_id``: a consumer
    group of the connectors' own, e.g. ``<LIVESALES_CONSUMER_GROUP>.connectors``;
    ``session_timeout_ms``: the counters' own, so a dead worker's shops move as fast)."""
    return ServiceConfig(
        receiver=ReceiverConfig(raw_topic=raw_topic, rate_per_s=push_rate_per_s, burst=2 * push_rate_per_s),
        worker=WorkerConfig(kafka, group_id, orders_topic, raw_topic, session_timeout_ms=session_timeout_ms),
        reconcile=ReconcileConfig(
            orders_topic, owner or process_id(), interval_s=reconcile_interval_s,
            lag_s=reconcile_lag_s, overlap_s=reconcile_overlap_s, retry_s=reconcile_retry_s,
        ),
    )


@dataclass
class ConnectorService:
    """Build with the process's producer, store and metrics registry; mount :meth:`routes`
    on the API app (outside any bearer-token middleware), answer ``GET /v1/connectors`` with
    :meth:`status`, and ``start``/``stop`` with the process."""

    config: ServiceConfig
    connectors: ConnectorsConfig
    producer: Producer
    store: ClickHouse
    registry: CollectorRegistry | None = None
    rooms: RoomDirectory | None = None
    metrics: ConnectorMetrics = field(init=False)
    book: StatusBook = field(init=False)
    state: ConnectorState = field(init=False)
    _parts: list[Any] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.metrics = ConnectorMetrics(self.registry)
        self.book = StatusBook(self.config.reconcile.owner)
        self.state = ConnectorState(self.store)
        if self.rooms is None:
            self.rooms = RegistryRooms(self.store)

    def routes(self) -> web.RouteTableDef:
        return push_routes(self.config.receiver, self.connectors, self.producer, self.book, self.metrics)

    async def status(self) -> dict[str, Any]:
        """The body of ``GET /v1/connectors`` (scope ``all`` only: the caller checks)."""
        return await connectors_status(self.state, self.connectors)

    async def start(self, work: bool = True, create_topic: bool = True) -> None:
        """``work``: run the push worker and reconciliation (``consume``/``run``); without it
        only the counters' flusher runs (``serve``: its routes receive the pushes)."""
        if not self.connectors.connectors:
            return
        w = self.config.worker
        if create_topic:  # serve too: its receiver publishes there before any consume has run
            try:
                await ensure_topics(w.kafka.bootstrap, [w.raw_topic], partitions=self.config.raw_partitions,
                                    security=kafka_security(w.kafka))  # fmt: skip
            except Exception as exc:
                if work:
                    raise
                # serve answers pushes 503 until Kafka is back; its counters still flush
                log.warning("connectors: the raw pushes' topic not created (%r)", exc)
        flusher = StatusFlusher(self.book, self.state, self.config.status)
        await flusher.start()
        self._parts.append(flusher)
        if not work:
            return
        apis = Apis(self.connectors, self.config.api_timeout_s)
        await apis.start()
        self._parts.append(apis)
        assert self.rooms is not None  # noqa: S101 - set in __post_init__
        worker = PushWorker(w, self.connectors, self.producer, self.state, apis, self.rooms, self.book, self.metrics)
        await worker.start()
        self._parts.append(worker)
        reconciler = Reconciler(self.config.reconcile, self.connectors, self.producer, self.state, apis, self.rooms,
                                self.book, self.metrics, worker.owns)  # fmt: skip
        await reconciler.start()
        self._parts.append(reconciler)
        log.info("connectors: push worker and reconciliation for %d shops", len(self.connectors.shops()))

    async def stop(self) -> None:
        """In reverse: reconciliation, the worker (leaves the group), the HTTP session, and
        last the counters' final flush."""
        parts, self._parts = self._parts, []
        for part in reversed(parts):
            stop = getattr(part, "stop", None) or part.close
            await stop()
