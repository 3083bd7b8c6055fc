"""The health port of a `consume` process: ready once subscribed, not live once a loop died."""

from __future__ import annotations

import aiohttp

from ground.settings import Settings
from livesales.runtime import Runtime
from tests.conftest import wait_for
from tests.support.settings import tuned


async def status(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status


async def test_health_port_answers_readiness_liveness_and_metrics(topics: Settings) -> None:
    runtime = Runtime(tuned(topics, **{"health_port": 0, "validation_processes": 0}))
    try:
        await runtime.start_health()
        base = f"http://127.0.0.1:{runtime.health_port}"
        assert await status(f"{base}/readyz") == 503  # storage not open, no consumer yet
        await runtime.start_storage()
        await runtime.start_kafka()

        async def ready() -> bool:
            return await status(f"{base}/readyz") == 200

        await wait_for(ready, timeout=15, what="/readyz to answer 200 once storage is open and consumers joined")
        assert await status(f"{base}/healthz") == 200
        async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
            assert "livesales_batch_write_seconds" in await r.text()
        runtime.consumers[0]._tasks[1].cancel()  # the write loop ends without a stop: a bug

        async def dead() -> bool:
            return not runtime.consumers[0].alive

        await wait_for(dead, timeout=5, what="the consumer to count as dead")
        assert await status(f"{base}/healthz") == 503
    finally:
        await runtime.stop()
