"""``bench chaos`` in small: one run with a kill, a stop past the session and slow inserts counts each step once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.chaos import Chaos, line, one_run
from localbroker import LocalBroker

pytestmark = pytest.mark.slow


async def test_one_chaos_run_doubles_and_misses_nothing(broker: LocalBroker, tmp_path: Path) -> None:
    cfg = Chaos(consumers=2, events=800, rate=200, kills=1, terms=0, stops=1, stop_s=8, slow_insert_s=2, settle_s=90)
    started = time.monotonic()
    run = await one_run(cfg, seed=11, broker=broker, tmp=tmp_path)
    report = line(run)
    assert run.faults == {"kill": 1, "stop": 1}, report
    assert run.slow_inserts > 0, report  # the data inserts did run late
    assert run.processes == 3, report  # two, and the killed one restarted
    assert run.settled, report
    assert (run.doubled, run.missing, run.extra) == (0, 0, 0), report
    assert not run.odd, report
    assert time.monotonic() - started < 110, report
