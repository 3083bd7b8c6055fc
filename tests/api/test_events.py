"""POST /v1/events: same validation as the consumer, good events published to Kafka."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from ground.metrics import Metrics
from ground.settings import Settings
from ingest.producer import Producer
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth, order, stats
from tests.ingest.test_pipeline import read_topic

Client = TestClient[Any, Any]


@pytest.fixture
async def gateway(api_settings: Settings, topics: Settings, clickhouse: ClickHouse) -> AsyncIterator[Client]:
    producer = Producer(api_settings.kafka_bootstrap)
    await producer.start()
    app = create_app(api_config(api_settings), clickhouse, Metrics(), producer, lambda: True)
    async with TestClient(TestServer(app)) as c:
        yield c
    await producer.stop()


GOOD = order("g-1", "g1", "paid", "2020-02-29T10:00:00+08:00", "nh-live", [("clam", "蛏子", 1, 100, 10)])


async def test_array_body(gateway: Client, api_settings: Settings) -> None:
    body = [GOOD, {"schema": "order.v7"}, GOOD | {"amount_fen": -1}, 17, stats("g-s", "2020-02-29T10:00:00Z", "nh-live", 1, 2)]
    resp = await gateway.post("/v1/events", json=body, headers=auth("all"))
    result = await resp.json()
    assert resp.status == 200, result
    assert result["accepted"] == 2
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [
        (1, "unknown_schema"), (2, "schema_violation"), (3, "invalid_json"),
    ]  # fmt: skip
    orders = await read_topic(api_settings, api_settings.topic_orders, 1)
    assert json.loads(orders[0].value) == GOOD and orders[0].key == b"g1"
    assert len(await read_topic(api_settings, api_settings.topic_stream_stats, 1)) == 1


async def test_ndjson_body(gateway: Client) -> None:
    lines = [json.dumps(GOOD | {"event_id": "g-2"}, ensure_ascii=False), "{broken", json.dumps(GOOD | {"occurred_at": "1990-01-01T00:00:00Z"})]
    resp = await gateway.post("/v1/events", data="\n".join(lines).encode(),
                              headers={**auth("all"), "Content-Type": "application/x-ndjson"})  # fmt: skip
    result = await resp.json()
    assert result["accepted"] == 1
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [(1, "invalid_json"), (2, "timestamp_out_of_range")]


async def test_gateway_refusals(gateway: Client, api_settings: Settings) -> None:
    resp = await gateway.post("/v1/events", json=[GOOD], headers=auth("reader"))
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    resp = await gateway.post("/v1/events", data=b"[not json", headers={**auth("all"), "Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"
    resp = await gateway.post("/v1/events", json=[GOOD])
    assert resp.status == 401
    big = b"[" + b" " * (api_settings.tuning.api_max_body_bytes + 1) + b"]"
    resp = await gateway.post("/v1/events", data=big, headers={**auth("all"), "Content-Type": "application/json"})
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "payload_too_large"


async def test_channel_events_go_to_the_channels_topic(gateway: Client, api_settings: Settings) -> None:
    from tests.api.test_channels import channel

    good = channel("g-ch", "nh-live", "2020-02-28T18:00:00+08:00", "宁海长街蛏子网络节", "直播宁海",
                   start="2020-02-29T09:00:00+08:00", end="2020-02-29T15:00:00+08:00")  # fmt: skip
    backwards = good | {"event_id": "g-ch-2", "scheduled_end": "2020-02-29T08:00:00+08:00"}
    resp = await gateway.post("/v1/events", json=[good, backwards], headers=auth("all"))
    result = await resp.json()
    assert result["accepted"] == 1 and [(r["index"], r["code"]) for r in result["rejected"]] == [(1, "schema_violation")]
    published = await read_topic(api_settings, api_settings.topic_channels, 1)
    assert json.loads(published[0].value) == good and published[0].key == b"nh-live"
