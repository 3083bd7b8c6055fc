"""Reconciliation with several members: each shop once per interval, taken over when its
owner leaves, and the watermark outliving the process that wrote it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from connectors.apis import Apis
from connectors.reconcile import ReconcileConfig, Reconciler
from connectors.state import ConnectorState
from connectors.status import StatusBook
from connectors.worker import partition_of
from ground.settings import Settings
from localplatforms.douyin import FakeDouyin
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.connectors.harness import Stack, douyin_app, equal, sale, shop, true, truth, wait_settled


async def test_two_members_reconcile_each_shop_once_per_interval_and_take_over_when_one_dies(
    topics: Settings, migrated_store: Path
) -> None:
    by_partition: dict[int, str] = {}  # a shop on every partition of the raw topic
    n = 3000
    while len(by_partition) < 4:
        by_partition.setdefault(partition_of("douyin", str(n), 4), str(n))
        n += 1
    shops = list(by_partition.values())
    fake = FakeDouyin()
    url = await fake.start()
    stack = Stack(topics, migrated_store, [douyin_app(url, [shop(s) for s in shops])])
    await stack.start()
    try:
        interval = 1.5
        a = await stack.add_member(interval_s=interval, reconcile=False)
        b = await stack.add_member(interval_s=interval, reconcile=False)
        await wait_for(lambda: true(len(a.worker.assigned) == 2 and len(b.worker.assigned) == 2),
                       what="the raw topic's partitions shared")  # fmt: skip
        await a.reconciler.start()
        await b.reconciler.start()
        await wait_for(lambda: true(a.reconciler.runs >= 4 and b.reconciler.runs >= 4), timeout=20,
                       what="two rounds on each member")  # fmt: skip
        orders = sale(fake, shops, 40, seed=11)  # pushes in flight on every shop when a dies
        fake.faults.slow_s = 0.2
        await fake.send_pushes(stack.push_url("douyin"), batch=4)
        await stack.kill(a)  # its shops move to b after the session timeout; b waits out their interval
        dropped = int(datetime.now(UTC).timestamp())
        await wait_for(lambda: true(len(b.worker.assigned) == 4), what="b owning every partition")
        fake.faults.slow_s = 0.0
        want = truth(orders, "douyin", dict.fromkeys(shops, True))
        await wait_settled(stack, timeout=20, what="every push handled")
        await wait_for(lambda: equal(stack, want), timeout=20, what="every order counted once")
        await wait_for(lambda: true(all(any(hi > dropped + 1 for _, s2, _, hi in fake.windows if s2 == s)
                                             for s in shops)), timeout=20, what="b reconciling every shop")  # fmt: skip
        for s in shops:
            ends = sorted({hi for m, s2, _, hi in fake.windows if s2 == s and m == "order.searchList"})
            gaps = [b2 - b1 for b1, b2 in pairwise(ends)]
            assert ends and all(g >= interval - 1 for g in gaps), (s, ends)  # never twice within an interval
    finally:
        await stack.stop()
        await fake.stop()


async def test_the_watermark_survives_a_restart(topics: Settings, migrated_store: Path) -> None:
    """A process reconciles and ends; the next one (its own store handle, HTTP session and
    memory) finds the shop done within the interval, and later starts where it stopped."""
    fake = FakeDouyin()
    url = await fake.start()
    stack = Stack(topics, migrated_store, [douyin_app(url, [shop("1001")])])
    await stack.start()
    try:
        sale(fake, ["1001"], 20, seed=3)

        async def process(owner: str) -> tuple[Reconciler, Apis, ClickHouse]:
            apis = Apis(stack.config, timeout_s=2.0)
            await apis.start()
            store = ClickHouse(stack.settings.clickhouse_dsn)
            await store.open()
            config = ReconcileConfig(stack.settings.topic_orders, owner, interval_s=600, lag_s=0, overlap_s=5)
            reconciler = Reconciler(config, stack.config, stack.runtime.producer, ConnectorState(store), apis,
                                    stack.rooms, StatusBook(owner), stack.metrics, lambda *_: True)  # fmt: skip
            return reconciler, apis, store

        first, apis, store = await process("first")
        await first.tick(datetime.now(UTC))
        assert first.runs == 1
        await apis.close()
        await store.close()
        mark = await stack.state.watermark("douyin", "1001")
        assert mark is not None and mark.owner == "first"
        second, apis, store = await process("second")
        await second.tick(datetime.now(UTC))
        assert second.runs == 0  # reconciled within the interval, by the process before
        calls = len(fake.windows)
        later = datetime.now(UTC) + timedelta(seconds=601)
        await second.tick(later)
        assert second.runs == 1
        (_, _, lo, hi) = next(w for w in fake.windows[calls:] if w[0] == "order.searchList")
        assert lo == int((mark.reconciled_to - timedelta(seconds=5)).timestamp())  # overlapping the last window
        assert hi == int(later.timestamp())
        await apis.close()
        await store.close()
    finally:
        await stack.stop()
        await fake.stop()
