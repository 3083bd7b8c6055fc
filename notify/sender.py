"""The senders: a consumer group on the notifications topic that posts each delivery once.

Every process that runs a Sender joins one consumer group. A delivery is keyed by its
robot (notify.transitions.encode), so one partition — one member at a time — holds all of
a robot's deliveries, every copy of each included. For each record the owner looks the
(robot, transition id) up in the ``notifications`` table and in its own memory; one
already ``sent`` or ``dropped``, or under way here, is not posted again. A new one goes to
its robot's worker (notify.outbox). A record's offset is committed once the delivery it
names is finished *and recorded*, and never past a record still waiting: a robot down
for an hour holds its partition's committed offset back, not the posts of other robots.
If the member dies, the next owner re-reads from that offset, finds the finished ones in
the table and posts the rest. What a crash between a post and its record repeats: that
one post (docs/NOTIFY.md).

Memory: the records read and not finished, at most ``max_pending`` per partition (past
it that partition pauses and the topic holds the rest), one small queue per robot, the
ids of the last ``finished_memory`` finished deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from ingest.kafka_security import KafkaAccess
from notify.config import RobotConfig
from notify.membership import Ledger, Rebalance, join
from notify.messages import Message, MessageConfig, render
from notify.metrics import NotifyMetrics
from notify.outbox import Job, Poster, RobotWorker
from notify.pacing import RateLimit, RetryPolicy
from notify.records import FINAL_STATES, Recorded, Records
from notify.robots import RATE_LIMITS, Outcome, post
from notify.transitions import BadDelivery, Delivery, decode
from processors.store import ClickHouse, StorageError

log = logging.getLogger(__name__)

NOTIFY_TOPIC = "livesales.notifications"
NOTIFY_GROUP = "livesales-notify"


@dataclass(frozen=True)
class SenderConfig:
    kafka: KafkaAccess
    messages: MessageConfig
    topic: str = NOTIFY_TOPIC
    group: str = NOTIFY_GROUP
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    post_timeout_s: float = 10.0
    max_pending: int = 2_500  # deliveries read and unfinished per partition; past it that partition pauses
    rate_limits: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)  # over RATE_LIMITS
    finished_memory: int = 10_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000


class Sender:
    """One process's member of the senders' group (see the module's docstring)."""

    def __init__(
        self,
        config: SenderConfig,
        robots: Sequence[RobotConfig],
        store: ClickHouse,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
        poster: Poster | None = None,
        name: str = "notify-sender",
    ) -> None:
        self.config, self.name = config, name
        self.metrics = metrics or NotifyMetrics()
        self.records = Records(store, clock)
        self._clock = clock
        self._poster = poster
        self._session: aiohttp.ClientSession | None = None
        self._kafka: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._ledgers: dict[TopicPartition, Ledger] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._inflight: dict[tuple[str, str], Job] = {}
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._robots = {r.name: r for r in robots}
        self._workers = {
            r.name: RobotWorker(
                r, self._post, lambda d: render(d.transition, config.messages), self.records, config.retry,
                RateLimit({**RATE_LIMITS, **config.rate_limits}[r.kind]), self._finished, self.metrics, clock,
            )
            for r in robots
        }  # fmt: skip
        self._worker_tasks: dict[str, asyncio.Task[None]] = {}

    # -- life cycle ---------------------------------------------------------------
    async def start(self) -> None:
        """Start posting; joins the group in the background (retrying while the broker is away)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.post_timeout_s))
        for name, worker in self._workers.items():
            self._worker_tasks[name] = asyncio.create_task(worker.run(), name=f"notify-{name}")
        self._task = asyncio.create_task(self._run(), name=self.name)

    @property
    def assigned(self) -> bool:
        return self._kafka is not None and bool(self._kafka.assignment())

    async def stop(self) -> None:
        """Finish the posts under way (recorded), commit what is finished, leave the group."""
        task, self._task = self._task, None
        if task is not None:  # nothing new is taken from here on
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        kafka = self._kafka
        if kafka is not None:
            await self._revoked(set(kafka.assignment()))
        await self._halt()

    async def abort(self) -> None:
        """Stop as a kill would: nothing under way is recorded or committed (tests)."""
        for w in self._workers.values():
            w.abandon({tp for tp in self._ledgers})
        self._ledgers.clear()
        await self._halt()

    async def _halt(self) -> None:
        tasks = [t for t in (self._task, *self._worker_tasks.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._task = None
        self._worker_tasks.clear()
        kafka, self._kafka = self._kafka, None
        if kafka is not None:
            with contextlib.suppress(Exception):
                await kafka.stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _post(self, robot: RobotConfig, msg: Message, now: float) -> Outcome:
        if self._poster is not None:
            return await self._poster(robot, msg, now)
        assert self._session is not None  # noqa: S101 - start() opened it before any worker runs
        return await post(self._session, robot, msg, now)

    # -- the consumer -------------------------------------------------------------
    async def _run(self) -> None:
        c = self.config
        self._kafka = kafka = await join(c.kafka, c.group, c.topic, Rebalance(self._revoked), self.name,
                                         c.session_timeout_ms, c.heartbeat_interval_ms)  # fmt: skip
        while True:
            try:
                batch = await kafka.getmany(timeout_ms=200, max_records=500)
            except KafkaError as exc:
                log.warning("%s: fetch failed (%s)", self.name, exc)
                await asyncio.sleep(0.5)
                continue
            try:
                for tp, recs in batch.items():
                    await self._take(tp, recs)
                self._flow(kafka)
                await self._commit()
            except Exception:  # a bug must not end posting: what failed stays uncommitted (re-read later)
                log.exception("%s: handling a batch failed", self.name)
                await asyncio.sleep(1.0)

    async def _take(self, tp: TopicPartition, recs: list[ConsumerRecord[bytes, bytes]]) -> None:
        ledger = self._ledgers.setdefault(tp, Ledger())
        read: list[tuple[int, Delivery]] = []
        for r in recs:
            ledger.add(r.offset)
            try:
                d = decode(r.value)
            except BadDelivery as exc:
                log.warning("%s: %s[%d]@%d skipped: %s", self.name, tp.topic, tp.partition, r.offset, exc)
                self.metrics.skipped.labels("unreadable").inc()
                ledger.done(r.offset)
                continue
            if d.robot not in self._robots:
                log.warning("%s: delivery to robot %r, not in this process's notify file: skipped", self.name, d.robot)
                self.metrics.skipped.labels("unknown_robot").inc()
                ledger.done(r.offset)
                continue
            read.append((r.offset, d))
        ask = {d.key for _, d in read if d.key not in self._inflight and d.key not in self._done}
        recorded = await self._states(ask)
        kafka = self._kafka
        if kafka is None or tp not in kafka.assignment() or self._ledgers.get(tp) is not ledger:
            return  # revoked during the look-up: its next owner decides these
        for offset, d in read:
            key = d.key
            job = self._inflight.get(key)
            if job is not None:  # another copy of one under way: released with it
                job.offsets.append((tp, offset))
                self.metrics.skipped.labels("duplicate").inc()
                continue
            seen = recorded.get(key)
            if key in self._done or (seen is not None and seen.state in FINAL_STATES):
                self.metrics.skipped.labels("duplicate").inc()
                self._remember(key)
                ledger.done(offset)
                continue
            job = Job(
                d,
                created_ms=seen.created_ms if seen else d.transition.detected_ms,
                attempts=seen.attempts if seen else 0,
                offsets=[(tp, offset)],
            )
            self._inflight[key] = job
            self._workers[d.robot].submit(job)
        self.metrics.pending.set(len(self._inflight))

    async def _states(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Recorded]:
        """The table's states of ``keys``; waits out a store outage (nothing is posted
        unchecked: the check is what makes a re-read harmless)."""
        delay = 0.1
        while True:
            try:
                return await self.records.states(keys)
            except StorageError as exc:
                log.warning("%s: notifications table unavailable (%s); retrying", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _remember(self, key: tuple[str, str]) -> None:
        self._done[key] = None
        self._done.move_to_end(key)
        while len(self._done) > self.config.finished_memory:
            self._done.popitem(last=False)

    def _finished(self, job: Job, state: str) -> None:
        key = job.delivery.key
        if self._inflight.get(key) is job:
            del self._inflight[key]
        self._remember(key)
        self.metrics.pending.set(len(self._inflight))
        if job.abandoned:
            return
        for tp, offset in job.offsets:
            ledger = self._ledgers.get(tp)
            if ledger is not None:
                ledger.done(offset)

    def _flow(self, kafka: AIOKafkaConsumer) -> None:
        """A partition with ``max_pending`` records unfinished (its robots down, or slow
        within their limits) stops fetching until half are done: the topic holds the rest,
        and the partitions of healthy robots go on."""
        paused = kafka.paused()
        for tp in kafka.assignment():
            ledger = self._ledgers.get(tp)
            waiting = len(ledger.pending) if ledger is not None else 0
            if tp not in paused and waiting >= self.config.max_pending:
                kafka.pause(tp)
            elif tp in paused and waiting <= self.config.max_pending // 2:
                kafka.resume(tp)

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        kafka = self._kafka
        if kafka is None:
            return
        owned = kafka.assignment()
        offsets = {}
        for tp, ledger in self._ledgers.items():
            at = ledger.committable()
            if tp in owned and (only is None or tp in only) and at is not None and at > self._committed.get(tp, -1):
                offsets[tp] = at
        if not offsets:
            return
        try:
            await kafka.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, KafkaError, IllegalStateError) as exc:
            # not committed: the next owner re-reads them and finds them in the table
            log.warning("%s: commit failed (%s)", self.name, exc)

    async def _revoked(self, tps: set[TopicPartition]) -> None:
        """Give up the revoked partitions' deliveries to their next owner: wait for a post
        under way to be recorded (a bounded wait), commit what is finished, forget them."""
        if not tps:
            return
        waits: list[tuple[str, Awaitable[Any]]] = []
        for name, w in self._workers.items():
            for job in w.abandon(tps):
                if self._inflight.get(job.delivery.key) is job:
                    del self._inflight[job.delivery.key]
            if w.current is not None and w.current.abandoned:
                waits.append((name, w.idle.wait()))
        for name, idle in waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle, self.config.post_timeout_s + 5.0)
            await self._restart(name)
        await self._commit(only=tps)
        for tp in tps:
            self._ledgers.pop(tp, None)
            self._committed.pop(tp, None)
        self.metrics.pending.set(len(self._inflight))

    async def _restart(self, name: str) -> None:
        """Stop a worker busy with an abandoned delivery (sleeping out its back-off) and
        start it afresh on its remaining queue."""
        w, task = self._workers[name], self._worker_tasks.get(name)
        if task is None or (w.current is not None and not w.current.abandoned):
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._worker_tasks[name] = asyncio.create_task(w.run(), name=f"notify-{name}")
