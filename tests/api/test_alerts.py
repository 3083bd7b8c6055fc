"""The alerts endpoint over real chDB, and events -> broker -> consumers -> alerts end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import Scope
from api.queries.alerts import alerts_of, channel_alerts
from ground.metrics import Metrics
from ground.settings import Settings
from ingest.producer import Producer
from livesales.runtime import Runtime
from livesales.wiring import api_config, thresholds
from livesales.wiring import topics as topics_of
from processors.store import ClickHouse
from tests.api.conftest import C25, auth, order, stats
from tests.api.test_channels import get
from tests.conftest import wait_for
from tests.support.settings import tuned

Client = TestClient[Any, Any]


def brief(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    return [(a["rule"], a["state"], a["since"], a["until"]) for a in alerts]


async def test_alerts_of_a_replayed_sale_follow_its_clock(client: Client) -> None:
    """nh-live: paid at 09:30, 10:01 (two), 10:05, a refund at 11:00 (its clock); stored
    just now, so it is live. Silence fires 15 quiet minutes after 09:30 and clears with
    10:01's orders, fires again at 10:21 and lasts; the hour 09:30-10:30 held 4 orders and
    10:30-10:45 none, so pace_drop fires at 10:45 (the first minute it can)."""
    body = await get(client, "/v1/channels/nh-live/alerts", role="township")
    assert body["channel_id"] == "nh-live"
    assert brief(body["alerts"]) == [
        ("pace_drop", "firing", "2020-02-29T10:45:00+08:00", None),
        ("silence", "firing", "2020-02-29T10:21:00+08:00", None),
        ("silence", "cleared", "2020-02-29T09:46:00+08:00", "2020-02-29T10:02:00+08:00"),
    ]
    assert body["alerts"][1]["message"] == "已连续 54 分钟没有支付订单（阈值 15 分钟）"
    assert body["alerts"][2]["message"].endswith("已恢复成交")
    utc = await get(client, "/v1/channels/nh-live/alerts?tz=%2B00:00")
    assert utc["alerts"][0]["since"] == "2020-02-29T02:45:00+00:00"


async def test_alerts_are_scope_checked_like_the_other_channel_routes(client: Client) -> None:
    await get(client, "/v1/channels/xs-live/alerts", role="township", status=404)
    await get(client, "/v1/channels/nope/alerts", status=404)
    assert (await client.get("/v1/channels/nh-live/alerts")).status == 401
    assert (await get(client, "/v1/channels/xs-live/alerts", role="district", status=404))["error"]["code"] == "not_found"


async def test_thresholds_come_from_settings(api_settings: Settings, loaded: ClickHouse) -> None:
    settings = tuned(api_settings, **{"alert_silence_minutes": 60})
    async with TestClient(TestServer(create_app(api_config(settings), loaded, Metrics(), None, lambda: True))) as c:
        body = await get(c, "/v1/channels/nh-live/alerts")
        assert [a["rule"] for a in body["alerts"]] == ["pace_drop"]  # 55 quiet minutes < 60


async def test_channel_alerts_for_the_live_stream_checks_the_scope(api_settings: Settings, loaded: ClickHouse) -> None:
    township = Scope.parse("township:宁海县/长街镇")
    assert len(await channel_alerts(loaded, "nh-live", township, thresholds(api_settings))) == 3
    assert await channel_alerts(loaded, "xs-live", township, thresholds(api_settings)) == []
    assert await channel_alerts(loaded, "nope", Scope(), thresholds(api_settings)) == []


async def test_a_channel_no_longer_live_ends_its_open_episodes_at_its_last_event(
    api_settings: Settings, loaded: ClickHouse
) -> None:
    later = datetime.now(UTC) + timedelta(minutes=11)  # nothing stored in the 10 minutes before
    alerts = await alerts_of(loaded, "nh-live", thresholds(api_settings), now=later)
    assert [(a["rule"], a["state"], a["until"]) for a in alerts[:2]] == [
        ("pace_drop", "cleared", "2020-02-29T11:00:00+08:00"),
        ("silence", "cleared", "2020-02-29T11:00:00+08:00"),
    ]
    assert alerts[1]["message"] == "已连续 54 分钟没有支付订单（阈值 15 分钟），直播已结束"


# --- end to end: events on the real broker, the real consumers, the real API ----------

START = datetime(2020, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def at(minute: float) -> str:
    return (START + timedelta(minutes=minute)).isoformat()


def sale(channel: str) -> list[dict[str, Any]]:
    """Ten paid orders in 10:00-10:09, three of them refunded at 10:12, stats until 10:40."""
    events = [order(f"{channel}-p{m}", f"{channel}-o{m}", "paid", at(m + 0.5), channel, [C25]) for m in range(10)]
    events += [order(f"{channel}-r{m}", f"{channel}-o{m}", "refunded", at(12.2), channel, [C25]) for m in range(3)]
    events += [stats(f"{channel}-s{m}", at(m), channel, 100, 10 * m) for m in range(0, 41, 5)]
    return events


@pytest.fixture
async def runtime(topics: Settings, api_settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime(api_settings)
    await rt.start(api=True)
    yield rt
    await rt.stop()


async def publish(settings: Settings, events: list[dict[str, Any]]) -> None:
    producer = Producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_all_or_raise([(topics_of(settings).for_schema(e["schema"]), None,
                                           json.dumps(e, ensure_ascii=False).encode()) for e in events])  # fmt: skip
    finally:
        await producer.stop()


async def test_events_through_the_broker_fire_and_clear_alerts(runtime: Runtime, api_settings: Settings) -> None:
    url = f"http://127.0.0.1:{runtime.port}/v1/channels/e2e-live/alerts"
    async with aiohttp.ClientSession(headers=auth("reader")) as http:

        async def alerts_are(want: list[tuple[str, str, str, str | None]]) -> Any:
            async with http.get(url) as resp:
                got = brief((await resp.json())["alerts"]) if resp.status == 200 else resp.status
            return got == want or None

        await publish(api_settings, sale("e2e-live"))
        # clock 10:40: quiet since 10:09 -> silence at 10:25; 3 refunds of 10 paid -> refund_spike at 10:13
        await wait_for(lambda: alerts_are([
            ("silence", "firing", at(25), None),
            ("refund_spike", "firing", at(13), None),
        ]), timeout=30, what="silence and refund_spike firing")  # fmt: skip
        # a paid order at 10:41 ends the silence; at 10:43 the refunds leave the 30-minute window
        await publish(api_settings, [order("late-p", "late-o", "paid", at(41.5), "e2e-live", [C25]),
                                     stats("late-s", at(50), "e2e-live", 100, 900)])  # fmt: skip
        await wait_for(lambda: alerts_are([
            ("silence", "cleared", at(25), at(42)),
            ("refund_spike", "cleared", at(13), at(43)),
        ]), timeout=30, what="both cleared")  # fmt: skip
