"""The consumer's third stage: store each validated batch, wait for its dead letters and
forwards to be acknowledged, then commit its offsets (ingest.consumer has the other two).

Batches come in offset order through the queue; whatever waits is joined into one insert,
and at most one insert is made per interval. A batch is written only while this member
still owns its partitions in the assignment it was fetched in (ingest.lease), and no
offset is committed before what it carries is stored (contract §3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from ground.metrics import Metrics
from ingest.backoff import Backoff
from ingest.batch_queue import BatchQueue
from ingest.lease import Lease
from ingest.membership import rejoin
from ingest.producer import Producer
from ingest.routing import forward
from ingest.stalls import Stalls
from processors.batch import Batch
from processors.fence import Claim, Superseded
from processors.rows import RowSet
from processors.store import StorageError
from processors.writer import Fenced, Ownership, Writer

log = logging.getLogger(__name__)

# While a backlog is read (fetches come full) an insert waits up to CATCH_UP_WAIT_S for
# CATCH_UP_ROWS rows: each insert costs ClickHouse about the same whatever its rows, and
# chDB's CPU is this process's. A poison flood's big values fill fetches by bytes with few
# good rows, and inserting each such batch at once tripled the inserts and slowed the
# whole pipeline (docs/BENCHMARKS.md, "Poison flood"). A live trickle never fills a fetch.
CATCH_UP_MESSAGES = 2_000
CATCH_UP_ROWS = 10_000
CATCH_UP_WAIT_S = 1.0


def _catching_up(batch: Batch) -> bool:
    """Fetches came full, yet what they carry for ClickHouse and the .routed topics is
    little: the rest were dead letters (the forwards are written beside the rows)."""
    fetched = sum(batch.consumed.values())
    useful = sum(len(r) for r in batch.rows.values()) + len(batch.forwards)
    return fetched >= CATCH_UP_MESSAGES * batch.parts and useful < CATCH_UP_ROWS


class WriteStage:
    """The write loop of one consumer: ``run`` takes batches off the queue, ``write``
    stores one and commits it. It shares with the fetch side the queue, the lease and the
    stalls (a failing write pauses fetching: ingest.stalls), and reaches the group only
    through ``kafka()``, which is None until the consumer joined it."""

    def __init__(
        self,
        name: str,
        group: str,
        writer: Writer,
        producer: Producer,
        metrics: Metrics,
        queue: BatchQueue,
        lease: Lease,
        stalls: Stalls,
        stopping: asyncio.Event,
        kafka: Callable[[], AIOKafkaConsumer | None],
        min_insert_interval_ms: int = 150,  # 0: insert each batch as soon as it is ready
        retry_max_s: float = 10.0,
        on_stored: Callable[[Sequence[RowSet]], None] | None = None,
    ) -> None:
        self.name = name
        self.group = group
        self.writer = writer
        self.producer = producer
        self.metrics = metrics
        self.queue = queue
        self.lease = lease
        self.stalls = stalls
        self.stopping = stopping
        self.kafka = kafka  # the group's consumer, once joined: commits and rejoins go through it
        self.min_insert_interval_ms = min_insert_interval_ms
        self.retry_max_s = retry_max_s
        self.on_stored = on_stored  # told of each stored batch's rows (live screens: api.live.hub)
        self.committed: dict[TopicPartition, int] = {}  # what this member committed last
        self.fenced_batches = 0  # batches dropped unwritten: partitions lost (observability)
        self.forwarded = 0  # messages forwarded to the .routed topics (ingest.routing)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_insert = -1e9
        while True:
            batch = await self.queue.get()
            # One insert for everything waiting, and at most one insert per interval:
            # every insert writes a part of ~45 files, whatever its rows, and at a few
            # thousand events/s inserting each small batch at once kept the writer ~90%
            # busy with file work and merges (docs/BENCHMARKS.md: freshness).
            deadline = last_insert + self.min_insert_interval_ms / 1000
            taken = loop.time()
            while True:
                while not self.queue.empty():
                    batch = self._joined(batch, self.queue.get_nowait())
                now = loop.time()
                wait = deadline - now
                if _catching_up(batch):  # a backlog: fewer, fuller inserts, as fast as reading allows
                    wait = max(wait, taken + CATCH_UP_WAIT_S - now)
                if wait <= 0 or self.stopping.is_set():
                    break
                try:
                    batch = self._joined(batch, await asyncio.wait_for(self.queue.get(), wait))
                except TimeoutError:
                    break
            last_insert = loop.time()
            try:
                await self.write(batch)
            finally:
                for _ in range(batch.parts):
                    self.queue.task_done()

    def _joined(self, batch: Batch, later: Batch) -> Batch:
        """``batch`` carrying ``later`` too; of two epochs, only the later one is kept (the
        earlier one is never written: see write), its queue slots counted as done."""
        if later.epoch == batch.epoch:
            batch.absorb(later)
            return batch
        stale, kept = (batch, later) if later.epoch > batch.epoch else (later, batch)
        self.fenced_batches += 1
        for ack in stale.acks:
            ack.cancel()
        for _ in range(stale.parts):
            self.queue.task_done()
        return kept

    async def write(self, batch: Batch) -> None:
        """Store, wait for the dead letters' acks (sent since the batch was validated) and
        the forwards', then commit: each retried until it succeeds or we are stopped.

        A batch whose partitions are no longer assigned here is dropped unwritten (its
        dead letters too): it was fetched before they were revoked, and whoever owns them
        now (this member too, after a re-assignment) reads it again from the committed
        offset."""
        backoff = Backoff(cap=self.retry_max_s)
        m = self.metrics
        lease, partitions, epoch = self.lease, batch.partitions, batch.epoch
        fwd = (
            asyncio.create_task(forward(self.producer, batch.forwards, self.stalls.stall, self.retry_max_s))
            if batch.forwards
            else None
        )
        stored = False
        try:
            while True:
                if not lease.owns(partitions, epoch):
                    self._given_up()
                    log.info("%s: dropped a batch fetched before the last rebalance; it is re-read", self.name)
                    return
                owner = Ownership(
                    holds=lambda: lease.holds(partitions, epoch),
                    claim=Claim(self.group, lease.token, tuple(sorted(lease.owned))),
                    partitions=tuple(partitions),
                )
                try:
                    result = await self.writer.store(batch.rows.values(), owner)
                    stored = True
                    break
                except Superseded:
                    # Another member claimed one of these partitions on the server after us:
                    # we are not their owner whatever we were told. Write nothing more until
                    # the group assigns us partitions again (positions reset from the commits).
                    self._given_up()
                    log.warning("%s: a later owner claimed these partitions; rejoining the group", self.name)
                    if lease.owns(partitions, epoch):
                        lease.lost()
                        rejoin(self.kafka())
                    return
                except Fenced:
                    # Still assigned, but no heartbeat answered lately: we may have been
                    # evicted. Wait for one and decide again (refreshing first), or until we
                    # learn we were evicted and drop the batch (above).
                    log.warning("%s: no heartbeat answered lately; holding a batch", self.name)
                    deadline = time.monotonic() + lease.valid_for
                    while (
                        not lease.holds(partitions, epoch) and lease.owns(partitions, epoch)
                        and time.monotonic() < deadline
                    ):  # fmt: skip
                        await asyncio.sleep(0.05)
                    if self.stopping.is_set() and not lease.holds(partitions, epoch):
                        return
                except StorageError as exc:
                    m.write_failures.inc()
                    self.stalls.last_write_failed_at = time.monotonic()
                    self.stalls.stall(f"storage failed: {exc}")
                    await asyncio.sleep(backoff.next())
        finally:
            if not stored:
                for ack in batch.acks:
                    ack.cancel()
                if fwd is not None:
                    fwd.cancel()
        self.stalls.last_write_ok_at = time.monotonic()
        m.write_seconds.observe(result.seconds)
        if self.on_stored is not None and result.stored:
            try:
                self.on_stored([rows for rows in batch.rows.values() if result.stored.get(rows.table)])
            except Exception:  # a hook never stops the counting
                log.exception("%s: on_stored hook failed", self.name)
        for table, n in result.stored.items():
            m.stored.labels(table).inc(n)
        for table, n in result.duplicates.items():
            m.duplicates.labels(table).inc(n)
        for topic, n in batch.consumed.items():
            m.consumed.labels(topic).inc(n)
        for ack in batch.acks:
            await ack  # the offsets are committed only once the dead letters are acknowledged
        if fwd is not None:
            await fwd  # and the forwards: the .routed topics now hold those messages
            self.forwarded += len(batch.forwards)
            for topic, *_ in batch.forwards:
                m.forwarded.labels(topic).inc()
        self.stalls.recovered()
        await self._commit(batch)

    async def _commit(self, batch: Batch) -> None:
        kafka = self.kafka()
        if kafka is None:
            return
        owned = kafka.assignment()
        offsets = {
            tp: off for (t, p), off in batch.next_offsets.items() if (tp := TopicPartition(t, p)) in owned
        }
        if not offsets:
            return
        try:
            sent = time.monotonic()
            await kafka.commit(offsets)
            self.committed.update(offsets)
            self.lease.renew(sent)  # the coordinator accepted our generation: still a member
        except (CommitFailedError, KafkaError, IllegalStateError) as exc:
            # Stored but not committed: the next owner re-reads it and dedupe drops it.
            log.warning("%s: commit failed (%s); batch will be re-read and deduplicated", self.name, exc)

    def _given_up(self) -> None:
        self.fenced_batches += 1
        self.stalls.given_up()
