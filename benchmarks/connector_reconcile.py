"""Phase 3 of ``livesales bench connectors``: one window of the real ``Reconciler`` in this
process against a shop of many orders served by a fake in a process of its own, beside its
raw limits: the same pages fetched and nothing else, and the same number of events produced
bare in pages of the same size.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from benchmarks.common import order_payload
from benchmarks.connector_fakes import RECONCILE_SHOP, connectors_json, epoch_secs, fake_shop
from benchmarks.connector_harness import Setup, Tail, cpu_line, cpu_seconds
from connectors.apis import Apis
from connectors.config import parse_connectors
from connectors.douyin import DouyinApi
from connectors.events import RegistryRooms
from connectors.metrics import ConnectorMetrics
from connectors.reconcile import ReconcileConfig, Reconciler
from connectors.state import ConnectorState
from connectors.status import StatusBook
from ingest.producer import Producer
from ingest.topics import ensure_topics
from processors.store import ClickHouse


async def reconciliation(s: Setup, n: int) -> None:
    """Phase 3: one window of ``n`` orders through the real Reconciler in this process."""
    bootstrap = s.broker.bootstrap
    topic = f"bench-reconcile-{time.time_ns()}"
    await ensure_topics(bootstrap, [topic], partitions=4)
    print(f"reconciliation: one window of a shop with {n:,} orders updated over the last day", flush=True)
    async with fake_shop(n, s.tmp / "shop.log") as (url, want, fake_pid), aiohttp.ClientSession() as http:
        config = parse_connectors(connectors_json(url, [RECONCILE_SHOP]), "bench")
        app, shop = config.shops()[0]
        store = ClickHouse(f"chdb://{s.tmp}/reconcile-ch")
        await store.open()
        producer = Producer(bootstrap)
        await producer.start()
        apis = Apis(config)
        await apis.start()
        state = ConnectorState(store)
        reconciler = Reconciler(ReconcileConfig(topic, "bench"), config, producer, state, apis, RegistryRooms(store),
                                StatusBook("bench"), ConnectorMetrics(CollectorRegistry()),
                                lambda _p, _s: True)  # fmt: skip
        try:
            async with http.get(f"{url}/_calls") as resp:
                calls0: Counter[str] = Counter(await resp.json())
            pids = {"shop fake": fake_pid, "broker": s.broker.pid}
            cpu0 = cpu_seconds(pids)
            started = time.perf_counter()
            result = await reconciler.reconcile(app, shop, await state.watermark("douyin", RECONCILE_SHOP),
                                                datetime.now(UTC))  # fmt: skip
            took, cpu = time.perf_counter() - started, cpu_seconds(pids, cpu0)
            mark = await state.watermark("douyin", RECONCILE_SHOP)
            async with Tail(bootstrap, [topic]) as tail:
                on_topic = await tail.catch_up()
            async with http.get(f"{url}/_calls") as resp:
                calls: Counter[str] = Counter(await resp.json())
            calls.subtract(calls0)
            lists = calls["order.searchList"]
            moved = mark is not None and abs((mark.reconciled_to - result.end).total_seconds()) < 1  # DateTime64(3)
            # the raw limits: the same pages fetched, nothing else; the same events produced bare
            api = apis.get(app)
            if not isinstance(api, DouyinApi):
                raise TypeError("the 抖店 app's API is not DouyinApi")
            list_s, list_orders = await _pages_alone(api, shop, result.start, result.end)
            produce_s = await _produce_pages(bootstrap, topic, on_topic, max(lists, 1))
        finally:
            await apis.close()
            await producer.stop()
            await store.close()
    print(f"{'':<44}{'seconds':>10}{'orders/s':>10}{'events/s':>10}")
    print(f"{'ours: Reconciler, one window':<44}{took:>10.1f}{n / took:>10,.0f}{on_topic / took:>10,.0f}"
          f"   watermark moved: {'yes' if moved else 'NO'}")  # fmt: skip
    print(f"{'raw limit: the same pages fetched alone':<44}{list_s:>10.1f}{list_orders / list_s:>10,.0f}")
    print(f"{'raw limit: bare produce, pages of the same size':<44}{produce_s:>10.1f}{'':>10}"
          f"{on_topic / produce_s:>10,.0f}")  # fmt: skip
    print(f"  {result.orders:,} orders; {result.published:,} events sent and acknowledged, {on_topic:,} on the "
          f"topic, {want:,} implied, {result.recovered:,} noted recovered; {lists:,} order-list pages, "
          f"{calls['afterSale.List']:,} after-sale pages, {sum(calls.values()):,} API calls "
          f"({', '.join(f'{k} {v:,}' for k, v in sorted(calls.items()) if v)})")  # fmt: skip
    print(f"  ours / slower limit: {max(list_s, produce_s) / took:.2f};{cpu_line(cpu)[1:]}", flush=True)


async def _pages_alone(api: DouyinApi, shop: Any, start: datetime, end: datetime) -> tuple[float, int]:
    """The window's after-sale and order-list pages, as the connector asks for them, read
    and counted: what the fake and HTTP cost, without mapping, look-ups or publishing."""
    started, orders = time.perf_counter(), 0
    window = {"update_start_time": epoch_secs(start), "update_end_time": epoch_secs(end)}
    lists = {"update_time_start": epoch_secs(start), "update_time_end": epoch_secs(end), "order_by": "update_time",
             "order_asc": True}  # fmt: skip
    for method, params, key in (("afterSale.List", window, "items"), ("order.searchList", lists, "shop_order_list")):
        page = 0
        while True:
            data = await api.call(shop, method, {**params, "page": page, "size": 100})
            items = data.get(key) or []
            orders += len(items) if key == "shop_order_list" else 0
            if not items or (page + 1) * 100 >= int(data.get("total") or 0):
                break
            page += 1
    return time.perf_counter() - started, orders


async def _produce_pages(bootstrap: str, topic: str, events: int, pages: int) -> float:
    """``events`` benchmark order events in ``pages`` sequential pages, each awaited (acks=all)."""
    rnd = random.Random(3)
    values = [order_payload(i, "reconcile", rnd) for i in range(events)]
    per = max(1, -(-events // pages))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        await producer.send_and_wait(topic, values[0])
        started = time.perf_counter()
        for k in range(0, events, per):
            futures = [await producer.send(topic, v, key=str(i).encode()) for i, v in enumerate(values[k : k + per])]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()
