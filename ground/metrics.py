"""Prometheus metrics of one process, in their own registry (no module globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("livesales_events_consumed", "Messages read from Kafka", ["topic"], registry=r)
        self.stored = Counter("livesales_rows_stored", "Rows inserted into ClickHouse", ["table"], registry=r)
        self.duplicates = Counter(
            "livesales_duplicates_dropped", "Rows not stored because already counted", ["table"], registry=r
        )
        self.dead_letters = Counter(
            "livesales_dead_letters", "Messages written to the DLQ", ["code"], registry=r
        )
        self.forwarded = Counter(
            "livesales_messages_forwarded",
            "Messages not keyed and partitioned by their routing key, forwarded to <topic>.routed",
            ["topic"],
            registry=r,
        )
        self.slow_validations = Counter(
            "livesales_slow_validations",
            "Messages the fast check was unsure of, validated by pydantic (bad or unusual input)",
            registry=r,
        )
        self.write_seconds = Histogram(
            "livesales_batch_write_seconds",
            "Dedupe + insert time of one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.write_failures = Counter(
            "livesales_batch_write_failures", "Failed batch writes (retried)", registry=r
        )
        self.lag = Gauge("livesales_consumer_lag", "Messages behind the log end", ["topic", "partition"], registry=r)
        self.api_seconds = Histogram(
            "livesales_api_request_seconds", "API latency", ["route", "status"], registry=r
        )
        self.ingested = Counter(
            "livesales_api_events", "Events posted to /v1/events", ["result"], registry=r
        )
        self.seconds_since_last_write = Gauge(
            "livesales_seconds_since_last_write",
            "Seconds since the last successful insert into ClickHouse (since start before the first)",
            registry=r,
        )
        self.lag_trustworthy = Gauge(
            "livesales_lag_trustworthy",
            "1 when the broker's end offsets look sound for this partition, 0 when livesales_consumer_lag"
            " cannot be trusted (end offset below the committed one, or not moving while records arrive)",
            ["topic", "partition"],
            registry=r,
        )
        self.live_streams = Gauge("livesales_live_streams", "Open live (SSE) streams", registry=r)
        self.live_watchers = Gauge(
            "livesales_live_watchers", "Live watchers: one per channel view, shared by its viewers", registry=r
        )
        self.live_payloads = Counter(
            "livesales_live_payloads", "Live payloads computed (once per watcher update, for all its viewers)",
            registry=r,
        )
        self.live_compute_seconds = Histogram(
            "livesales_live_compute_seconds", "Time to compute one round of live payloads (all due views of a scope)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r,
        )
        self.live_polls = Counter(
            "livesales_live_polls", "Change-marker polls for what other processes stored (all channels at once)",
            registry=r,
        )
        self.live_dropped = Counter(
            "livesales_live_dropped", "Live viewers dropped for reading too slowly", registry=r
        )
        self.live_refused = Counter(
            "livesales_live_refused", "Live streams refused by a cap", ["cap"], registry=r
        )
        self.summary_answers = Counter(
            "livesales_summary_answers", "GET /summary answers by source: live_hub (lent by a live watcher),"
            " shared (a query under way), query (one of its own)", ["source"], registry=r,
        )
        self.clickhouse_memory = Gauge(
            "livesales_clickhouse_memory_bytes", "Embedded chDB's memory by kind, from its system.metrics"
            " (MemoryTracking: all it tracks; *CacheBytes: its caches; Jemalloc*: its allocator),"
            " sampled every 15 s", ["kind"], registry=r,
        )
        self.heap_trim_seconds = Histogram(
            "livesales_heap_trim_seconds", "Time to hand the C heap's free pages back to the OS (malloc_trim),"
            " every Tuning.heap_trim_s", buckets=(0.001, 0.005, 0.02, 0.1, 0.5), registry=r,
        )
        # livesales_process_resident_memory_bytes, _cpu_seconds_total, ... (Linux /proc)
        ProcessCollector(namespace="livesales", registry=r)

    def watch_heap(self, usage: Callable[[], dict[str, int] | None]) -> None:
        """Publish ``livesales_malloc_bytes{kind}``, read at each scrape (ground.heap)."""
        self.registry.register(_HeapCollector(usage))


class _HeapCollector(Collector):
    """The C heap's split at scrape time: a soak's RSS swing is then attributed to memory
    in use, memory glibc holds free, or big mmapped blocks, instead of guessed at."""

    def __init__(self, usage: Callable[[], dict[str, int] | None]) -> None:
        self._usage = usage

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "livesales_malloc_bytes", "glibc malloc's bytes by kind (mallinfo2): in_use, free (held, not"
            " yet given back), mmapped (blocks over Tuning.malloc_mmap_threshold_kb)", labels=["kind"],
        )
        for kind, value in (self._usage() or {}).items():
            family.add_metric([kind], value)
        yield family
