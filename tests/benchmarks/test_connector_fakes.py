"""The benchmark's indexed 抖店 fake selects exactly what the tests' scanning fake selects, so
``bench connectors`` measures the connector against the same answers the tests check."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from benchmarks.connector_fakes import FastDouyin
from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder, FakeRefund

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _fill(fake: FakeDouyin, seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(400):
        at = T0 + timedelta(seconds=rnd.randrange(3 * 86_400))
        o = FakeOrder(f"69{i:05d}", rnd.choice(("41", "42")), at, [("sku-1", "蛏子", 1, 6800)])
        fake.orders[o.order_id] = o  # not create(): no pushes, and update times set below
        o.updated_at = at + timedelta(seconds=rnd.randrange(3_600))
        o.refunds = [FakeRefund(f"r{i}-{k}", 100, o.updated_at, o.updated_at + timedelta(seconds=k))
                     for k in range(rnd.choice((0, 0, 1, 2)))]  # fmt: skip


def test_fast_fake_selects_what_the_scanning_fake_selects() -> None:
    slow, fast = FakeDouyin("k", "s"), FastDouyin("k", "s")
    _fill(slow, 7)
    _fill(fast, 7)
    start = int(T0.timestamp())
    windows = [(start + lo, start + lo + span) for lo in range(-600, 4 * 86_400, 7_777) for span in (0, 599, 86_400)]
    edges = sorted(int(o.updated_at.timestamp()) for o in slow.orders.values())[::37]
    windows += [(t, t) for t in edges] + [(t - 900, t) for t in edges]  # bounds on an update: inclusive
    refunds = 0
    for shop in ("41", "42", "43"):
        for lo, hi in windows:
            assert [o.order_id for o in fast.updated_orders(shop, lo, hi)] == [
                o.order_id for o in slow.updated_orders(shop, lo, hi)
            ]
            got = sorted(r.refund_id for _, r in fast.updated_refunds(shop, lo, hi))
            assert got == sorted(r.refund_id for _, r in slow.updated_refunds(shop, lo, hi))
            refunds += len(got)
    assert refunds > 100  # the windows do select refunds: the comparison is not of empties
