"""A SIGKILLed ``livesales run``, restarted, counts again soon (docs/RELIABILITY.md).

The promise is 10 s from the restart (``livesales bench recovery`` keeps the figures:
7.4-8.6 s here). This test guards the mechanism with headroom for a loaded CI machine:
15 s, which the old serial start (19-20 s in the fault battery) would have failed.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from benchmarks.recovery import counting, first_count_after_restart, service_env, spawn, steady_orders
from ground.settings import Settings
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
GUARD_S = 15.0


async def test_counting_resumes_soon_after_sigkill_and_restart(topics: Settings, tmp_path: Path) -> None:
    async with steady_orders(topics.kafka_bootstrap, topics.topic_orders, rate=50):
        times = await first_count_after_restart(service_env(topics, tmp_path / "ch"), tmp_path / "run.log", kills=1)
    assert len(times) == 1
    assert times[0] < GUARD_S, (times, (tmp_path / "run.log").read_text()[-3000:])


async def test_kill9_during_ingest_thrice_then_exact_counts(topics: Settings, tmp_path: Path) -> None:
    """The battery's kill -9 during ingest, three times over: nothing lost, nothing doubled."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token": "tok-recover-01", "name": "t", "scope": "all"}]}))
    env = service_env(topics, tmp_path / "ch", {"LIVESALES_API_TOKENS_FILE": str(tokens)})
    log = tmp_path / "run.log"
    async with steady_orders(topics.kafka_bootstrap, topics.topic_orders, rate=200) as sent:
        service = spawn(env, log)
        try:
            for _ in range(3):
                await wait_for(lambda s=service: counting(s), timeout=60, what="the process counting")
                service.proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(service.proc.wait, 10)
                service = spawn(env, log)
            await wait_for(lambda s=service: counting(s), timeout=60, what="the last process counting")
        except BaseException:
            service.proc.kill()
            raise
    try:

        async def paid() -> int:
            async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{service.port}/v1/channels?limit=1000",
                headers={"Authorization": "Bearer tok-recover-01"},
            ) as r:
                body = await r.json()
            total = sum(c["paid_orders"] for c in body["channels"])
            assert total <= sent.orders, (total, sent.orders)  # never a double count
            return total

        await wait_for(lambda: _equal(paid, sent.orders), timeout=60, what=f"{sent.orders} paid orders counted")
    finally:
        service.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(service.proc.wait, 30)
    assert service.proc.returncode == 0, log.read_text()[-3000:]


async def _equal(count: Callable[[], Awaitable[int]], want: int) -> bool:
    return await count() == want
