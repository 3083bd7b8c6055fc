"""The connectors wired into `livesales run` by LIVESALES_CONNECTORS_FILE: a signed 抖店 push
to the API's port is counted, its room mapped through the registry's platform_room_id,
GET /v1/connectors reports it; a bad connectors file stops the start with one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from ground.config_errors import ConfigError
from ground.settings import Settings
from livesales.runtime import Runtime
from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder
from tests.api.conftest import TOKENS, auth, store_events
from tests.conftest import wait_for
from tests.connectors.harness import douyin_app, shop
from tests.support.settings import tuned


async def test_a_push_through_the_api_port_is_counted_and_reported(topics: Settings, tmp_path: Path) -> None:
    fake = FakeDouyin()
    url = await fake.start()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": list(TOKENS.values())}, ensure_ascii=False), encoding="utf-8")
    conf = tmp_path / "connectors.json"
    conf.write_text(json.dumps({"connectors": [douyin_app(url, [shop("1001")])]}), encoding="utf-8")
    runtime = Runtime(tuned(topics, api_tokens_file=tokens, connectors_file=conf, validation_processes=0))
    try:
        await runtime.start()
        await store_events(runtime.store, [{
            "schema": "channel.v1", "event_id": "reg-1", "occurred_at": "2026-05-01T08:00:00+08:00",
            "channel_id": "nh-festival", "platform": "douyin", "title": "宁海长街蛏子网络节",
            "region": {"district": "宁海县", "township": "长街镇"}, "platform_room_id": "7001"}])  # fmt: skip
        t = datetime.now(UTC) - timedelta(minutes=1)
        fake.create(FakeOrder("6917000000000000001", "1001", t, [("clam", "蛏子", 2, 1990)], "7001"))
        fake.pay("6917000000000000001", t + timedelta(seconds=5))
        base = f"http://127.0.0.1:{runtime.port}"
        assert await fake.send_pushes(f"{base}/connect/douyin") >= 1

        async def counted() -> bool:
            rows = await runtime.store.query(
                "SELECT toString(status) AS s, amount_fen FROM order_steps WHERE channel_id = 'nh-festival'"
            )
            return sorted((r["s"], r["amount_fen"]) for r in rows) == [("created", 3980), ("paid", 3980)]

        await wait_for(counted, timeout=40, what="the pushed order counted under the registered channel")
        async with aiohttp.ClientSession() as http:

            async def reported() -> dict[str, object] | None:
                async with http.get(f"{base}/v1/connectors", headers=auth("all")) as resp:
                    entries = (await resp.json())["connectors"]
                return entries[0] if entries and entries[0]["pushes"] else None

            entry = await wait_for(reported, timeout=20, what="the push in /v1/connectors")
            assert entry["platform"] == "douyin" and entry["shop_id"] == "1001" and entry["bad_signatures"] == 0
            async with http.post(f"{base}/connect/douyin", data=b"[]", headers={"event-sign": "0" * 32}) as resp:
                assert resp.status == 401  # a bad signature publishes nothing
    finally:
        await runtime.stop()
        await fake.stop()


def test_a_bad_connectors_file_stops_the_start_with_one_line(topics: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "connectors.json"
    bad.write_text('{"connectors": [{"platform": "taobao", "app_key": "k", "app_secret": "s", "shops": []}]}')
    with pytest.raises(ConfigError) as caught:
        Runtime(tuned(topics, connectors_file=bad))
    assert "LIVESALES_CONNECTORS_FILE" in caught.value.line and "\n" not in caught.value.line
