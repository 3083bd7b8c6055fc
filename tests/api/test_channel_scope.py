"""One channel, one answer (issue 10 item 10): a channel is placed once, by its registry
entry, else by its earliest order, and every view of a scoped token agrees on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth, dataset, order, store_events
from tests.api.test_channels import channel

Client = TestClient[Any, Any]
TEA = ("tea", "望海茶", 1, 1500, 100)


def moving_events() -> list[dict[str, Any]]:
    return [
        # "mover" starts in 长街镇, its later orders carry 桃源街道: it stays a 长街镇 channel
        order("m-1", "m1", "paid", "2020-02-29T10:00:00+08:00", "mover", [TEA]),
        order("m-2", "m2", "paid", "2020-02-29T10:30:00+08:00", "mover", [TEA], township="桃源街道"),
        order("m-3", "m3", "paid", "2020-02-29T10:40:00+08:00", "mover", [TEA], township="桃源街道"),
        # "comer" starts in 桃源街道 and later sells from 长街镇: never a 长街镇 channel
        order("c-1", "c1", "paid", "2020-02-29T10:00:00+08:00", "comer", [TEA], township="桃源街道"),
        order("c-2", "c2", "paid", "2020-02-29T10:30:00+08:00", "comer", [TEA]),
        # "listed": its orders say 长街镇, its registry entry 象山县/石浦镇: the registry wins
        order("l-1", "l1", "paid", "2020-02-29T10:00:00+08:00", "listed", [TEA]),
        channel("r-listed", "listed", "2020-02-28T10:00:00+08:00", "石浦海鲜节", platform="douyin",
                district="象山县", township="石浦镇"),
    ]  # fmt: skip


@pytest.fixture
async def client(api_settings: Settings, clickhouse: ClickHouse) -> AsyncIterator[Client]:
    await store_events(clickhouse, dataset() + moving_events())
    app = create_app(api_config(api_settings), clickhouse, Metrics(), None, lambda: True)
    async with TestClient(TestServer(app)) as c:
        yield c


async def status_of(client: Client, path: str, role: str) -> int:
    resp = await client.get(path, headers=auth(role))
    await resp.read()
    return resp.status


async def pivot_channels(client: Client, role: str, extra: str = "") -> dict[str, int]:
    resp = await client.get(f"/v1/pivot?dataset=orders&rows=channel_id&measure=paid_orders{extra}", headers=auth(role))
    body = await resp.json()
    assert resp.status == 200, body
    return {k[0]: v for k, v in zip(body["row_keys"], body["row_totals"], strict=True)}


async def listed(client: Client, role: str) -> set[str]:
    resp = await client.get("/v1/channels?limit=1000", headers=auth(role))
    return {c["channel_id"] for c in (await resp.json())["channels"]}


@pytest.mark.parametrize("role", ["township", "district", "all"])
async def test_pages_list_and_pivot_agree_on_every_channel(client: Client, role: str) -> None:
    pivot = await pivot_channels(client, role)
    pivot_minutely = await pivot_channels(client, role, "&from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z")
    in_list = await listed(client, role)
    for cid in ("mover", "comer", "listed", "nh-live", "nh-other", "xs-live", "store-f2"):
        statuses = {await status_of(client, f"/v1/channels/{cid}/{what}", role) for what in ("summary", "minutes")}
        assert len(statuses) == 1, (cid, statuses)
        visible = statuses == {200}
        assert (cid in pivot) == visible == (cid in in_list) == (cid in pivot_minutely), (role, cid)
        if visible:  # the page counts what the pivot counts: all of the channel's orders
            resp = await client.get(f"/v1/channels/{cid}/summary", headers=auth(role))
            assert (await resp.json())["paid_orders"] == pivot[cid] == pivot_minutely[cid]


async def test_the_township_sees_its_channels_with_all_their_orders(client: Client) -> None:
    assert await listed(client, "township") == {"nh-live", "mover"}
    resp = await client.get("/v1/channels/mover/summary", headers=auth("township"))
    body = await resp.json()
    assert (body["township"], body["paid_orders"], body["gmv_fen"]) == ("长街镇", 3, 4500)
    assert await status_of(client, "/v1/channels/comer/summary", "township") == 404
    assert await status_of(client, "/v1/channels/listed/live", "township") == 404
    # the registry place is what the list and the pages show
    resp = await client.get("/v1/channels/listed/summary", headers=auth("all"))
    body = await resp.json()
    assert (body["district"], body["township"], body["title"]) == ("象山县", "石浦镇", "石浦海鲜节")
