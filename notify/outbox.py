"""One robot's queue: post in order, within its rate limit, back off while it fails.

A robot's deliveries are posted one at a time in the order they were read: a 【恢复】
never overtakes its 【告警】, and while a robot is down its head delivery waits (with
exponential back-off) and the rest wait behind it — they would fail too. Other robots are
not held up: each has its own worker. A delivery ends ``sent`` once the robot answered
success and that was recorded, or ``dropped`` once it is older than the policy's maximum
age (an hour since it was first seen); only then does ``finished`` release its Kafka
offsets (notify.sender). Recording ``sent`` is retried until the store takes it: a
posted delivery whose record is lost would be posted again by the next owner.

Clock and sleep are injected so that an hour of failures runs in virtual time in tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import TopicPartition

from notify.config import RobotConfig
from notify.messages import Message
from notify.metrics import NotifyMetrics
from notify.pacing import RateLimit, RetryPolicy
from notify.robots import Outcome
from notify.transitions import Delivery
from processors.store import StorageError

log = logging.getLogger(__name__)

Poster = Callable[[RobotConfig, Message, float], Awaitable[Outcome]]
Clock = Callable[[], float]


class Recorder(Protocol):
    async def record(
        self, d: Delivery, state: str, attempts: int, created_ms: int, error: str | None = None
    ) -> None: ...


@dataclass
class Job:
    delivery: Delivery
    created_ms: int  # first seen (by a detector): its age decides the drop
    attempts: int = 0  # carried over from the table when another member had tried already
    offsets: list[tuple[TopicPartition, int]] = field(default_factory=list)  # every copy read
    abandoned: bool = False  # its partition was revoked: leave it to the next owner
    last_error: str | None = None


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class RobotWorker:
    """The queue and the posting loop of one robot (see the module's docstring)."""

    def __init__(
        self,
        robot: RobotConfig,
        post: Poster,
        render: Callable[[Delivery], Message],
        recorder: Recorder,
        policy: RetryPolicy,
        limit: RateLimit,
        finished: Callable[[Job, str], None],
        metrics: NotifyMetrics,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = _sleep,
    ) -> None:
        self.robot = robot
        self._post, self._render, self._recorder = post, render, recorder
        self.policy, self.limit = policy, limit
        self._finished, self._metrics = finished, metrics
        self._clock, self._sleep = clock, sleep
        self._queue: deque[Job] = deque()
        self._ready = asyncio.Event()
        self.current: Job | None = None
        self.in_post = False  # between sending a post and recording its answer
        self.idle = asyncio.Event()  # set while not in_post
        self.idle.set()

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._ready.set()

    def __len__(self) -> int:
        return len(self._queue) + (self.current is not None)

    def abandon(self, tps: set[TopicPartition]) -> list[Job]:
        """Drop the jobs read from ``tps`` (revoked): queued ones at once, the current one
        at its next step (a post under way is still recorded). Returns them."""
        gone = [j for j in self._queue if j.offsets and j.offsets[0][0] in tps]
        self._queue = deque(j for j in self._queue if not (j.offsets and j.offsets[0][0] in tps))
        cur = self.current
        if cur is not None and cur.offsets and cur.offsets[0][0] in tps:
            cur.abandoned = True
            gone.append(cur)
        for j in gone:
            j.abandoned = True
        return gone

    async def run(self) -> None:
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            job = self._queue.popleft()
            self.current = job
            try:
                await self.deliver(job)
            finally:
                self.current = None

    async def deliver(self, job: Job) -> None:
        """Post ``job`` until sent, dropped or abandoned."""
        d, robot = job.delivery, self.robot
        expires = self.policy.expires_at(job.created_ms / 1000)
        msg = self._render(d)
        while not job.abandoned:
            now = self._clock()
            if now >= expires:
                why = f"older than {self.policy.max_age_s:g} s; not posted"
                await self._record_final(job, "dropped", f"{why} (last: {job.last_error})" if job.last_error else why)
                self._metrics.dropped.labels(robot.name).inc()
                log.warning("robot %s: dropped %s after %d attempts", robot.name, d.transition.id, job.attempts)
                self._finish(job, "dropped")
                return
            wait = self.limit.delay(now)
            if wait > 0:
                await self._sleep(min(wait, expires - now))
                continue
            self.limit.note(now)
            self.in_post = True
            self.idle.clear()
            try:
                try:
                    out = await self._post(robot, msg, now)
                except Exception as exc:  # a poster must answer an Outcome; a bug must not kill the worker
                    log.exception("robot %s: posting raised", robot.name)
                    out = Outcome(False, type(exc).__name__)
                job.attempts += 1
                if out.ok:
                    self._metrics.attempts.labels(robot.name, "ok").inc()
                    await self._record_final(job, "sent", None)
                    self._finish(job, "sent")
                    return
                self._metrics.attempts.labels(robot.name, "rate_limited" if out.rate_limited else "failed").inc()
                job.last_error = out.error
                if out.rate_limited:
                    self.limit.refused(self._clock())
                try:
                    await self._recorder.record(d, "retrying", job.attempts, job.created_ms, out.error)
                except StorageError as exc:  # informative only: the next attempt records again
                    log.warning("robot %s: could not record a failed attempt: %s", robot.name, exc)
            finally:
                self.in_post = False
                self.idle.set()
            delay = self.policy.backoff(job.attempts)
            log.info("robot %s: attempt %d of %s failed (%s); next in %.1f s",
                     robot.name, job.attempts, d.transition.id, out.error, delay)  # fmt: skip
            now = self._clock()
            await self._sleep(max(0.0, min(delay, expires - now)))

    async def _record_final(self, job: Job, state: str, error: str | None) -> None:
        """Retried until stored: the offsets are released only after it (see the module)."""
        delay = 0.05
        while True:
            try:
                await self._recorder.record(job.delivery, state, job.attempts, job.created_ms, error)
                return
            except StorageError as exc:
                log.warning("robot %s: could not record %s (%s); retrying", self.robot.name, state, exc)
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)

    def _finish(self, job: Job, state: str) -> None:
        self._metrics.notifications.labels(self.robot.name, state).inc()
        self._finished(job, state)
