"""The platform API clients against the fakes: signing, tokens, paging, faults (no broker)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.apis import Apis
from connectors.config import ConnectorsConfig, parse_connectors
from connectors.model import Notice
from connectors.platform import PlatformRefused, PlatformUnavailable
from localplatforms.douyin import FakeDouyin
from localplatforms.kuaishou import FakeKuaishou
from localplatforms.platform import FakeOrder
from tests.connectors.harness import douyin_app, kuaishou_app, shop

SECRETS = ("dy-secret", "ks-secret", "ks-sign")


@pytest.fixture
async def douyin() -> AsyncIterator[tuple[FakeDouyin, ConnectorsConfig, Apis]]:
    fake = FakeDouyin()
    url = await fake.start()
    config = parse_connectors({"connectors": [douyin_app(url, [shop("1001")])]}, "t")
    apis = Apis(config, timeout_s=0.5)
    await apis.start()
    yield fake, config, apis
    await apis.close()
    await fake.stop()


def orders(fake: FakeDouyin | FakeKuaishou, shop_id: str, n: int) -> None:
    t = datetime.now(UTC) - timedelta(hours=2)
    for i in range(n):
        oid = str(6917000000000000000 + i)
        fake.create(FakeOrder(oid, shop_id, t, [("s", "蛏子", 1, 1990)], "7001"))
        fake.pay(oid, t + timedelta(seconds=1))
        if i % 50 == 0:
            fake.refund(oid, str(7000000000000000000 + i), 990, t + timedelta(minutes=5))


async def test_douyin_pages_of_100_tokens_created_and_refreshed(
    douyin: tuple[FakeDouyin, ConnectorsConfig, Apis],
) -> None:
    fake, config, apis = douyin
    orders(fake, "1001", 250)
    app, s = config.connectors[0], config.connectors[0].shops[0]
    now = datetime.now(UTC)
    got = [o async for page in apis.get(app).updated(s, now - timedelta(days=2), now + timedelta(seconds=1))
           for o in page]  # fmt: skip
    # windows of a day at most, bounds inclusive (not documented): an order updated on a
    # boundary second comes twice, which the event ids make harmless
    by_id = {o.order_id: o for o in got}
    assert len(by_id) == 250 and sum(len(o.refunds) for o in by_id.values()) == 5 and fake.bad_signs == 0
    assert {(lo, hi) for m, _, lo, hi in fake.windows if m == "order.searchList"} == {
        (int((now - timedelta(days=2)).timestamp()), int((now - timedelta(days=1)).timestamp())),
        (int((now - timedelta(days=1)).timestamp()), int(now.timestamp())),
        (int(now.timestamp()), int((now + timedelta(seconds=1)).timestamp())),
    }
    assert fake.calls["token.create"] == 1
    fake.expire_tokens()
    listed = fake.calls["afterSale.List"]
    order = await apis.get(app).order(s, Notice("douyin", "1001", "6917000000000000001", "paid", "", now))
    assert order is not None and order.paid_fen == 1990 and order.room_id == "7001" and not order.refunds
    assert fake.calls["token.refresh"] == 1  # refused token: refreshed once, the call repeated
    assert fake.calls["afterSale.List"] == listed  # no after-sale on the order: its detail alone
    refunded = await apis.get(app).order(s, Notice("douyin", "1001", "6917000000000000000", "paid", "", now))
    assert refunded is not None and [r.amount_fen for r in refunded.refunds] == [990]


async def test_douyin_faults_map_to_retry_or_give_up(
    douyin: tuple[FakeDouyin, ConnectorsConfig, Apis], caplog: pytest.LogCaptureFixture
) -> None:
    fake, config, apis = douyin
    app, s = config.connectors[0], config.connectors[0].shops[0]
    notice = Notice("douyin", "1001", "404", "paid", "", datetime.now(UTC))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PlatformRefused):  # an order the platform does not know: no retry helps
        await apis.get(app).order(s, notice)
    fake.faults.down = True
    with pytest.raises(PlatformUnavailable, match="HTTP 503"):
        await apis.get(app).order(s, notice)
    fake.faults.down, fake.faults.slow_s = False, 1.0
    with pytest.raises(PlatformUnavailable, match=r"order\.orderDetail"):
        await apis.get(app).order(s, notice)
    fake.faults.slow_s, fake.faults.rate_per_s = 0.0, 0
    with pytest.raises(PlatformUnavailable, match="HTTP 429"):
        await apis.get(app).order(s, notice)
    for secret in SECRETS:
        assert secret not in caplog.text


async def test_kuaishou_cursor_pages_refund_days_and_rotating_refresh_tokens() -> None:
    fake = FakeKuaishou()
    url = await fake.start()
    config = parse_connectors({"connectors": [kuaishou_app(url, [shop("2001", refresh_token="ks-refresh")],  # noqa: S106
                                                           fake.msg_secret)]}, "t")  # fmt: skip
    apis = Apis(config, timeout_s=1.0)
    await apis.start()
    try:
        orders(fake, "2001", 150)
        app, s = config.connectors[0], config.connectors[0].shops[0]
        now = datetime.now(UTC)
        got = [o async for page in apis.get(app).updated(s, now - timedelta(days=3), now + timedelta(seconds=1))
               for o in page]  # fmt: skip
        by_id = {o.order_id: o for o in got}
        assert len(by_id) == 150 and sum(len(o.refunds) for o in by_id.values()) == 3 and fake.bad_signs == 0
        refund_windows = [w for w in fake.windows if w[0] == "open.seller.order.refund.pcursor.list"]
        assert len(refund_windows) == 4  # three days and a second, a day at most each
        fake.expire_tokens()
        order = await apis.get(app).order(s, Notice("kuaishou", "2001", got[0].order_id, "paid", "", now))
        assert order is not None and order.room_id == "7001" and order.paid_fen == 1990
        assert fake.calls["oauth2.refresh_token"] == 2 and len(fake.refresh_tokens) == 1  # rotated
    finally:
        await apis.close()
        await fake.stop()
