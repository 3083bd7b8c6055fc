"""The soak benchmark's arithmetic: the drift it reports is the RSS's, after warm-up only."""

from __future__ import annotations

from benchmarks.soak import _MIB, Sample, summary


def _samples(per_min: float, warm: float = 0.0) -> list[Sample]:
    """A sample every 30 s for 10 min: 500 MiB growing ``per_min`` MiB/min, ``warm`` MiB more
    during the first minute only (the warm-up a summary must leave out)."""
    out = []
    for k in range(21):
        t = k * 30.0
        mib = 500 + per_min * t / 60 + (warm if t < 60 else 0.0)
        out.append(Sample(t, k * 1000, k * 1000, int(mib * _MIB), 80 * _MIB))
    return out


def test_flat_memory_is_within_five_percent() -> None:
    lines = summary(_samples(0.0, warm=200.0), warmup=60.0)
    assert "RSS after warm-up (service + validation child): 580.0 MiB" in lines[1]
    assert "(within ±5%)" in lines[2]
    assert "median 580.0 MiB; largest deviation from it 0.0% (within ±5%)" in lines[3]
    assert "+0.00 MiB/min" in lines[4]


def test_growth_after_warm_up_is_reported_as_drift() -> None:
    lines = summary(_samples(6.0), warmup=60.0)
    assert "drift (least-squares line): +6.00 MiB/min" in lines[4]
    assert "OUTSIDE ±5%" in lines[2]  # 6 MiB/min over 9 min on 586 MiB: +9.2%
    assert "(within ±5%)" in lines[3]  # 27 MiB either side of the median, 613 MiB: 4.4%


def test_too_few_samples_give_no_drift() -> None:
    assert "no drift figure" in summary(_samples(1.0)[:3], warmup=60.0)[0]


def test_the_soak_reads_the_services_own_metrics_text() -> None:
    """parse_metrics reads what ground.metrics writes: a renamed metric fails here."""
    from prometheus_client import generate_latest

    from benchmarks.soak import parse_metrics
    from ground.metrics import Metrics

    m = Metrics()
    m.stored.labels("order_steps").inc(1234)
    m.stored.labels("stream_stats").inc(7)
    m.clickhouse_memory.labels("MarkCacheBytes").set(3 * _MIB)
    m.clickhouse_memory.labels("MemoryTracking").set(40 * _MIB)
    m.watch_heap(lambda: {"in_use": 5 * _MIB, "free": 2 * _MIB, "mmapped": _MIB})
    text = generate_latest(m.registry).decode()
    assert parse_metrics(text) == (
        1234,
        {"MarkCacheBytes": 3 * _MIB, "MemoryTracking": 40 * _MIB},
        {"in_use": 5 * _MIB, "free": 2 * _MIB, "mmapped": _MIB},
    )
    rss = m.registry.get_sample_value("livesales_process_resident_memory_bytes")
    assert rss is not None and rss > 10 * _MIB  # this process's own RSS, from /proc
