"""The lease: owned partitions, for a session timeout minus a margin after a heartbeat."""

from __future__ import annotations

import pytest

from ingest.lease import Lease
from tests.support.clock import ManualClock as Clock


def test_holds_only_owned_partitions_and_only_until_the_session_may_have_run_out() -> None:
    clock = Clock()
    lease = Lease(session_timeout_s=10, margin_s=3, clock=clock)
    assert not lease.holds([])  # never assigned, never heartbeated
    lease.assigned([("t", 0), ("t", 1)])
    assert lease.holds([("t", 0)]) and not lease.holds([("t", 0), ("t", 2)])
    clock.now += 6.9
    assert lease.holds([("t", 1)])
    clock.now += 0.2  # 7.1 s after the last answered request: the coordinator may evict us at 10
    assert not lease.holds([("t", 1)]) and lease.owns([("t", 1)])
    lease.renew(clock.now - 1)  # a heartbeat sent a second ago was answered
    assert lease.holds([("t", 1)])
    lease.renew(0)  # an older answer arriving late never shortens it
    assert lease.holds([("t", 1)])
    lease.released([("t", 1)])
    assert not lease.holds([("t", 1)]) and lease.holds([("t", 0)])
    lease.lost()
    assert not lease.holds([("t", 0)])


def test_a_margin_as_long_as_the_session_is_refused() -> None:
    with pytest.raises(ValueError):
        Lease(session_timeout_s=1, margin_s=1)


def test_each_assignment_and_revocation_is_an_epoch_of_its_own_with_its_own_claim() -> None:
    """A batch fetched before a rebalance is never written after it, even when the same
    partitions come back (its records are re-read from the committed offsets)."""
    lease = Lease(session_timeout_s=10, margin_s=3, clock=Clock())
    lease.assigned([("t", 0)])
    fetched_in, token = lease.epoch, lease.token
    assert lease.holds([("t", 0)], fetched_in)
    lease.released([("t", 0)])  # revocation began: nothing new is sent from here on
    assert not lease.owns([("t", 0)], fetched_in)
    lease.assigned([("t", 0)])  # the same partition back, in a new generation
    assert lease.owns([("t", 0)]) and not lease.owns([("t", 0)], fetched_in)
    assert lease.token != token and Lease(10, 3).token != lease.token  # unique per member and epoch


class FakeCoordinator:
    """What watch_heartbeats reads of aiokafka's group coordinator, with aiokafka's own
    answer handling: a heartbeat answered REBALANCE_IN_PROGRESS returns True after asking
    to rejoin; ILLEGAL_GENERATION resets the generation and returns None."""

    def __init__(self) -> None:
        import asyncio

        self.generation = 7
        self.answer = "NONE"
        self._rejoin_needed_fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def _do_heartbeat(self) -> bool | None:
        if self.answer == "REBALANCE_IN_PROGRESS":
            if not self._rejoin_needed_fut.done():
                self._rejoin_needed_fut.set_result(None)
            return True
        if self.answer == "ILLEGAL_GENERATION":
            self.generation = -1
            return None
        return True


class FakeKafka:
    def __init__(self) -> None:
        self._coordinator = FakeCoordinator()


async def test_a_heartbeat_answered_rebalance_in_progress_renews_nothing() -> None:
    """aiokafka counts that answer as a success, but the coordinator may complete the
    rebalance without us meanwhile and give our partitions away (issue: a drain waiting on
    slow inserts kept renewing its lease that way and wrote 5 s after its partitions moved)."""
    from ingest.membership import watch_heartbeats

    clock = Clock()
    lease = Lease(session_timeout_s=6, margin_s=2, clock=clock)
    kafka = FakeKafka()
    watch_heartbeats(kafka, lease, "m")  # type: ignore[arg-type]
    beat = kafka._coordinator._do_heartbeat
    lease.assigned([("t", 0)])
    first = lease.renewed_at
    assert await beat()  # a plain answer renews (at the time it was sent: time.monotonic)
    assert lease.renewed_at > first
    renewed = lease.renewed_at
    kafka._coordinator.answer = "REBALANCE_IN_PROGRESS"
    for _ in range(3):
        assert await beat()  # aiokafka: "success", keep heartbeating
    assert lease.renewed_at == renewed
    kafka._coordinator.answer = "ILLEGAL_GENERATION"
    assert not await beat()
    assert lease.renewed_at == renewed
