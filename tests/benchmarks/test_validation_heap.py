"""``livesales bench validation-heap`` runs end to end and reads its child's RSS."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.validation_heap import bench_validation_heap


async def test_it_validates_every_batch_and_prints_the_childs_rss(capsys: pytest.CaptureFixture[str]) -> None:
    await bench_validation_heap(argparse.Namespace(batches="30,5", rounds=3))
    out = capsys.readouterr().out
    assert "after start; batches of [30, 5]" in out
    last = out.strip().splitlines()[-1]
    assert "batch     3  events         65" in last  # 30 + 5 + 30
    rss = float(last.split("child RSS")[1].split()[0])
    assert rss > 20  # a Python with pydantic imported, not a process that was gone (0)
