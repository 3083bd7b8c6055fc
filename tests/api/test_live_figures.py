"""The 直播大屏 figures of contract v1.2 §6 (``gpm_fen``, ``viewers_avg``, ``refund_rate``)
against real chDB, filled through the real write path (tests/api/conftest.py).

Each case is built so that a float or banker's rounding, a mean over minutes instead of
samples, or a rate over the wrong denominator gives a different answer than the one here.
"""

from __future__ import annotations

from typing import Any

import pytest

from api.auth import Scope
from api.params import TimeParams
from api.queries import channels as q
from processors.store import ClickHouse
from tests.api.conftest import order, stats, store_events

AT = "2020-03-01T10:0{}:00+08:00"
ITEM = ("egg", "土鸡蛋 30 枚", 1, 0, None)  # unit price set per order below


def paid(eid: str, oid: str, fen: int, minute: int = 0, status: str = "paid", channel: str = "fig") -> dict[str, Any]:
    return order(eid, oid, status, AT.format(minute), channel, [(*ITEM[:3], fen, None)])


async def summary_of(ch: ClickHouse, channel: str) -> dict[str, Any]:
    body = await q.summary(ch, channel, Scope(), TimeParams())
    assert body is not None
    return body


def test_half_up_is_exact_on_ties_and_big_integers() -> None:
    assert [q.half_up(n, 2) for n in (1, 3, 5, 7)] == [1, 2, 3, 4]  # round() would give 0, 2, 2, 4
    assert q.half_up(2, 3) == 1 and q.half_up(1, 3) == 0
    big = 10**12 * 1000 + 1  # past 2**53: float division would lose the last unit
    assert q.half_up(big * 2 + 1, 2) == big + 1


async def test_figures_are_exact_integers_with_half_up_ties(clickhouse: ClickHouse) -> None:
    # GMV 1,001 + 500 = 1,501 fen over 2,000 views: 750.5 -> 751 (banker's rounding: 750)
    # samples 3, 4 in one minute and 4 in the next: mean 11/3 = 3.67 -> 4 (the mean of the
    # per-minute peaks, (4 + 4) / 2, would be 4 too, so a fourth sample tips it: 3,4,4,2 -> 3.25 -> 3)
    # refunds: 1 of 3 paid orders -> 0.3333 (4 decimals)
    await store_events(clickhouse, [
        paid("f1", "o1", 1001), paid("f2", "o2", 500, minute=1), paid("f3", "o3", 0, minute=2),
        paid("f1-r", "o1", 1001, minute=3, status="refunded"),
        stats("s1", AT.format(0), "fig", 3, 1000), stats("s2", "2020-03-01T10:00:30+08:00", "fig", 4, 1500),
        stats("s3", AT.format(1), "fig", 4, 2000), stats("s4", "2020-03-01T10:01:30+08:00", "fig", 2, 1800),
    ])  # fmt: skip
    body = await summary_of(clickhouse, "fig")
    assert body["gmv_fen"] == 1501 and body["views_total"] == 2000 and body["paid_orders"] == 3
    assert body["gpm_fen"] == 751 and type(body["gpm_fen"]) is int
    assert body["viewers_avg"] == 3 and type(body["viewers_avg"]) is int  # 13 / 4 = 3.25
    assert body["refund_rate"] == 0.3333
    assert body["avg_order_fen"] == 500  # 1501 / 3 = 500.33


async def test_half_a_viewer_rounds_up_and_refunds_may_exceed_orders(clickhouse: ClickHouse) -> None:
    # two refunded steps against one paid order (o9's payment was never seen here): rate 2.0, not capped
    twice = [paid("h-r1", "o1", 300, minute=2, status="refunded", channel="half"),
             paid("h-r2", "o9", 200, minute=3, status="refunded", channel="half")]  # fmt: skip
    await store_events(clickhouse, [
        paid("h1", "o1", 999, channel="half"), *twice,
        stats("h-s1", AT.format(0), "half", 2, 3), stats("h-s2", AT.format(1), "half", 3, 7),
        stats("h-s2", AT.format(1), "half", 3, 7),  # a redelivery is one sample, not two
    ])  # fmt: skip
    body = await summary_of(clickhouse, "half")
    assert body["viewers_avg"] == 3  # (2 + 3) / 2 = 2.5 -> 3, half up (round() gives 2)
    assert body["gpm_fen"] == 142714  # 999,000 / 7 = 142,714.29
    assert body["refunded_orders"] == 2 and body["refund_rate"] == 2.0


async def test_refund_rate_rounds_its_fifth_decimal_half_up(clickhouse: ClickHouse) -> None:
    # 1 refund of 32 paid orders = 0.03125 exactly: 0.0313 (round(0.03125, 4) gives 0.0312)
    orders = [paid(f"r{i}", f"o{i}", 100, minute=i % 10, channel="rate") for i in range(32)]
    await store_events(clickhouse, [*orders, paid("r0-r", "o0", 100, minute=9, status="refunded", channel="rate")])
    body = await summary_of(clickhouse, "rate")
    assert (body["paid_orders"], body["refunded_orders"]) == (32, 1)
    assert body["refund_rate"] == 0.0313


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # no stream stats at all: no views, no samples
        ([paid("n1", "o1", 100, channel="none")], {"gpm_fen": None, "viewers_avg": None, "refund_rate": 0.0}),
        # stream stats with 0 views: GPM undefined, the viewers still average
        ([paid("n2", "o1", 100, channel="none"), stats("n-s", AT.format(0), "none", 6, 0)],
         {"gpm_fen": None, "viewers_avg": 6, "refund_rate": 0.0}),
        # views but no paid order: GPM is 0 (gmv 0), the refund rate undefined
        ([stats("n-s2", AT.format(0), "none", 0, 50),
          order("n3", "o2", "created", AT.format(0), "none", [("egg", "土鸡蛋", 1, 100, None)])],
         {"gpm_fen": 0, "viewers_avg": 0, "refund_rate": None}),
    ],
)  # fmt: skip
async def test_null_and_zero_cases(clickhouse: ClickHouse, events: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    await store_events(clickhouse, events)
    body = await summary_of(clickhouse, "none")
    assert {k: body[k] for k in expected} == expected


async def test_route_serves_the_figures(client: Any) -> None:
    from tests.api.conftest import auth

    resp = await client.get("/v1/channels/xs-live/summary", headers=auth("reader"))
    body = await resp.json()
    assert resp.status == 200
    # xs-live: one paid order, no stream stats
    assert (body["gpm_fen"], body["viewers_avg"], body["refund_rate"]) == (None, None, 0.0)
