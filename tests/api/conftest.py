"""An API over real embedded ClickHouse, filled through the real write path."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.batch import prepare
from processors.store import ClickHouse
from processors.writer import Writer
from tests.support.settings import tuned

TOKENS = {
    "all": {"token": "tok-all-000000", "name": "bureau", "scope": "all", "ingest": True},
    "reader": {"token": "tok-reader-0000", "name": "reader", "scope": "all", "ingest": False},
    "district": {"token": "tok-district-000", "name": "ninghai", "scope": "district:宁海县", "ingest": False},
    "township": {"token": "tok-township-000", "name": "changjie", "scope": "township:宁海县/长街镇", "ingest": False},
}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]['token']}"}


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes


def order(eid: str, oid: str, status: str, at: str, channel: str, items: list[tuple[str, str, int, int, int | None]],
          platform: str = "douyin", merchant: str = "coop", district: str = "宁海县",
          township: str | None = "长街镇") -> dict[str, Any]:  # fmt: skip
    its = []
    for sku, name, q, price, grams in items:
        it: dict[str, Any] = {"sku": sku, "name": name, "quantity": q, "unit_price_fen": price}
        if grams is not None:
            it["weight_g"] = grams
        its.append(it)
    region = {"district": district} | ({"township": township} if township else {})
    return {
        "schema": "order.v1", "event_id": eid, "occurred_at": at, "order_id": oid, "status": status,
        "channel_id": channel, "platform": platform, "merchant_id": merchant, "region": region,
        "items": its, "amount_fen": sum(q * p for _, _, q, p, _ in items),
    }  # fmt: skip


def stats(eid: str, at: str, channel: str, viewers: int, views: int) -> dict[str, Any]:
    return {"schema": "stream_stats.v1", "event_id": eid, "occurred_at": at, "channel_id": channel,
            "platform": "douyin", "viewers_online": viewers, "views_total": views}  # fmt: skip


def firm(eid: str, fid: str, platform: str, district: str, export: bool, status: str, at: str) -> dict[str, Any]:
    return {"schema": "onboarding.v1", "event_id": eid, "occurred_at": at, "firm_id": fid,
            "firm_name": f"宁波{fid}有限公司", "platform": platform, "district": district,
            "export_oriented": export, "status": status}  # fmt: skip


C25 = ("clam-2.5kg", "长街蛏子 2.5kg 装", 1, 6800, 2500)


def dataset() -> list[dict[str, Any]]:
    A = "nh-live"
    o1_paid = order("a-o1-p", "o1", "paid", "2020-02-29T10:01:20+08:00", A, [C25])
    events = [
        order("a-o1-c", "o1", "created", "2020-02-29T10:00:10+08:00", A, [C25]),
        o1_paid,
        o1_paid | {"event_id": "a-o1-p-retry"},  # webhook retry: same step, new event id
        o1_paid,  # exact redelivery
        order("a-o2-p", "o2", "paid", "2020-02-29T02:01:50Z", A, [("clam-5kg", "长街蛏子 5kg 装", 2, 12800, 5000)]),
        order("a-o3-p", "o3", "paid", "2020-02-29T10:05:00+08:00", A, [("clam-2.5kg", "长街蛏子 2.5kg 装", 3, 6800, 2500)]),
        order("a-o3-r", "o3", "refunded", "2020-02-29T11:00:00+08:00", A,
              [("clam-2.5kg", "长街蛏子 2.5kg 装", 3, 6800, 2500)]),
        stats("s1", "2020-02-29T10:01:00+08:00", A, 50, 100),
        stats("s2", "2020-02-29T10:01:30+08:00", A, 70, 180),
        stats("s3", "2020-02-29T10:07:00+08:00", A, 40, 300),
        order("b-o5-p", "o5", "paid", "2020-02-29T10:02:00+08:00", "xs-live", [("fish", "石浦带鱼", 1, 1000, None)],
              platform="kuaishou", district="象山县", township="石浦镇"),
        order("c-o6-p", "o6", "paid", "2020-02-29T10:03:00+08:00", "nh-other", [("tea", "望海茶", 1, 1500, 100)],
              township="桃源街道"),
        firm("f1-on", "f1", "pinduoduo", "北仑区", True, "onboarded", "2020-04-14T09:30:00+08:00"),
        firm("f1-on-retry", "f1", "pinduoduo", "北仑区", True, "onboarded", "2020-04-14T09:30:00+08:00"),
        firm("f2-on", "f2", "taobao", "宁海县", False, "onboarded", "2020-04-20T09:30:00+08:00"),
        firm("f3-on", "f3", "pinduoduo", "宁海县", True, "onboarded", "2020-05-02T09:30:00+08:00"),
        firm("f3-wd", "f3", "pinduoduo", "宁海县", True, "withdrawn", "2020-05-20T09:30:00+08:00"),
        order("d-1", "p1", "paid", "2020-04-15T12:00:00+08:00", "store-f1", [("tv", "电视", 1, 5000, None)],
              platform="pinduoduo", merchant="f1", district="北仑区", township=None),
        order("d-2", "p2", "paid", "2020-04-21T12:00:00+08:00", "store-f2", [("fan", "风扇", 1, 7000, None)],
              platform="taobao", merchant="f2", township=None),
        order("d-3", "p3", "paid", "2020-05-03T12:00:00+08:00", "store-f3", [("pot", "锅", 1, 3000, None)],
              platform="pinduoduo", merchant="f3", township=None),
    ]
    # a late arrival: paid at 09:30, delivered last
    events.append(order("a-o4-p", "o4", "paid", "2020-02-29T09:30:00+08:00", A, [C25]))
    return events


async def store_events(ch: ClickHouse, events: list[dict[str, Any]]) -> None:
    writer = Writer(ch)
    await writer.open()
    recs = [Rec("t", 0, i, json.dumps(e, ensure_ascii=False).encode()) for i, e in enumerate(events)]
    for k in range(0, len(recs), 5):  # several batches, so cross-batch dedupe is exercised too
        batch = prepare(recs[k : k + 5])
        assert not batch.dead_letters, batch.dead_letters
        await writer.store(batch.rows.values())


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": list(TOKENS.values())}, ensure_ascii=False), encoding="utf-8")
    return tuned(settings, **{"api_tokens_file": path, "api_rate_per_s": 1000.0})


@pytest.fixture
async def loaded(clickhouse: ClickHouse) -> ClickHouse:
    await store_events(clickhouse, dataset())
    return clickhouse


@pytest.fixture
async def client(api_settings: Settings, loaded: ClickHouse) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(api_config(api_settings), loaded, Metrics(), None, lambda: True)
    async with TestClient(TestServer(app)) as c:
        yield c
