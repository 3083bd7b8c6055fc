"""A SIGKILLed ``livesales run``, restarted, counts again soon (docs/RELIABILITY.md).

The promise is 10 s from the restart (``livesales bench recovery`` keeps the figures:
7.4-8.6 s here). This test guards the mechanism with headroom for a loaded CI machine:
15 s, which the old serial start (19-20 s in the fault battery) would have failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.recovery import first_count_after_restart, service_env, steady_orders
from livesales.settings import Settings

pytestmark = pytest.mark.slow
GUARD_S = 15.0


async def test_counting_resumes_soon_after_sigkill_and_restart(topics: Settings, tmp_path: Path) -> None:
    async with steady_orders(topics.kafka_bootstrap, topics.topic_orders, rate=50):
        times = await first_count_after_restart(service_env(topics, tmp_path / "ch"), tmp_path / "run.log", kills=1)
    assert len(times) == 1
    assert times[0] < GUARD_S, (times, (tmp_path / "run.log").read_text()[-3000:])
