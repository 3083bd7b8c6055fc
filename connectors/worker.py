"""The push worker: raw pushes (``connectors.RAW_TOPIC``) → ``order.v1`` events.

For each push it asks the platform for the order (pushes are thin: an id and a status),
maps it (``connectors.events``) and publishes the events keyed by ``order_id``; only once
the broker acknowledged them does it note the steps (``connector_watermarks`` rows of kind ``pushed``)
and commit the push's offset. So a kill -9 anywhere repeats a push at most, whose events
then carry the same ``event_id``s and are dropped by contract §3.

**When the platform's API is down** the partition stops at the first push it could not
fetch: the offsets before it are committed, the consumer seeks back to it and pauses the
partition for a back-off (exponential, capped), then reads it again from Kafka. Memory
holds at most one fetch (``max_records``) whatever the outage's length: the work waits on
Kafka, not here. Other partitions go on. A push the platform refuses outright (an order it
does not know) is recorded as the shop's last error and skipped: reconciliation is the
guarantee.

**Shop ownership.** The raw topic is keyed ``{platform}:{shop_id}``, so each shop's pushes
live on one partition; the member of this consumer group that holds that partition owns
the shop, and reconciliation (``connectors.reconcile``) runs only for shops :meth:`owns`
says yes to. A kill -9 makes the group rebalance and another member takes the shop over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.partitioner import murmur2

from connectors import RAW_TOPIC
from connectors.apis import Apis
from connectors.config import ConnectorsConfig
from connectors.events import RoomDirectory, Step, order_steps
from connectors.metrics import ConnectorMetrics
from connectors.model import Notice, shop_key
from connectors.platform import PlatformRefused, PlatformUnavailable, unexpected
from connectors.state import ConnectorState, StepRow
from connectors.status import StatusBook
from ground.stopping import cancel_and_wait
from ingest.backoff import Backoff
from ingest.kafka_security import KafkaAccess, kafka_security
from ingest.producer import ProduceError, Producer
from processors.store import StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    kafka: KafkaAccess
    group_id: str  # a group of its own, e.g. "<LIVESALES_CONSUMER_GROUP>.connectors"
    orders_topic: str
    raw_topic: str = RAW_TOPIC
    max_records: int = 200
    fetch_concurrency: int = 16  # order look-ups in flight (the platforms rate-limit per app)
    retry_first_s: float = 0.5
    retry_cap_s: float = 30.0
    session_timeout_ms: int = 10_000


def partition_of(platform: str, shop_id: str, partitions: int) -> int:
    """The partition the producer's default partitioner gives a shop's key (murmur2)."""
    return int(murmur2(shop_key(platform, shop_id)) & 0x7FFFFFFF) % partitions


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: PushWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.worker.assigned = set()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.worker.assigned = {tp.partition for tp in assigned}
        log.info("%s owns raw-push partitions %s", self.worker.name, sorted(self.worker.assigned))


class PushWorker:
    def __init__(
        self, config: WorkerConfig, connectors: ConnectorsConfig, producer: Producer, state: ConnectorState,
        apis: Apis, rooms: RoomDirectory, book: StatusBook, metrics: ConnectorMetrics, name: str = "connectors",
    ) -> None:  # fmt: skip
        self.config, self.connectors, self.producer, self.state = config, connectors, producer, state
        self.apis, self.rooms, self.book, self.metrics, self.name = apis, rooms, book, metrics, name
        self.assigned: set[int] = set()
        self.partitions = 0
        self._kafka: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused: dict[TopicPartition, float] = {}  # resume at (loop time)
        self._backoff: dict[TopicPartition, Backoff] = {}

    def owns(self, platform: str, shop_id: str) -> bool:
        """Whether this member holds the partition of the shop's pushes (and so reconciles it)."""
        return bool(self.partitions) and partition_of(platform, shop_id, self.partitions) in self.assigned

    async def start(self) -> None:
        c = self.config
        kafka = AIOKafkaConsumer(
            bootstrap_servers=c.kafka.bootstrap, group_id=c.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=max(100, c.session_timeout_ms // 5), max_poll_records=c.max_records,
            **kafka_security(c.kafka),
        )  # fmt: skip
        await kafka.start()
        kafka.subscribe([c.raw_topic], listener=_Listener(self))
        self._kafka = kafka
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-worker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        kafka, self._kafka = self._kafka, None
        self.assigned = set()
        if kafka is not None:
            await kafka.stop()

    async def _run(self) -> None:
        kafka = self._kafka
        assert kafka is not None  # noqa: S101 - set by start()
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.partitions = len(kafka.partitions_for_topic(self.config.raw_topic) or ())
                for tp, at in list(self._paused.items()):
                    if loop.time() >= at and tp in kafka.assignment():
                        kafka.resume(tp)
                    if loop.time() >= at:
                        del self._paused[tp]
                fetched = await kafka.getmany(timeout_ms=500, max_records=self.config.max_records)
            except (KafkaError, IllegalStateError) as exc:
                log.warning("%s: Kafka error (retried): %r", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            if not fetched:
                continue
            try:
                await self._work(kafka, fetched)
            except Exception as exc:  # a bug must not skip pushes: read them again (bounded by the back-off)
                log.error("%s: handling a batch of pushes failed (%s); it is read again", self.name, unexpected(exc))
                for tp, records in fetched.items():
                    with contextlib.suppress(KafkaError, IllegalStateError):
                        self._retry(kafka, tp, records[0].offset)

    async def _work(self, kafka: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]) -> None:
        steps: list[tuple[str, str, Step]] = []  # (platform, shop_id, step)
        done: dict[TopicPartition, int] = {}  # next offset to commit
        stuck: dict[TopicPartition, int] = {}  # the first offset that must be retried
        # One fetch per order however often the batch repeats it, the orders side by side.
        notices = {id(r): self._notice(r.value) for records in fetched.values() for r in records}
        wanted = {(n.platform, n.order_id): n for n in notices.values() if n is not None}
        results: dict[tuple[str, str], list[Step] | None] = {}
        gate = asyncio.Semaphore(self.config.fetch_concurrency)

        async def fetch(key: tuple[str, str], notice: Notice) -> None:
            async with gate:
                results[key] = await self._fetch(notice)

        await asyncio.gather(*(fetch(k, n) for k, n in wanted.items()))
        for tp, records in fetched.items():
            for record in records:
                notice = notices[id(record)]
                if notice is not None:
                    key = (notice.platform, notice.order_id)
                    if key in results and results[key] is None:  # platform unavailable: wait from here
                        stuck[tp] = record.offset
                        break
                    found = results.pop(key, [])  # later repeats in this batch add nothing
                    steps += [(notice.platform, notice.shop_id, s) for s in found or ()]
                done[tp] = record.offset + 1
        if steps:
            try:
                events = [(s.order_id.encode(), s.value) for _, _, s in steps]
                await self.producer.send_keyed(self.config.orders_topic, events)
            except ProduceError as exc:
                log.warning("%s: events not acknowledged, the pushes are read again: %s", self.name, exc)
                for tp, records in fetched.items():
                    self._retry(kafka, tp, records[0].offset)
                return
            for platform, _, _ in steps:
                self.metrics.events.labels(platform, "push").inc()
            await self._record([StepRow(p, shop, s.event_id, "push") for p, shop, s in steps])
        for tp, offset in stuck.items():
            self._retry(kafka, tp, offset)
        for tp in done:
            if tp not in stuck:
                self._backoff.pop(tp, None)
        commit = {tp: offset for tp, offset in done.items() if tp in kafka.assignment()}
        commit.update({tp: offset for tp, offset in stuck.items() if tp in kafka.assignment() and tp not in done})
        if commit:
            try:
                await kafka.commit(commit)
            except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                # the partitions moved: their next owner re-reads these pushes (same event ids)
                log.info("%s: commit after a rebalance failed (%r); the pushes will be repeated", self.name, exc)

    def _retry(self, kafka: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        """Seek back to ``offset`` and pause the partition for its next back-off."""
        if tp not in kafka.assignment():
            return
        backoff = self._backoff.setdefault(tp, Backoff(self.config.retry_first_s, self.config.retry_cap_s))
        kafka.seek(tp, offset)
        kafka.pause(tp)
        self._paused[tp] = asyncio.get_running_loop().time() + backoff.next()

    def _notice(self, value: bytes | None) -> Notice | None:
        """The raw push, or None for a record to skip (not a push, or a shop not configured)."""
        try:
            notice = Notice.decode(value or b"")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: not a raw push record, skipped: %s", self.name, exc)
            return None
        return notice if self.connectors.find(notice.platform, notice.shop_id) else None

    async def _fetch(self, notice: Notice) -> list[Step] | None:
        """The order's steps now ([] when there are none to send), None when unavailable."""
        found = self.connectors.find(notice.platform, notice.shop_id)
        if found is None:
            return []
        app, shop = found
        try:
            order = await self.apis.get(app).order(shop, notice)
            self.metrics.api_calls.labels(app.platform, "ok").inc()
        except PlatformUnavailable as exc:
            self.metrics.api_calls.labels(app.platform, "unavailable").inc()
            self.metrics.retries.labels(app.platform).inc()
            self.book.error(app.platform, shop.shop_id, f"push worker: {exc}")
            return None
        except PlatformRefused as exc:
            self.metrics.api_calls.labels(app.platform, "refused").inc()
            self.book.error(app.platform, shop.shop_id, f"push worker: order {notice.order_id}: {exc}")
            return []
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:  # an answer we cannot read
            self.book.error(app.platform, shop.shop_id, f"push worker: order {notice.order_id}: unreadable: {exc}")
            log.warning("%s: order %s of %s/%s unreadable (reconciliation retries it): %r", self.name,
                        notice.order_id, app.platform, shop.shop_id, exc)  # fmt: skip
            return []
        if order is None:
            return []
        steps, problems = await order_steps(order, app, shop, self.rooms)
        for problem in problems:
            self.book.error(app.platform, shop.shop_id, f"push worker: refused event {problem}")
        return steps

    async def _record(self, rows: list[StepRow]) -> None:
        """Note the published steps; a failure only risks counting one as recovered later."""
        backoff = Backoff(0.2, 2.0)
        for attempt in range(5):
            try:
                await self.state.record_steps(rows)
                return
            except StorageError as exc:
                if attempt == 4:
                    log.warning("%s: published steps not noted (%s): some may count as recovered", self.name, exc)
                    return
                await asyncio.sleep(backoff.next())
