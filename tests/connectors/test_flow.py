"""The connectors through the real broker and chDB, against the misbehaving fakes.

Counting is the service's own (a ``Runtime``'s consumers): the assertions compare what it
stored with the fake platform's truth.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.check import check_shop
from connectors.model import Notice
from ground.settings import Settings
from localplatforms.douyin import FakeDouyin
from localplatforms.kuaishou import FakeKuaishou
from localplatforms.platform import FakeOrder
from tests.conftest import wait_for
from tests.connectors.harness import (
    BIG,
    CHANNEL,
    ROOM,
    Stack,
    douyin_app,
    equal,
    kuaishou_app,
    sale,
    shop,
    true,
    truth,
    wait_settled,
)  # fmt: skip


async def raw_messages(stack: Stack) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(stack.raw_topic, p) for p in range(4)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes, bytes]] = []
        while sum(ends.values()) > len(out):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out += [(r.key, r.value) for r in records]
        return out
    finally:
        await consumer.stop()


async def test_a_push_answered_with_success_is_on_kafka_and_a_bad_one_is_not(
    topics: Settings, migrated_store: Path
) -> None:
    fake = FakeDouyin()
    url = await fake.start()
    stack = Stack(topics, migrated_store, [douyin_app(url, [shop("1001")])])
    await stack.start()
    try:
        async with aiohttp.ClientSession() as http:
            activation = fake.activation()
            async with http.post(stack.push_url("douyin"), data=activation, headers=fake.signed(activation)) as r:
                assert (r.status, await r.read()) == (200, b'{"code":0,"msg":"success"}')
            fake.create(FakeOrder(str(BIG), "1001", datetime.now(UTC), [("s", "蛏子", 1, 1990)], ROOM))
            body = json.dumps(fake.take_outbox()).encode()
            for headers in ({}, {"app-id": "dy-app", "event-sign": "0" * 32}, fake.signed(body + b" ")):
                async with http.post(stack.push_url("douyin"), data=body, headers=headers) as r:
                    assert r.status == 401
            too_big = b"[" + b" " * (1 << 20) + b"]"
            async with http.post(stack.push_url("douyin"), data=too_big, headers=fake.signed(too_big)) as r:
                assert r.status == 413
            assert await raw_messages(stack) == []  # nothing of the refused pushes was published
            async with http.post(stack.push_url("douyin"), data=body, headers=fake.signed(body)) as r:
                assert (r.status, await r.read()) == (200, b'{"code":0,"msg":"success"}')
            async with http.post(stack.push_url("jd"), data=body) as r:
                assert r.status == 404
        ((key, value),) = await raw_messages(stack)  # answered with success: already on Kafka
        notice = Notice.decode(value)
        assert (key, notice.order_id, notice.kind) == (b"douyin:1001", str(BIG), "created")
        (status,) = await stack.status()
        assert (status["pushes"], status["bad_signatures"]) == (1, 3)
        assert status["last_push_at"] is not None
    finally:
        await stack.stop()
        await fake.stop()


async def test_a_lost_push_is_recovered_once_and_a_repeated_push_counts_once(
    topics: Settings, migrated_store: Path
) -> None:
    fake = FakeDouyin()
    url = await fake.start()
    stack = Stack(topics, migrated_store, [douyin_app(url, [shop("1001")])])
    await stack.start()
    try:
        member = await stack.add_member(reconcile=False)
        t = datetime.now(UTC) - timedelta(hours=1)
        lost, repeated = str(BIG + 1), str(BIG + 2)
        fake.create(FakeOrder(lost, "1001", t, [("s", "蛏子", 2, 1990)], ROOM))
        fake.pay(lost, t + timedelta(seconds=20))
        fake.lost, fake.outbox = fake.outbox, []  # both of its pushes never arrive
        fake.faults.repeat = 1.0
        fake.create(FakeOrder(repeated, "1001", t, [("s", "蛏子", 1, 2990)], ROOM))
        fake.pay(repeated, t + timedelta(seconds=20))
        await fake.send_pushes(stack.push_url("douyin"))
        assert fake.sent == 4  # each push twice
        await wait_settled(stack, what="the pushes' events stored")
        assert await stack.counts() == {(CHANNEL, "created"): (1, 2990), (CHANNEL, "paid"): (1, 2990)}
        app, shop_1001 = stack.config.connectors[0], stack.config.connectors[0].shops[0]
        window = (datetime.now(UTC) - timedelta(hours=2), datetime.now(UTC) + timedelta(seconds=1))
        report = await check_shop(stack.state, member.apis, app, shop_1001, stack.rooms, *window)
        assert (report.orders, report.steps) == (2, 4)
        assert report.missing == (f"douyin:{lost}:created", f"douyin:{lost}:paid")
        result = await member.reconciler.reconcile(stack.config.connectors[0], stack.config.connectors[0].shops[0],
                                                   None, datetime.now(UTC))  # fmt: skip
        assert (result.orders, result.published, result.recovered) == (2, 2, 2)
        want = truth(list(fake.orders.values()), "douyin", {"1001": True})
        await wait_for(lambda: equal(stack, want), what="the lost order counted")
        again = await member.reconciler.reconcile(stack.config.connectors[0], stack.config.connectors[0].shops[0],
                                                  None, datetime.now(UTC))  # fmt: skip
        assert (again.published, again.recovered) == (0, 0)  # counted already: nothing sent twice
        (status,) = await stack.status()
        assert status["recovered_steps"] == 2 and status["last_reconciled_to"] is not None
        assert await stack.counts() == want
        assert (await check_shop(stack.state, member.apis, app, shop_1001, stack.rooms, *window)).missing == ()
    finally:
        await stack.stop()
        await fake.stop()


async def test_festival_sale_with_lost_repeated_reordered_pushes_and_an_api_outage_is_exact(
    topics: Settings, migrated_store: Path
) -> None:
    """400 orders over six hours on two shops (one counts orders outside live rooms), 10% of
    pushes lost, 10% repeated, 5% reordered, the API down while the first half arrives, a
    token expiry: the push path catches up when the API returns, one reconciliation makes
    every channel exact, and the recovered steps are exactly the steps no push delivered."""
    fake = FakeDouyin(seed=7)
    url = await fake.start()
    stack = Stack(topics, migrated_store, [douyin_app(url, [shop("1001"), shop("1002", live_only=False)])])
    await stack.start()
    try:
        member = await stack.add_member(reconcile=False)
        orders = sale(fake, ["1001", "1002"], 400, seed=7)
        fake.faults.loss, fake.faults.repeat, fake.faults.reorder = 0.10, 0.10, 0.05
        pushes = fake.outbox
        fake.outbox = pushes[: len(pushes) // 2]
        fake.faults.down = True
        await fake.send_pushes(stack.push_url("douyin"), batch=5)  # answered: on Kafka, the API being down
        retries = stack.metrics.retries.labels("douyin")
        await wait_for(lambda: true(retries._value.get() > 0), what="the worker waiting on the API")
        assert await stack.counts() == {}
        fake.expire_tokens()
        fake.faults.down = False
        fake.outbox = pushes[len(pushes) // 2 :]
        await fake.send_pushes(stack.push_url("douyin"), batch=5)
        assert fake.lost and fake.answers[200] == fake.sent
        await wait_settled(stack, timeout=45, what="the push path caught up")
        want = truth(orders, "douyin", {"1001": True, "1002": False})
        assert await stack.counts() != want  # the lost pushes are missing
        await member.reconciler.start()
        await wait_for(lambda: equal(stack, want), timeout=30, what="every channel exact after reconciliation")
        status = {s["shop_id"]: s for s in await stack.status()}
        rows = await stack.runtime.store.query(
            "SELECT toString(kind) AS source, uniqExact(writer) AS n FROM connector_watermarks"
            " WHERE kind IN ('pushed', 'recovered') GROUP BY kind")
        by_source = {str(r["source"]): int(r["n"]) for r in rows}
        total = sum(n for n, _ in want.values())
        recovered = status["1001"]["recovered_steps"] + status["1002"]["recovered_steps"]
        assert 0 < recovered == by_source["recovered"] == total - by_source["pushed"]
        assert all(s["last_reconciled_to"] for s in status.values())
        delivered = stack.metrics.pushes.labels("douyin")._value.get()  # messages put on the raw topic
        assert status["1001"]["pushes"] + status["1002"]["pushes"] == delivered >= len(pushes) - len(fake.lost)
        assert stack.metrics.retries.labels("douyin")._value.get() > 0
    finally:
        await stack.stop()
        await fake.stop()


async def test_kuaishou_encrypted_pushes_and_cursor_reconciliation(topics: Settings, migrated_store: Path) -> None:
    fake = FakeKuaishou(seed=5)
    url = await fake.start()
    apps = [kuaishou_app(url, [shop("2001", refresh_token="ks-refresh")], fake.msg_secret)]  # noqa: S106
    stack = Stack(topics, migrated_store, apps)
    await stack.start()
    try:
        await stack.add_member(reconcile=False)
        orders = sale(fake, ["2001"], 60, seed=5)
        fake.faults.loss, fake.faults.repeat = 0.2, 0.2
        async with aiohttp.ClientSession() as http:
            async with http.post(stack.push_url("kuaishou"), data=fake.seal({"test": True})) as r:
                assert (r.status, await r.read()) == (200, b'{"result":1}')
            async with http.post(stack.push_url("kuaishou"), data=b"aGVsbG8gd29ybGQhISEhISEhIQ==") as r:
                assert r.status == 401
        half = len(fake.outbox) // 2
        rest, fake.outbox = fake.outbox[half:], fake.outbox[:half]
        await fake.send_pushes(stack.push_url("kuaishou"))
        await wait_settled(stack, timeout=30, what="the first half's events stored")
        fake.expire_tokens()  # the connector refreshes with the rotated refresh token
        fake.outbox = rest
        await fake.send_pushes(stack.push_url("kuaishou"))
        await wait_settled(stack, timeout=30, what="the push path done")
        want = truth(orders, "kuaishou", {"2001": True})
        member = stack.members[0]
        await member.reconciler.tick(datetime.now(UTC))
        await wait_for(lambda: equal(stack, want), timeout=30, what="kuaishou channels exact")
        (status,) = await stack.status()
        assert status["recovered_steps"] > 0 and status["bad_signatures"] == 1
        assert fake.calls["oauth2.refresh_token"] >= 2 and fake.bad_signs == 0
        assert {m for m, *_ in fake.windows} == {"open.order.cursor.list", "open.seller.order.refund.pcursor.list"}
    finally:
        await stack.stop()
        await fake.stop()
