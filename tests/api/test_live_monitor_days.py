"""The live_monitor pivot read from whole +08:00 days (the ``p_live_keys`` projection,
migration 14) answers exactly what reading the paid order rows answers, and is taken only
when it can: tz +08:00 and each bound on a +08:00 midnight or outside the stored times.
Real chDB.

The reference is the dataset's source as it was before migration 13 (``ROWS_SOURCE``,
verbatim: products as (platform, sku) string tuples, not the 128-bit keys the dataset now
counts), run through the same pivot builder, so cells, totals over their own span, region
scopes and limits are compared as the API serves them.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from api.auth import Scope
from api.params import TimeParams
from api.queries.live_monitor import MEASURES, SOURCE
from api.queries.pivot import DATASETS, PivotRequest, grouped_pivot, run_pivot
from processors.store import ClickHouse
from tests.api.conftest import order, store_events

ROWS_SOURCE = """(
    SELECT o.platform AS platform, o.district AS district, o.township AS township,
           o.occurred_at AS occurred_at, o.channel_id AS channel_id, o.amount_fen AS amount_fen,
           arrayMap(s -> tuple(o.platform, s), o.`items.sku`) AS products,
           ifNull(h.host, '') AS host
    FROM order_steps AS o
    LEFT JOIN (
        SELECT channel_id, argMax(host, (occurred_at, event_id)) AS host
        FROM channel_registry GROUP BY channel_id
    ) AS h ON o.channel_id = h.channel_id
    WHERE o.status = 'paid'
)"""

CLAM = ("clam", "长街蛏子", 1, 6800, 2500)
SHRIMP = ("shrimp", "白虾", 2, 3000, 500)
FISH = ("fish", "大黄鱼", 1, 9900, 1000)
CRAB = ("crab", "梭子蟹", 3, 4500, None)

# (channel, platform, district, township): a township's name repeats in two districts
PLACES = {
    "a": ("douyin", "宁海县", "长街镇"),
    "b": ("douyin", "宁海县", "桃源街道"),
    "c": ("kuaishou", "象山县", "石浦镇"),
    "d": ("taobao", "宁海县", "长街镇"),
    "e": ("douyin", "象山县", "长街镇"),
}
# Around +08:00 midnights (16:00Z), month ends and an ISO week's end (2026-05-03 is a Sunday).
TIMES = (
    "2026-04-30T15:59:59.999Z", "2026-04-30T16:00:00Z", "2026-05-01T10:00:00+08:00",
    "2026-05-01T23:59:00+08:00", "2026-05-02T00:00:00+08:00", "2026-05-02T11:30:00+08:00",
    "2026-05-03T23:30:00+08:00", "2026-05-04T00:30:00+08:00", "2026-05-31T18:00:00Z",
    "2026-06-15T12:00:00+08:00",
)  # fmt: skip
Item = tuple[str, str, int, int, int | None]
BASKETS: tuple[list[Item], ...] = ([CLAM, SHRIMP], [CLAM], [FISH], [CRAB, CLAM], [SHRIMP], [])


def registry(eid: str, channel: str, host: str | None, at: str) -> dict[str, Any]:
    platform, district, township = PLACES[channel]
    event: dict[str, Any] = {"schema": "channel.v1", "event_id": eid, "occurred_at": at, "channel_id": channel,
                             "platform": platform, "title": "专场", "region": {"district": district, "township": township}}  # fmt: skip
    return event | ({"host": host} if host else {})


def events() -> list[dict[str, Any]]:
    """Paid, created and refunded steps of five channels (one never registered) over days,
    weeks and months; hosts shared, re-registered (the latest wins) and missing."""
    out = [
        registry("r-a", "a", "小蛏", TIMES[0]),
        registry("r-b", "b", "小蛏", TIMES[0]),  # the same host on another channel
        registry("r-c1", "c", "阿海", TIMES[0]),
        registry("r-c2", "c", "阿浪", TIMES[5]),  # re-registered: 阿浪 wins
        registry("r-d", "d", None, TIMES[0]),  # registered without a host
    ]
    n = 0
    for i, at in enumerate(TIMES):
        for j, channel in enumerate(PLACES):
            if (i + j) % 3 == 2:
                continue
            platform, district, township = PLACES[channel]
            basket = BASKETS[(i * 2 + j) % len(BASKETS)] or [CLAM]
            for status in ("created", "paid") if (i + j) % 4 else ("paid", "refunded"):
                n += 1
                out.append(order(f"e{n}", f"o{i}-{channel}", status, at, channel, basket, platform=platform,
                                 district=district, township=township))  # fmt: skip
    return out


@pytest.fixture
async def sales(clickhouse: ClickHouse) -> ClickHouse:
    await store_events(clickhouse, events())
    return clickhouse


def span(**kw: str) -> TimeParams:
    return TimeParams.model_validate(kw)


BY_DAY = {  # bounds read from whole +08:00 days
    "no bounds": span(),
    "+08:00 midnights": span(from_="2026-05-01T00:00:00+08:00", to="2026-05-03T00:00:00+08:00"),
    "a midnight written in Z": span(from_="2026-04-30T16:00:00Z", to="2026-06-01T00:00:00+08:00"),
    "from only": span(from_="2026-05-02T00:00:00+08:00"),
    "to only": span(to="2026-05-02T00:00:00+08:00"),
    "before and after the stored times": span(from_="1999-06-01T05:00:00Z", to="2250-01-01T03:00:00Z"),
}
BY_ROWS = {  # the fallback: the order rows
    "bound inside a day": span(from_="2026-05-01T12:00:00+08:00", to="2026-05-03T00:00:00+08:00"),
    "to inside a day": span(to="2026-05-02T11:30:00+08:00"),
    "tz +05:00 midnights": span(from_="2026-05-01T00:00:00+05:00", to="2026-05-04T00:00:00+05:00", tz="+05:00"),
    "tz -05:00, no bounds": span(tz="-05:00"),
}
SHAPES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("district",), ("day",)),
    (("platform", "township"), ("week",)),
    (("month",), ("district", "platform")),
    ((), ()),  # the total only
    (("platform",), ()),  # rows only
    ((), ("day",)),  # columns only
)
SCOPES = (Scope(), Scope.parse("district:宁海县"), Scope.parse("township:宁海县/长街镇"))


async def explain(ch: ClickHouse, tp: TimeParams) -> str:
    """The plan of a pivot-like read of the source, with its projections and key ranges."""
    lo, hi = tp.bounds()
    sql = f"EXPLAIN indexes = 1, projections = 1 SELECT uniqExactArray(products) FROM {SOURCE} AS src"  # noqa: S608
    plan = await ch.query(sql, {"lo": lo, "hi": hi, "off": tp.offset_seconds})
    return "\n".join(str(v) for r in plan for v in r.values())


async def uses_days(ch: ClickHouse, tp: TimeParams) -> bool:
    """Whether the source reads the day rows of ``p_live_keys`` for these bounds."""
    return "ReadFromMergeTree (p_live_keys)" in await explain(ch, tp)


async def assert_same_answers(ch: ClickHouse, tp: TimeParams) -> None:
    rows_ds = replace(DATASETS["live_monitor"], source=ROWS_SOURCE)
    seen = 0
    # every shape with every measure, the scopes in turn (each scope meets every shape and
    # measure across the cases; all three each time cost a minute of the suite)
    for k, ((rows, cols), measure) in enumerate(itertools.product(SHAPES, MEASURES)):
        req = PivotRequest("live_monitor", rows, cols, measure)
        scope = SCOPES[k % len(SCOPES)]
        got = await run_pivot(ch, req, scope, tp)
        want = await grouped_pivot(ch, req, scope, tp, rows_ds, None)
        assert got == want, (rows, cols, measure, scope)
        seen += bool(want["total"])
    assert seen > len(SHAPES) * len(MEASURES) // 2  # the cases counted something


async def test_whole_days_answer_as_the_rows_do(sales: ClickHouse) -> None:
    for name, tp in BY_DAY.items():  # one store for all the cases: its set-up costs as much as a case
        assert await uses_days(sales, tp), name
        await assert_same_answers(sales, tp)


async def test_other_bounds_read_the_rows(sales: ClickHouse) -> None:
    for name, tp in BY_ROWS.items():
        assert not await uses_days(sales, tp), name
        await assert_same_answers(sales, tp)


async def test_the_day_rows_come_from_the_projection_range_of_paid_days(sales: ClickHouse) -> None:
    """EXPLAIN names p_live_keys and its key narrowing to the paid rows of the asked days; the
    order-row branch, constant false, reads no part."""
    text = await explain(sales, BY_DAY["+08:00 midnights"])
    assert "ReadFromMergeTree (p_live_keys)" in text
    assert "(status in [2, 2])" in text  # paid = 2
    assert "Filter column: 0" in text  # the order rows' branch
    assert text.count("ReadFromMergeTree") == 3  # p_live_keys, the (empty) rows branch, the registry


async def test_a_day_is_the_callers_day_at_its_edges(sales: ClickHouse) -> None:
    """15:59:59.999Z is the +08:00 day before 16:00Z: each lands on its own day."""
    req = PivotRequest("live_monitor", (), ("day",), "live_sessions")
    got = await run_pivot(sales, req, Scope(), BY_DAY["no bounds"])
    days = [k[0] for k in got["col_keys"]]
    assert days[:2] == ["2026-04-30", "2026-05-01"]


async def test_the_keys_projection_replaces_the_sku_strings_one(clickhouse: ClickHouse) -> None:
    """Migration 14 drops p_live: every insert pays for one live_monitor projection, not two."""
    rows = await clickhouse.query(
        "SELECT name FROM system.projections WHERE database = currentDatabase() AND table = 'order_steps'"
    )
    names = {r["name"] for r in rows}
    assert "p_live_keys" in names
    assert "p_live" not in names
