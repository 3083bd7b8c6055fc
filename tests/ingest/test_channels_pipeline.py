"""channel.v1 end to end: Kafka (Tansu) -> consumer -> channel_registry -> channels_current."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ground.settings import Settings
from ingest.producer import Producer
from livesales.runtime import Runtime
from tests.conftest import wait_for
from tests.ingest.test_pipeline import read_topic
from tests.processors.test_validate import example


def encode(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev, ensure_ascii=False).encode()


async def test_registry_events_land_in_channels_current_and_bad_ones_in_the_dlq(
    topics: Settings, producer: Producer
) -> None:
    v1 = example("channel")
    cid = v1["channel_id"]
    # a later version: new title, no host (the latest entry wins whole: host becomes NULL)
    v2 = {k: v for k, v in v1.items() if k != "host"} | {
        "event_id": "ch-v2", "occurred_at": "2020-02-29T08:00:00+08:00", "title": "宁海长街蛏子节（改期）",
        "region": {"district": "宁海县"},
    }  # fmt: skip
    older = v1 | {"event_id": "ch-v0", "occurred_at": "2020-02-01T08:00:00+08:00", "title": "旧标题"}
    bad = {
        "schema_violation": encode(v1 | {"event_id": "bad-1", "scheduled_end": "2020-02-29T08:00:00+08:00"}),
        "invalid_json": b'{"schema": "channel.v1", ',
    }
    runtime = Runtime(topics)
    await runtime.start(api=False)
    try:
        msgs: list[tuple[str, bytes | None, bytes]] = [
            (topics.topic_channels, cid.encode(), encode(ev)) for ev in (v1, v2, older, v1)  # v1 redelivered
        ]
        msgs += [(topics.topic_channels, None, raw) for raw in bad.values()]
        await producer.send_all_or_raise(msgs)

        async def current() -> list[dict[str, Any]]:
            stored = await runtime.store.query("SELECT count() AS n FROM channel_registry")
            if stored[0]["n"] < 3:
                return []
            return await runtime.store.query("SELECT * FROM channels_current")

        rows = await wait_for(current, timeout=60, what="three registry versions stored")
        letters = await read_topic(topics, topics.topic_dlq, len(bad))
        stored = await runtime.store.query("SELECT count() AS n, uniqExact(event_id) AS ids FROM channel_registry")
    finally:
        await runtime.stop()
    assert stored == [{"n": 3, "ids": 3}]  # the redelivery was not stored twice
    for row in rows:  # the driver may hand UTC columns back naive
        for name in ("scheduled_start", "scheduled_end"):
            row[name] = row[name].replace(tzinfo=UTC)
    assert rows == [{
        "channel_id": cid, "platform": "douyin", "title": "宁海长街蛏子节（改期）", "host": None,
        "district": "宁海县", "township": "",
        "scheduled_start": datetime(2020, 2, 29, 1, 0, tzinfo=UTC), "scheduled_end": datetime(2020, 2, 29, 7, 0, tzinfo=UTC),
    }]  # fmt: skip
    values = [json.loads(r.value) for r in letters]
    assert sorted(v["error"]["code"] for v in values) == sorted(bad)
    assert {v["source"]["topic"] for v in values} == {topics.topic_channels}
    violation = next(v for v in values if v["error"]["code"] == "schema_violation")
    assert "scheduled_end must be after scheduled_start" in violation["error"]["message"]
