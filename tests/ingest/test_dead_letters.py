"""The dead-letter lane (ingest/dead_letters.py): sends in submission order, one send at a
time, skips what was given up, retries while the DLQ fails, and leaves nothing pending on
close. A stand-in producer records the sends (the lane's own rules are what is tested; the
real broker path is tests/ingest/test_poison.py's)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from ground.metrics import Metrics
from ingest.dead_letters import DeadLetterLane
from ingest.producer import ProduceError, Producer
from tests.conftest import wait_for


class Recorder:
    """``send_values`` as the lane calls it: records each send; fails ``failures`` times
    first; each send waits for ``gate`` when set (to hold one in flight)."""

    def __init__(self, failures: int = 0) -> None:
        self.sends: list[list[bytes]] = []
        self.failures = failures
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate: asyncio.Event | None = None

    async def send_values(self, topic: str, values: Sequence[bytes]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.failures:
                self.failures -= 1
                raise ProduceError("broker away")
            self.sends.append(list(values))
        finally:
            self.in_flight -= 1


def lane(producer: Recorder, stalls: list[str] | None = None) -> tuple[DeadLetterLane, Metrics]:
    metrics = Metrics()
    out = DeadLetterLane(cast(Producer, producer), "dlq", metrics, (stalls if stalls is not None else []).append, 0.05)
    return out, metrics


def counted(metrics: Metrics, code: str) -> float:
    value = metrics.registry.get_sample_value("livesales_dead_letters_total", {"code": code})
    return value or 0.0


async def test_sends_in_order_one_at_a_time_and_joins_what_waits() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    dl, metrics = lane(rec)
    first = dl.submit([b"a1", b"a2"], {"invalid_json": 2})
    await wait_for(lambda: _true(rec.in_flight == 1), timeout=5, what="the first send under way")
    second = dl.submit([b"b1"], {"oversized": 1})
    third = dl.submit([b"c1"], {"invalid_json": 1})
    rec.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second, third), 5)
    assert rec.sends == [[b"a1", b"a2"], [b"b1", b"c1"]]  # the two that waited went as one
    assert rec.most_in_flight == 1
    assert counted(metrics, "invalid_json") == 3 and counted(metrics, "oversized") == 1
    await dl.close()


async def test_a_ticket_given_up_before_its_send_is_not_sent() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    dl, metrics = lane(rec)
    first = dl.submit([b"a"], {"x": 1})
    await wait_for(lambda: _true(rec.in_flight == 1), timeout=5, what="the first send under way")
    dropped = dl.submit([b"dropped"], {"x": 1})
    dropped.cancel()  # its batch was given up unwritten
    kept = dl.submit([b"kept"], {"x": 1})
    rec.gate.set()
    await asyncio.wait_for(asyncio.gather(first, kept), 5)
    assert rec.sends == [[b"a"], [b"kept"]]
    assert counted(metrics, "x") == 2
    await dl.close()


async def test_a_failing_dlq_stalls_and_is_retried_until_it_answers() -> None:
    rec = Recorder(failures=3)
    stalls: list[str] = []
    dl, _ = lane(rec, stalls)
    await asyncio.wait_for(dl.submit([b"v"], {"x": 1}), 10)
    assert rec.sends == [[b"v"]]
    assert len(stalls) == 3 and all("dead-letter queue unavailable" in s for s in stalls)
    await dl.close()


async def test_close_cancels_every_ticket_not_acknowledged() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()  # never set: the broker never answers
    dl, _ = lane(rec)
    tickets = [dl.submit([b"a"], {}), dl.submit([b"b"], {})]
    await wait_for(lambda: _true(rec.in_flight == 1), timeout=5, what="a send under way")
    await dl.close()
    for ticket in tickets:
        with pytest.raises(asyncio.CancelledError):
            await ticket
    assert rec.sends == []


async def _true(value: Any) -> bool:
    return bool(value)


async def test_what_was_submitted_is_sent_even_if_the_batch_grows_after() -> None:
    """A queued batch joins the ones after it (Batch.absorb extends its dead letters and
    counts): the lane must send what was submitted then, not the grown batch, or the
    later batch's dead letters go out twice."""
    rec = Recorder()
    rec.gate = asyncio.Event()
    dl, metrics = lane(rec)
    first = dl.submit([b"a"], {"x": 1})
    await wait_for(lambda: _true(rec.in_flight == 1), timeout=5, what="the first send under way")
    values, codes = [b"b"], {"x": 1}
    second = dl.submit(values, codes)
    values.append(b"c")  # the batch absorbed a later one, which submits its own
    codes["x"] += 1
    third = dl.submit([b"c"], {"x": 1})
    rec.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second, third), 5)
    assert [v for send in rec.sends for v in send] == [b"a", b"b", b"c"]
    assert counted(metrics, "x") == 3
    await dl.close()
