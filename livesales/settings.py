"""Every knob of the service, read from ``LIVESALES_*`` env vars (contract §5)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_dsn() -> str:
    return f"chdb://{(Path.cwd() / 'data' / 'clickhouse').resolve()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVESALES_", extra="ignore")

    kafka_bootstrap: str = "localhost:9092"
    consumer_group: str = "livesales"
    topic_orders: str = "livesales.orders"
    topic_onboarding: str = "livesales.onboarding"
    topic_stream_stats: str = "livesales.stream_stats"
    topic_channels: str = "livesales.channels"
    topic_dlq: str = "livesales.dlq"
    clickhouse_dsn: str = Field(default_factory=_default_dsn)
    # A cluster name from the servers' remote_servers: migrations run ON CLUSTER with
    # Replicated and Distributed tables (schemas/cluster.py); unset: one server or chDB.
    clickhouse_cluster: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_tokens_file: Path | None = None

    # Tuning (not in the contract; defaults chosen by docs/BENCHMARKS.md).
    batch_max_records: int = Field(default=20_000, ge=1)
    batch_wait_ms: int = Field(default=100, ge=1)
    min_insert_interval_ms: int = Field(default=150, ge=0)  # 0: insert each batch as soon as it is ready
    max_value_bytes: int = 64 * 1024
    validation_processes: int = Field(default=1, ge=0)  # 0: validate in a thread
    write_retry_max_s: float = 10.0
    api_rate_per_s: float = 50.0
    api_burst: int = 100
    api_max_body_bytes: int = 8 * 1024 * 1024
    # Exactly-once across processes (docs/DESIGN.md): events older than the horizon always
    # take the exact ClickHouse look-up; the session timeout also bounds a zombie's lease.
    dedupe_horizon_hours: float = Field(default=48.0, gt=0)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    # Alert rules (contract §6): minutes without a paid order; refunds as % of paid orders.
    alert_silence_minutes: int = Field(default=15, ge=1, le=24 * 60)
    alert_refund_spike_pct: float = Field(default=20.0, ge=0)
    # Live screens (api/live_hub.py): caps on open SSE streams, and how often a channel's
    # shared watcher may recompute / polls for what other processes stored.
    live_max_streams_per_token: int = Field(default=50, ge=1)
    live_max_streams: int = Field(default=2000, ge=1)
    live_poll_ms: int = Field(default=1000, ge=50)
    live_min_interval_ms: int = Field(default=500, ge=0)
    live_compute_cores: float = Field(default=0.5, gt=0)  # CPU the live computations may use, in cores
    live_send_timeout_s: float = Field(default=10.0, gt=0)  # a viewer this far behind is dropped
    live_send_buffer_bytes: int = Field(default=256 * 1024, ge=0)  # kernel send buffer per stream; 0: default

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.topic_orders, self.topic_onboarding, self.topic_stream_stats, self.topic_channels)

    def topic_for_schema(self, schema: str) -> str:
        return {
            "order.v1": self.topic_orders,
            "onboarding.v1": self.topic_onboarding,
            "stream_stats.v1": self.topic_stream_stats,
            "channel.v1": self.topic_channels,
        }[schema]
