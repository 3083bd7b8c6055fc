"""The lease: owned partitions, for a session timeout minus a margin after a heartbeat."""

from __future__ import annotations

import pytest

from ingest.lease import Lease


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


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
