"""The connectors in real processes (issue 20): two ``livesales serve`` receiving 抖店's pushes,
two ``livesales consume`` running the push worker and reconciliation, on the session's Tansu
broker and one ClickHouse (tests.support's chDB-backed HTTP server) that all of them share.
The fake 抖店 runs in this process: its API is the connectors file's ``api_base``, its pushes
go alternately to the two ``serve`` processes, some lost, some repeated, some reordered.

Mid-sale one ``serve`` and one ``consume`` are killed -9 (the consume owning a shop's
raw-push partition, so the shop moves); pushes to the dead ``serve`` fail with a connection
error and count as not delivered (the platform gives up: reconciliation has to find them);
a replacement ``consume`` joins. The stored steps per channel must end equal to the fake's
truth: nothing lost, nothing doubled.

The reconciler's windows end ``reconcile_lag_s`` before now (180 s by default, for the
platforms' late writes): here 2 s (``LIVESALES_TUNING``), so a lost push is recovered within
a test's patience. The raw pushes' topic is this test's own, so no earlier test's pushes
are read again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors.worker import partition_of
from ground.settings import Settings
from ingest.producer import Producer
from ingest.topics import ensure_topics
from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.connectors.harness import BIG, CHANNEL, ROOM, douyin_app, sale, shop, truth
from tests.livesales.roles_support import TOKEN, Role, gather_stop, role_env, write_tokens
from tests.support.offsets import all_committed, committed
from tests.support.process import ClickHouseHTTPProcess

pytestmark = pytest.mark.slow

PARTITIONS = 4  # the raw topic's, as ConnectorService.start creates it
RECONCILE_S = 10  # LIVESALES_RECONCILE_INTERVAL_S's least
LAG_S = 2  # reconciliation windows end this long before now (Tuning.reconcile_lag_s)
ORDERS_PER_STAGE = 100
_OWNS = re.compile(r"connectors owns raw-push partitions \[([0-9, ]*)\]")


def two_shops() -> tuple[str, str]:
    """Shop ids on raw partitions 0 and 1: a two-member group gives them to different members
    (round robin), so killing one consume moves one shop. Ids of this test's own (the raw
    topic is the session's, shared with the other tests)."""
    found: dict[int, str] = {}
    for n in itertools.count(730_001):
        found.setdefault(partition_of("douyin", str(n), PARTITIONS), str(n))
        if 0 in found and 1 in found:
            return found[0], found[1]
    raise AssertionError("unreachable")


LIVE_SHOP, ALL_SHOP = two_shops()  # the first counts live-room orders only, the second every order


def owned(role: Role) -> set[int]:
    """The raw-push partitions the process's worker holds now (its latest assignment)."""
    found = _OWNS.findall(role.text())
    return {int(p) for p in found[-1].split(",") if p.strip()} if found else set()


@dataclass
class Pushes:
    """What the fake 抖店 sent, per serve URL: batches answered 200, batches not delivered."""

    ok: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    undelivered: list[Any] = field(default_factory=list)  # the records of the failed batches


def stage(fake: FakeDouyin, seed: int) -> list[Any]:
    """``ORDERS_PER_STAGE`` more orders over two shops (refunds, partial ones, cancellations);
    their pushes with the fake's faults applied."""
    sale(fake, [LIVE_SHOP, ALL_SHOP], ORDERS_PER_STAGE, seed=seed)
    return fake.take_outbox()


