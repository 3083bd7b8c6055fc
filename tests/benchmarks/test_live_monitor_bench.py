"""``livesales bench live-monitor`` at a tiny size: it builds the store it describes, its
API answers check out against the rows, and every case and raw limit gets its line."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import live_monitor
from benchmarks.live_monitor import CASES, RAW, Timing, bench_live_monitor, run, timing
from benchmarks.registry import BENCHMARKS
from livesales import cli


async def test_a_tiny_run_builds_checks_and_times_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    counts, figures = await run(6_000, 2)
    assert counts["steps"] == 6_000 and counts["paid"] == 3_000
    assert counts["channels"] == 20 and counts["registered"] == 18  # 1 in 10 unregistered
    assert counts["registry_rows"] == 18 + 3  # channels 0, 7 and 14 registered twice
    assert list(figures) == [*RAW, *(name for name, _, _ in CASES)]
    assert all(f.refused == 0 and 0 < f.p50_ms <= f.p99_ms <= f.max_ms for f in figures.values())
    out = capsys.readouterr().out
    assert "checked: the year's totals equal the rows'" in out
    assert "xlsx year: district x month, sessions" in out


async def test_the_command_takes_its_rows_and_judges_the_slowest_p99(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[int, int]] = []

    async def fake_run(rows: int, reps: int) -> tuple[dict[str, int], dict[str, Timing]]:
        asked.append((rows, reps))
        return {}, {"raw: x": Timing(1, 900, 900), "a": Timing(100, 250, 260), "b": Timing(200, 320, 400)}

    monkeypatch.setattr(live_monitor, "run", fake_run)
    parsed: list[argparse.Namespace] = []

    def parsed_only(args: argparse.Namespace) -> int:
        parsed.append(args)
        return 0

    monkeypatch.setattr(cli, "_main", parsed_only)
    assert cli.main(["bench", "live-monitor", "--rows", "1234"]) == 0
    (args,) = parsed
    assert BENCHMARKS[args.which] == ("benchmarks.live_monitor", "bench_live_monitor")
    await bench_live_monitor(args)
    assert asked == [(1234, live_monitor.REPS)]
    assert "slowest p99: 320.0 ms (b); goal (issue 21): p99 ≤ 300 ms: NOT met" in capsys.readouterr().out


def test_p99_of_fifty_lies_between_the_two_slowest() -> None:
    t = timing([i / 1000 for i in range(1, 51)], refused=1)
    assert t.p50_ms == pytest.approx(25.5) and 49 < t.p99_ms < 50 and t.max_ms == pytest.approx(50)
    assert t.refused == 1
