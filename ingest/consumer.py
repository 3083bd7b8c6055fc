"""The Kafka consumer: fetch a batch, validate it, store it, dead-letter it, commit it.

Three stages run at once, joined by a queue of prepared batches that holds at most about
two full fetches' worth (ingest.batch_queue):

* the *fetch loop* calls ``getmany`` (aiokafka, this interpreter) for batch N+1, while
* batch N is validated (processors.checkpool: a child process), while
* the *write stage* (ingest.write_stage) stores batch N-1 (ClickHouse, in a worker
  thread), waits for its dead letters to be acknowledged, and only then commits its
  offsets; the dead letters left for the DLQ when their batch was validated
  (ingest.dead_letters).

So an offset is never committed before what it carries is stored, and memory is bounded:
a validated batch waits for room in the queue, the fetch loop waits for the batch in
validation, and aiokafka holds at most one fetched response per partition meanwhile.
When that wait outlasts a second (storage slow or down) the fetch loop pauses every
partition and keeps polling only to stay in the group. On a rebalance the revoked
partitions' batches are written and committed first.

Several processes share the group and the store (docs/DESIGN.md, "Exactly-once
counting"): when partitions are assigned, the writer learns what the others stored
before the first record is processed, and every insert is fenced by this member's
``Lease`` (ingest.lease): a batch whose partitions this member no longer certainly
holds is not written, nor committed; the partitions' owner re-reads it. Messages not
keyed and partitioned by their routing key are forwarded to ``<topic>.routed`` instead
of stored (ingest.routing), so all copies of a dedupe key meet at one member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import IllegalStateError, KafkaError

from ground.metrics import Metrics
from ingest.backoff import Backoff
from ingest.batch_queue import BatchQueue, weigh
from ingest.dead_letters import DeadLetterLane
from ingest.kafka_security import KafkaAccess, kafka_security
from ingest.lag import measure_lag
from ingest.lease import Lease
from ingest.membership import Rebalance, evicted, watch_heartbeats
from ingest.producer import Producer
from ingest.routing import placement_of, routed_topics
from ingest.stalls import Stalls
from ingest.topics import Topics
from ingest.write_stage import WriteStage
from processors.batch import assemble
from processors.checkpool import CheckPool
from processors.rows import RowSet
from processors.writer import Writer

log = logging.getLogger(__name__)

# A stop stores and commits what was fetched within this long (docs/RELIABILITY.md: a
# SIGTERM ends the process within 5 s in any state; Kubernetes' grace is 30 s).
STOP_GRACE_S = 3.0


@dataclass(frozen=True)
class ConsumerConfig:
    """What a consumer needs to know: its group, its topics, and how it fetches and writes
    (the defaults are ground.settings.Tuning's)."""

    kafka: KafkaAccess
    group: str = "livesales"
    topics: Topics = field(default_factory=Topics)
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 1_000
    rebalance_timeout_ms: int = 10_000
    fetch_partition_kb: int = 8 * 1024
    fetch_max_kb: int = 32 * 1024
    batch_max_records: int = 20_000
    batch_wait_ms: int = 100
    min_insert_interval_ms: int = 150  # 0: insert each batch as soon as it is ready
    write_retry_max_s: float = 10.0


class Consumer:
    def __init__(
        self,
        config: ConsumerConfig,
        writer: Writer,
        producer: Producer,
        metrics: Metrics,
        checks: CheckPool,
        name: str = "consumer",
        on_stored: Callable[[Sequence[RowSet]], None] | None = None,
    ) -> None:
        self.config = config
        self.checks = checks
        self.writer = writer
        self.producer = producer
        self.metrics = metrics
        self.name = name
        self._kafka: AIOKafkaConsumer | None = None
        self._queue = BatchQueue()
        # batches in validation, oldest first: at most CheckPool.parallel (one per child, one ahead)
        self._validating: deque[asyncio.Task[None]] = deque()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = False
        self.stalls = Stalls(name)
        self.lag_total: int | None = None  # readiness (livesales.health) reads these
        self.lag_trustworthy = True
        session_s = config.session_timeout_ms / 1000
        self.lease = Lease(session_s, margin_s=session_s / 3)
        self._routed = frozenset(routed_topics(config.topics.inputs))
        self._dead = DeadLetterLane(producer, config.topics.dlq, metrics, self.stalls.stall, config.write_retry_max_s)
        self._writes = WriteStage(
            name, config.group, writer, producer, metrics, self._queue, self.lease, self.stalls, self._stopping,
            lambda: self._kafka, config.min_insert_interval_ms, config.write_retry_max_s, on_stored,
        )  # fmt: skip

    # readiness (livesales.health) and tests read these
    @property
    def stalled(self) -> bool:
        return self.stalls.stalled

    @property
    def stalled_since(self) -> float | None:
        return self.stalls.since

    @property
    def stall_reason(self) -> str | None:
        return self.stalls.reason

    @property
    def last_write_ok_at(self) -> float | None:
        return self.stalls.last_write_ok_at

    @property
    def last_write_failed_at(self) -> float | None:
        return self.stalls.last_write_failed_at

    @property
    def fenced_batches(self) -> int:
        """Batches dropped unwritten: partitions lost."""
        return self._writes.fenced_batches

    @property
    def forwarded(self) -> int:
        """Messages forwarded to the .routed topics (ingest.routing)."""
        return self._writes.forwarded

    # -- life cycle -----------------------------------------------------------------
    async def start(self, storage_ready: asyncio.Event | None = None) -> None:
        """Join the group; retries with backoff while the broker is away.

        ``storage_ready``: fetching and writing begin once it is done, but the group is
        joined before, so a restart spends the group's rebalance (seconds: the crashed
        member's session must expire) while storage opens, not after it."""
        backoff = Backoff(cap=5.0)
        while not self._stopping.is_set():
            kafka = AIOKafkaConsumer(
                bootstrap_servers=self.config.kafka.bootstrap,
                group_id=self.config.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # partition p of a topic and of its .routed topic to one member (ingest.routing)
                partition_assignment_strategy=(RangePartitionAssignor,),
                # what one fetch may bring: a backlog drains faster with more, and a
                # consumer behind holds up to this much more memory (docs/BENCHMARKS.md)
                max_partition_fetch_bytes=self.config.fetch_partition_kb << 10,
                fetch_max_bytes=self.config.fetch_max_kb << 10,
                fetch_max_wait_ms=50,  # an idle partition answers sooner: fresher counts (BENCHMARKS.md)
                isolation_level="read_committed",
                **kafka_security(self.config.kafka),
                # How soon the group notices a crashed member, and so how soon its
                # partitions count again after a restart (docs/RELIABILITY.md).
                session_timeout_ms=self.config.session_timeout_ms,
                heartbeat_interval_ms=self.config.heartbeat_interval_ms,
                rebalance_timeout_ms=self.config.rebalance_timeout_ms,
            )
            try:
                await kafka.start()
            except asyncio.CancelledError:  # a stop during start-up (ground.stopping)
                with contextlib.suppress(Exception):
                    await kafka.stop()
                raise
            except KafkaError as exc:
                log.warning("%s: broker unavailable (%s); retrying", self.name, exc)
                with contextlib.suppress(Exception):
                    await kafka.stop()
                await self._sleep(backoff.next())
                continue
            # The drain on revocation waits for the insert under way at most this long: a
            # member must rejoin within the rebalance timeout to stay in the group.
            drain_s = min(30.0, self.config.rebalance_timeout_ms / 1000)
            kafka.subscribe([*self.config.topics.inputs, *self._routed], listener=Rebalance(self, drain_s))
            watch_heartbeats(kafka, self.lease, self.name)
            self._kafka = kafka
            break
        if storage_ready is not None and self._kafka is not None:
            try:
                await storage_ready.wait()
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._kafka.stop()
                raise
        self.subscribed = self._kafka is not None
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name=f"{self.name}-fetch"),
            asyncio.create_task(self._writes.run(), name=f"{self.name}-write"),
        ]

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop fetching, store and commit what was fetched, then leave the group: each
        step within what is left of ``grace_s``, whatever is away (a frozen broker, a
        ClickHouse that fails every insert). What is not stored and committed by then is
        given up, not lost: the next owner of its partitions reads it again."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s

        def left() -> float:
            return max(0.1, deadline - loop.time())

        if self._tasks:
            fetch, write = self._tasks
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fetch), left())  # getmany returns within its wait
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
            try:
                await asyncio.wait_for(self._validated(), left())
                await asyncio.wait_for(self._queue.join(), left())
            except TimeoutError:
                log.warning(
                    "%s: stopping with %d batch(es) not stored or committed (%s); they will be re-read",
                    self.name, self._queue.qsize() + len(self._validating) + 1, self.stalls.reason or "slow",
                )  # fmt: skip
            for task in (write, *self._validating):
                task.cancel()
            for task in (write, *self._validating):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._dead.close()
        if self._kafka is not None:
            # Leaving the group asks the coordinator; a frozen one never answers, and then
            # the group notices our absence after the session timeout instead.
            try:
                await asyncio.wait_for(self._kafka.stop(), max(left(), 1.0))
            except (TimeoutError, KafkaError) as exc:
                log.warning("%s: left the group without the coordinator's answer (%r)", self.name, exc)
        self.subscribed = False

    async def kill(self) -> None:
        """Vanish without storing or committing anything more (tests: a crashed member)."""
        self._stopping.set()
        tasks = [*self._tasks, *self._validating]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._dead.close()
        if self._kafka is not None:
            with contextlib.suppress(KafkaError):
                await self._kafka.stop()

    async def drain(self, timeout: float) -> None:
        """Wait until every fetched batch is stored and committed (rebalance hook)."""
        try:
            await asyncio.wait_for(self._validated(), timeout)
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("%s: rebalance went on with batches unwritten; they will be re-read", self.name)

    def evicted(self) -> bool:
        """True when the coordinator no longer knows this member (checked on revocation)."""
        return evicted(self._kafka)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- fetch ------------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        kafka = self._kafka
        assert kafka is not None  # noqa: S101 - start() set it
        backoff = Backoff(cap=5.0)
        while not self._stopping.is_set():
            throttled = self.stalls.stalled or not await self._room_for_a_batch()
            try:
                if throttled:
                    # Storage is slow or down: fetch nothing new, but keep polling to stay
                    # in the group. Only now: pausing drops aiokafka's prefetched records,
                    # which would then be fetched and parsed again.
                    kafka.pause(*kafka.assignment())
                elif kafka.paused():
                    kafka.resume(*kafka.paused())
                records = await kafka.getmany(
                    timeout_ms=200 if throttled else self.config.batch_wait_ms,
                    max_records=self.config.batch_max_records,
                )
                epoch = self.lease.epoch  # the assignment these records were fetched in
                backoff.reset()
                if self.stalls.reason == "fetch failing":
                    self.stalls.clear()
            except (KafkaError, IllegalStateError) as exc:
                log.warning("%s: fetch failed (%s); retrying", self.name, exc)
                self.stalls.note("fetch failing")
                await self._sleep(backoff.next())
                continue
            if records:  # while throttled, only from partitions assigned since the last pause
                previous = self._validating[-1] if self._validating else None
                task = asyncio.create_task(self._validate(records, previous, epoch), name=f"{self.name}-validate")
                self._validating.append(task)
        await self._validated()

    async def _validate(
        self,
        records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        previous: asyncio.Task[None] | None,
        epoch: int,
    ) -> None:
        """Validate in the check pool while the fetch loop reads on, then queue the batch
        behind the one before it: batches are stored, and offsets committed, in order."""
        flat = [r for recs in records.values() for r in recs]
        values = [r.value for r in flat]
        now = datetime.now(UTC)
        kafka = self._kafka
        placement = None  # the sole writer routes nothing: its one lock decides every copy (DESIGN)
        if kafka is not None and not self.writer.sole_writer:
            placement = placement_of(records, self._routed, lambda t: len(kafka.partitions_for_topic(t) or ()))
        checked = await self.checks.check(values, now, placement)
        self.metrics.slow_validations.inc(checked.slow)
        batch = assemble(flat, values, checked, now, records)
        batch.epoch = epoch
        batch.weight = weigh(values, self.config.batch_max_records, self.config.fetch_max_kb << 10)
        if previous is not None:
            await previous
        if batch.dead_values:  # in offset order, while the batch waits for the writer
            batch.acks.append(self._dead.submit(batch.dead_values, batch.dead_codes))
        await self._queue.put(batch)

    async def _room_for_a_batch(self, patience: float = 1.0) -> bool:
        """Wait until fewer batches than the pool takes are in validation; False if that
        takes longer than ``patience`` (the writer is behind: its queue is full)."""
        while len(self._validating) >= self.checks.parallel:
            oldest = self._validating[0]
            done, _ = await asyncio.wait({oldest}, timeout=patience)
            if not done:
                return False
            if self._validating and self._validating[0] is oldest:  # drain() may have taken it
                self._validating.popleft()
            oldest.result()
        return True

    async def _validated(self) -> None:
        while self._validating:
            await self._validating.popleft()

    # -- write ------------------------------------------------------------------------
    # -- observability ------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """False once its fetch or write loop ended while it was not asked to stop (a bug):
        a liveness probe then restarts the process instead of leaving its partitions idle."""
        return self._stopping.is_set() or not any(t.done() for t in self._tasks)

    async def update_lag(self) -> None:
        """Lag per assigned partition and in total (ingest.lag), for /metrics and /readyz."""
        kafka = self._kafka
        if kafka is None:
            return
        measured = await measure_lag(kafka, self._writes.committed, self.metrics)
        if measured is not None:
            self.lag_total, self.lag_trustworthy = measured
