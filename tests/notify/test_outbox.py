"""A robot's worker in virtual time: down five minutes, down past the hour, its rate limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from notify.messages import Message, MessageConfig, render
from notify.metrics import NotifyMetrics
from notify.outbox import Job, RobotWorker
from notify.pacing import RateLimit, RetryPolicy
from notify.robots import RATE_LIMITS, Outcome
from notify.transitions import Delivery
from processors.store import StorageError
from tests.notify.samples import delivery, robot

T0 = 1_800_000_000.0


class VirtualTime:
    """A clock that only moves when the worker sleeps."""

    def __init__(self) -> None:
        self.now = T0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class FakeRecorder:
    rows: list[tuple[str, str, int]] = field(default_factory=list)  # (id, state, attempts)
    fail_next: int = 0

    async def record(self, d: Delivery, state: str, attempts: int, created_ms: int, error: str | None = None) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise StorageError("store away")
        self.rows.append((d.transition.id, state, attempts))


@dataclass
class Robot:
    """A poster answering by virtual time: down in [down_from, down_until)."""

    vt: VirtualTime
    down_from: float = 0.0
    down_until: float = 0.0
    answer: Outcome = field(default_factory=lambda: Outcome(False, "HTTP 503, no JSON answer"))
    posts: list[float] = field(default_factory=list)

    async def __call__(self, r: object, msg: Message, now: float) -> Outcome:
        self.posts.append(now)
        if self.down_from <= now < self.down_until:
            return self.answer
        return Outcome(True)


def worker(vt: VirtualTime, poster: Robot, recorder: FakeRecorder, kind: str = "dingtalk",
           policy: RetryPolicy | None = None, finished: list[tuple[str, str]] | None = None,
           metrics: NotifyMetrics | None = None) -> RobotWorker:  # fmt: skip
    done = finished if finished is not None else []
    return RobotWorker(
        robot(kind), poster, lambda d: render(d.transition, MessageConfig("https://x")), recorder,
        policy or RetryPolicy(first_s=1.0, cap_s=60.0, max_age_s=3600.0), RateLimit(RATE_LIMITS[kind]),
        lambda job, state: done.append((job.delivery.transition.id, state)), metrics or NotifyMetrics(),
        vt.clock, vt.sleep,
    )  # fmt: skip


def job(created_s: float = T0, **kw: object) -> Job:
    return Job(delivery(**kw), created_ms=int(created_s * 1000))  # type: ignore[arg-type]


def test_backoff_doubles_up_to_its_cap() -> None:
    p = RetryPolicy(first_s=1.0, cap_s=60.0)
    assert [p.backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert p.backoff(10_000) == 60


async def test_a_robot_down_five_minutes_gets_the_post_when_it_is_back() -> None:
    vt = VirtualTime()
    poster = Robot(vt, down_from=T0, down_until=T0 + 300)
    rec, done = FakeRecorder(), []
    j = job()
    await worker(vt, poster, rec, finished=done).deliver(j)
    # attempts at 0, 1, 3, 7, 15, 31, 63, 123, 183, 243, 303 s: back-off doubling from 1 s, capped at 60 s
    assert [round(t - T0) for t in poster.posts] == [0, 1, 3, 7, 15, 31, 63, 123, 183, 243, 303]
    assert j.attempts == 11
    assert rec.rows[:-1] == [(j.delivery.transition.id, "retrying", n) for n in range(1, 11)]
    assert rec.rows[-1] == (j.delivery.transition.id, "sent", 11)
    assert done == [(j.delivery.transition.id, "sent")]


async def test_a_robot_down_past_the_hour_drops_the_post_and_counts_it() -> None:
    vt = VirtualTime()
    poster = Robot(vt, down_from=T0, down_until=T0 + 2 * 3600)
    rec, done, metrics = FakeRecorder(), [], NotifyMetrics()
    j = job()
    await worker(vt, poster, rec, finished=done, metrics=metrics).deliver(j)
    assert vt.now == T0 + 3600  # dropped exactly at the hour, not a back-off later
    assert all(t < T0 + 3600 for t in poster.posts)
    assert rec.rows[-1] == (j.delivery.transition.id, "dropped", j.attempts)
    assert j.last_error == "HTTP 503, no JSON answer"
    assert done == [(j.delivery.transition.id, "dropped")]
    assert metrics.dropped.labels("r")._value.get() == 1


async def test_a_transition_already_older_than_the_hour_is_never_posted() -> None:
    vt = VirtualTime()
    poster, rec = Robot(vt), FakeRecorder()
    j = job(created_s=T0 - 3601)
    await worker(vt, poster, rec).deliver(j)
    assert poster.posts == [] and rec.rows == [(j.delivery.transition.id, "dropped", 0)]


async def test_attempts_made_elsewhere_keep_their_age() -> None:
    """A delivery taken over from a member that died: its first-seen time still counts."""
    vt = VirtualTime()
    poster, rec = Robot(vt, down_from=T0, down_until=T0 + 3600), FakeRecorder()
    j = job(created_s=T0 - 3000)
    j.attempts = 7
    await worker(vt, poster, rec).deliver(j)
    assert vt.now == T0 + 600 and rec.rows[-1][1:] == ("dropped", j.attempts) and j.attempts > 7


@pytest.mark.parametrize("kind", ["dingtalk", "wecom"])
async def test_twenty_a_minute(kind: str) -> None:
    vt = VirtualTime()
    poster, rec = Robot(vt), FakeRecorder()
    w = worker(vt, poster, rec, kind=kind)
    for i in range(45):
        await w.deliver(job(channel=f"c{i}"))
    times = poster.posts
    assert len(times) == 45
    for i, t in enumerate(times):  # no 60 s window holds more than 20 (nor one of 63 s: the margin)
        assert sum(1 for u in times[i:] if u < t + 63) <= 20
    assert times[20] - times[0] == pytest.approx(63) and times[40] - times[0] == pytest.approx(126)


async def test_feishu_five_a_second() -> None:
    vt = VirtualTime()
    poster, rec = Robot(vt), FakeRecorder()
    w = worker(vt, poster, rec, kind="feishu")
    for i in range(11):
        await w.deliver(job(channel=f"c{i}"))
    assert [round(t - T0, 3) for t in poster.posts] == [0] * 5 + [1.25] * 5 + [2.5]


async def test_a_too_fast_answer_waits_a_whole_window() -> None:
    vt = VirtualTime()
    poster = Robot(vt, down_from=T0, down_until=T0 + 1, answer=Outcome(False, "code 130101", rate_limited=True))
    rec = FakeRecorder()
    await worker(vt, poster, rec).deliver(job())
    assert [round(t - T0) for t in poster.posts] == [0, 63]


async def test_the_sent_record_is_retried_until_stored() -> None:
    """Released (offset committable) only once 'sent' is in the table."""
    vt = VirtualTime()
    poster, rec, done = Robot(vt), FakeRecorder(fail_next=3), []
    j = job()
    await worker(vt, poster, rec, finished=done).deliver(j)
    assert len(poster.posts) == 1 and rec.rows == [(j.delivery.transition.id, "sent", 1)] and done


async def test_in_order_one_at_a_time() -> None:
    vt = VirtualTime()
    poster, rec, done = Robot(vt, down_from=T0, down_until=T0 + 10), FakeRecorder(), []
    w = worker(vt, poster, rec, finished=done)
    task = asyncio.create_task(w.run())
    firing, cleared = job(edge="firing"), job(edge="cleared")
    w.submit(firing)
    w.submit(cleared)
    while len(done) < 2:
        await asyncio.sleep(0)
    task.cancel()
    assert [state for _, state in done] == ["sent", "sent"]
    assert [i for i, _ in done] == [firing.delivery.transition.id, cleared.delivery.transition.id]
