"""``bench connectors`` in small: the three phases run on a real broker, serve and consume
processes and chDB, and print their figures with every push stored and the watermark moved."""

from __future__ import annotations

import argparse
import re

import pytest

from benchmarks.connectors import run
from localbroker import LocalBroker

pytestmark = pytest.mark.slow


async def test_the_three_phases_complete_and_print_their_lines(
    broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(argparse.Namespace(pushes=200, orders=500, in_flight=16), broker)
    out = capsys.readouterr().out
    # phase 1: ours beside both raw limits, nothing refused, every accepted push on the raw topic
    assert re.search(r"^ours: POST /connect/douyin \(serve process\) .* 0$", out, re.M), out
    assert re.search(r"^raw limit: bare aiohttp handler, 200 .* 0$", out, re.M), out
    assert "raw limit: bare send_and_wait, acks=all" in out
    assert "on the raw topic: 200 of 200 accepted" in out
    # phase 2: the backlog drained and stored, the live pushes accepted, published and stored
    assert "whole path: a consume process drains the 210 pushes, then 200 more live" in out
    assert re.search(r"^  accepted \(worker and consumers running\) .* 0$", out, re.M), out
    assert "events on the orders topic (worker committed)" in out
    assert "dead-lettered 0" in out
    # phase 3: 500 orders, 90% paid, a tenth of those refunded: every implied event acknowledged
    assert "watermark moved: yes" in out
    found = re.search(r"500 orders; (\d+) events sent and acknowledged, (\d+) on the topic, (\d+) implied", out)
    assert found and found[1] == found[2] == found[3], out
    assert "5 order-list pages, 1 after-sale pages" in out
