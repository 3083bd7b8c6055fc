"""Robots wired into a process: `livesales run` with a robots file posts a sale's 开播 to a
(fake) DingTalk group, and GET /v1/notifications lists it for a token of scope all only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from ground.config_errors import ConfigError
from ground.settings import Settings
from ingest.producer import Producer
from livesales.runtime import Runtime
from livesales.wiring import topics as topics_of
from tests.api.conftest import TOKENS, auth, order
from tests.conftest import wait_for
from tests.support.fake_robots import FakeRobots
from tests.support.settings import tuned

C25 = ("clam-2.5kg", "长街蛏子 2.5kg 装", 1, 6800, 2500)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRobots]:
    async with FakeRobots() as f:
        yield f


def files(tmp: Path, fake: FakeRobots) -> tuple[Path, Path]:
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps({"tokens": list(TOKENS.values())}, ensure_ascii=False), encoding="utf-8")
    robots = tmp / "robots.json"
    robots.write_text(json.dumps({"robots": [{
        "name": "changjie", "kind": "dingtalk", "url": fake.add("changjie", "dingtalk", "SECcj"), "secret": "SECcj",
        "scope": "township:宁海县/长街镇", "rules": ["live_started"]}]}, ensure_ascii=False), encoding="utf-8")  # fmt: skip
    return tokens, robots


async def test_a_sale_going_live_is_posted_once_and_listed(
    topics: Settings, tmp_path: Path, fake: FakeRobots
) -> None:
    tokens, robots = files(tmp_path, fake)
    settings = tuned(topics, api_tokens_file=tokens, notify_file=robots, public_url="https://sales.example.cn",
                     notify_poll_s=0.5, validation_processes=0)  # fmt: skip
    runtime = Runtime(settings)
    await runtime.start()
    producer = Producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        now = datetime.now(UTC) - timedelta(seconds=30)
        events = [order(f"w-{i}", f"ow{i}", "paid", (now + timedelta(seconds=i)).isoformat(), "nh-wired", [C25])
                  for i in range(3)]  # fmt: skip
        await producer.send_all_or_raise(
            [(topics_of(settings).for_schema(e["schema"]), None, json.dumps(e).encode()) for e in events]
        )
        async def posted_once() -> bool:
            return bool(fake.of("changjie"))

        await wait_for(posted_once, timeout=40, what="the robot's 开播 post")
        posted = fake.of("changjie")
        assert len(posted) == 1 and "开播" in posted[0].title and "https://sales.example.cn/" in posted[0].text
        base = f"http://127.0.0.1:{runtime.port}/v1/notifications"
        async with aiohttp.ClientSession() as http:

            async def listed() -> list[dict[str, object]] | None:
                async with http.get(base, headers=auth("all")) as resp:
                    rows: list[dict[str, object]] = (await resp.json())["notifications"]
                return rows if rows and rows[0]["state"] == "sent" else None

            rows = await wait_for(listed, timeout=20, what="the post recorded as sent")
            assert rows[0]["robot"] == "changjie" and rows[0]["channel_id"] == "nh-wired"
            async with http.get(base, headers=auth("district")) as resp:
                assert resp.status == 403
            async with http.get(base + "?limit=0", headers=auth("all")) as resp:
                assert resp.status == 400
    finally:
        await producer.stop()
        await runtime.stop()


def test_a_bad_robots_file_stops_the_start_with_one_line(topics: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "robots.json"
    bad.write_text('{"robots": [{"name": "x", "kind": "qq", "url": "https://x", "scope": "all", "rules": []}]}')
    with pytest.raises(ConfigError) as caught:
        Runtime(tuned(topics, notify_file=bad))
    assert "LIVESALES_NOTIFY_FILE" in caught.value.line and "kind" in caught.value.line