async def send(fake: FakeDouyin, urls: list[str], records: list[Any], log: Pushes, batch: int = 5) -> None:
    """POST ``records`` ``batch`` at a time, batch i to ``urls[i % len(urls)]``, a few in flight;
    a batch the fake could not deliver (its own retries failed) is not delivered."""
    gate = asyncio.Semaphore(4)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def one(i: int) -> None:
            url = urls[(i // batch) % len(urls)]
            chunk = records[i : i + batch]
            body = json.dumps(chunk).encode()
            async with gate:
                status = await fake.post(http, url, body, fake.signed(body))
            if status == 200:
                log.ok[url] = log.ok.get(url, 0) + 1
            else:
                log.failed[url] = log.failed.get(url, 0) + 1
                log.undelivered += chunk

        await asyncio.gather(*(one(i) for i in range(0, len(records), batch)))


async def counts(store: ClickHouse) -> dict[tuple[str, str], tuple[int, int]]:
    """Stored order steps per (channel, status): (steps, Σ amount_fen)."""
    rows = await store.query(
        "SELECT channel_id, toString(status) AS status, count() AS n, sum(amount_fen) AS fen FROM order_steps"
        " GROUP BY channel_id, status"
    )
    return {(str(r["channel_id"]), str(r["status"])): (int(r["n"]), int(r["fen"])) for r in rows}


async def register_room(settings: Settings, store: ClickHouse) -> None:
    """The festival's channel with its 抖店 live room (``channel.v1`` ``platform_room_id``), stored
    before any order: the workers then map the room's orders to it (``RegistryRooms``)."""
    event = {"schema": "channel.v1", "event_id": "reg-festival", "occurred_at": datetime.now(UTC).isoformat(),
             "channel_id": CHANNEL, "platform": "douyin", "title": "宁海长街蛏子网络节",
             "region": {"district": "宁海县", "township": "长街镇"}, "platform_room_id": ROOM}  # fmt: skip
    producer = Producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_all_or_raise([(settings.topic_channels, CHANNEL.encode(), json.dumps(event).encode())])
    finally:
        await producer.stop()

    async def stored() -> bool:
        rows = await store.query("SELECT count() AS n FROM channel_registry WHERE channel_id = {c:String}",
                                 {"c": CHANNEL})  # fmt: skip
        return int(rows[0]["n"]) > 0

    await wait_for(stored, timeout=30, what="the festival's channel registered")


def connector_env(
    topics: Settings, chhttp: ClickHouseHTTPProcess, tmp_path: Path, conf: Path, **extra: str
) -> dict[str, str]:
    """The processes' environment: the connectors file, short reconciliation lag, and a raw
    pushes' topic of this test's own (``raw_topic``, named after the test's orders topic)."""
    env = role_env(topics, chhttp, write_tokens(tmp_path / "tokens.json"), LIVESALES_CONNECTORS_FILE=str(conf),
                   LIVESALES_VALIDATION_PROCESSES="0", **extra)  # fmt: skip
    tuning = json.loads(env.get("LIVESALES_TUNING", "{}"))
    env["LIVESALES_TUNING"] = json.dumps(
        tuning | {"reconcile_lag_s": LAG_S, "connector_pushes_topic": raw_topic(topics)}
    )
    return env


def raw_topic(topics: Settings) -> str:
    return f"{topics.topic_orders}.pushes"


async def raw_committed(settings: Settings) -> bool:
    """The connectors' group committed every raw push (this test's raw topic, all of it)."""
    return await committed(settings.kafka_bootstrap, f"{settings.consumer_group}.connectors",
                           [raw_topic(settings)], PARTITIONS)  # fmt: skip


async def connectors_ready(role: Role) -> None:
    """Ready, its push worker and reconciler started, and holding raw-push partitions."""
    await role.wait_ready()
    await wait_for(lambda: _true("connectors: push worker and reconciliation" in role.text()), timeout=60,
                   what=f"{role.role}'s connectors started")  # fmt: skip


async def _true(value: bool) -> bool:
    return value


async def test_two_serve_two_consume_with_a_kill_9_of_each_count_the_sale_exactly(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    fake = FakeDouyin(seed=13)
    await fake.start()
    conf = tmp_path / "connectors.json"
    app = douyin_app(fake.url, [shop(LIVE_SHOP), shop(ALL_SHOP, live_only=False)])
    conf.write_text(json.dumps({"connectors": [app]}), encoding="utf-8")
    env = connector_env(topics, chhttp, tmp_path, conf, LIVESALES_RECONCILE_INTERVAL_S=str(RECONCILE_S))
    serve_a = Role("serve", env, tmp_path / "serve-a.log")
    serve_b = Role("serve", env, tmp_path / "serve-b.log")
    consume_c = Role("consume", env, tmp_path / "consume-c.log")
    consume_d = Role("consume", env, tmp_path / "consume-d.log")
    consume_e = Role("consume", env, tmp_path / "consume-e.log")  # the replacement
    roles = [serve_a, serve_b, consume_c, consume_d]
    pushes = Pushes()
    try:
        for role in roles:
            role.start()
        await asyncio.gather(serve_a.wait_ready(), serve_b.wait_ready(), connectors_ready(consume_c),
                             connectors_ready(consume_d))  # fmt: skip
        await wait_for(lambda: _true(owned(consume_c) | owned(consume_d) == set(range(PARTITIONS))
                                     and not owned(consume_c) & owned(consume_d) and bool(owned(consume_c))
                                     and bool(owned(consume_d))),
                       timeout=60, what="the raw-push partitions shared by both consumes")  # fmt: skip
        await register_room(topics, http_store)
        urls = [f"{serve_a.url}/connect/douyin", f"{serve_b.url}/connect/douyin"]
        fake.faults.loss, fake.faults.repeat, fake.faults.reorder = 0.10, 0.10, 0.05

        # Stage 1: both serves and both consumes up.
        await send(fake, urls, stage(fake, seed=1), pushes)
        await wait_for(lambda: _nonempty(http_store), timeout=60, what="the first pushes' steps stored")

        # Stage 2: mid-stream, serve A and the consume owning LIVE_SHOP's partition are killed -9.
        victim, survivor = (consume_c, consume_d) if _owner_of(LIVE_SHOP) in owned(consume_c) \
            else (consume_d, consume_c)  # fmt: skip
        moved = [s for s in (LIVE_SHOP, ALL_SHOP) if _owner_of(s) in owned(victim)]
        # The kill falls between stage 2's halves: serve A has answered the first half (the
        # consumes are still working on it), and every batch of the second half sent to A
        # fails. Killing while a task sends would race it: on a fast machine the whole stage
        # could be answered before the kill, and nothing to A would fail.
        records = stage(fake, seed=2)
        half = len(records) // 2 // 5 * 5  # whole batches of send's five
        a_before = pushes.ok.get(urls[0], 0)
        await send(fake, urls, records[:half], pushes)
        assert pushes.ok.get(urls[0], 0) > a_before, "serve A answered stage 2's first half"
        await asyncio.gather(asyncio.to_thread(serve_a.kill), asyncio.to_thread(victim.kill))
        assert [r.proc.returncode for r in (serve_a, victim) if r.proc is not None] == [-9, -9]
        survivor_from = len(survivor.text())
        await send(fake, urls, records[half:], pushes)
        assert pushes.failed.get(urls[0], 0) > 0, "pushes to the killed serve must fail"
        # After the group's session timeout the survivor holds every raw partition, and
        # reconciles the dead one's shops once their interval is out.
        await wait_for(lambda: _true(owned(survivor) == set(range(PARTITIONS))), timeout=60,
                       what="the survivor holding the killed consume's raw partitions")  # fmt: skip
        done = [f"reconciled douyin/{s} " for s in moved]
        await wait_for(lambda: _true(all(d in survivor.text()[survivor_from:] for d in done)), timeout=60,
                       what=f"the survivor reconciling shops {moved}")  # fmt: skip

        # Stage 3: a replacement consume starts and joins (another rebalance) while the pushes
        # arrive; serve A stays dead.
        roles.append(consume_e.start())
        await send(fake, urls, stage(fake, seed=3), pushes)

        want = truth(list(fake.orders.values()), "douyin", {LIVE_SHOP: True, ALL_SHOP: False})
        assert fake.lost and pushes.undelivered and {CHANNEL, f"douyin-shop-{ALL_SHOP}"} <= {c for c, _ in want}
        last: list[Any] = [None]

        async def exact() -> bool:
            last[0] = await counts(http_store)
            return bool(last[0] == want)

        try:
            await wait_for(exact, timeout=120, interval=0.5, what="every channel's steps equal to the fake's truth")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstored: {last[0]}\ntruth: {want}") from None
        await connectors_ready(consume_e)
        await wait_for(lambda: _true(bool(owned(consume_e))), timeout=60, what="the replacement holding partitions")
        # Nothing more on its way: every raw push and every event consumed and committed, still exact.
        await wait_for(lambda: raw_committed(topics), timeout=60, what="every raw push committed")
        await wait_for(lambda: all_committed(topics), timeout=60, what="every order event committed")
        assert await counts(http_store) == want

        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=auth) as http, http.get(f"{serve_b.url}/v1/connectors") as r:
            assert r.status == 200
            status = {e["shop_id"]: e for e in (await r.json())["connectors"]}
        assert set(status) == {LIVE_SHOP, ALL_SHOP}
        assert all(e["last_reconciled_to"] for e in status.values())
        assert sum(e["recovered_steps"] for e in status.values()) > 0  # the lost pushes' steps came from the list
        rows = await http_store.query("SELECT uniqExact(writer) AS n FROM connector_watermarks WHERE kind = 'pushed'")
        assert int(rows[0]["n"]) > 0  # and the others through the push path
        # Every answer the serves gave was a success: the failed pushes got none (connection refused).
        assert set(fake.answers) == {200} and not pushes.failed.get(urls[1]), (fake.answers, pushes.failed)
    finally:
        alive = [r for r in roles if r.proc is not None and r.proc.poll() is None]
        codes = await gather_stop(*alive)
        await fake.stop()
    assert codes == [0] * len(alive), "\n".join(r.text()[-3000:] for r in alive)


async def test_a_serve_process_reports_the_pushes_it_received(
    topics: Settings, chhttp: ClickHouseHTTPProcess, tmp_path: Path
) -> None:
    """docs/CONNECTORS.md "Status and metrics": every process writes its push counters every
    2 s, so ``GET /v1/connectors`` counts the pushes a ``serve`` received."""
    fake = FakeDouyin()
    await fake.start()
    conf = tmp_path / "connectors.json"
    conf.write_text(json.dumps({"connectors": [douyin_app(fake.url, [shop(LIVE_SHOP)])]}), encoding="utf-8")
    env = connector_env(topics, chhttp, tmp_path, conf)
    await ensure_topics(
        topics.kafka_bootstrap, [raw_topic(topics)], partitions=PARTITIONS
    )  # a consume's job, none here
    serve = Role("serve", env, tmp_path / "serve.log").start()
    try:
        await serve.wait_ready()
        fake.create(FakeOrder(str(BIG + 77), LIVE_SHOP, datetime.now(UTC), [("s", "蛏子", 1, 1990)], ROOM))
        assert await fake.send_pushes(f"{serve.url}/connect/douyin") == 1

        async def reported() -> int:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession(headers=auth) as http, http.get(f"{serve.url}/v1/connectors") as r:
                return int((await r.json())["connectors"][0]["pushes"])

        await wait_for(reported, timeout=6, what="the push counted in /v1/connectors")  # flushed every 2 s
    finally:
        codes = await gather_stop(serve)
        await fake.stop()
    assert codes == [0]


def _owner_of(shop_id: str) -> int:
    return partition_of("douyin", shop_id, PARTITIONS)


async def _nonempty(store: ClickHouse) -> bool:
    return bool(await counts(store))
