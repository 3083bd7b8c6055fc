"""Every knob of the service, read from ``LIVESALES_*`` env vars (contract §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _strict_bool(value: Any) -> Any:
    """Only true/false (or 1/0): "yes" or "on" for a switch is refused, not guessed."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError("expected true or false")
    return value


StrictEnvBool = Annotated[bool, BeforeValidator(_strict_bool)]


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
    # Kafka TLS/SASL, for every Kafka client of the process (ingest.kafka_security).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # none: the system's CAs
    # ClickHouse server parts; each one set overrides that part of the DSN (http(s):// only).
    clickhouse_user: str | None = None
    clickhouse_password: SecretStr | None = None
    clickhouse_database: str | None = None
    clickhouse_secure: bool | None = None  # none: TLS when the DSN says https://
    clickhouse_ca_file: Path | None = None
    # `livesales consume`: /healthz, /readyz and /metrics on a port of their own.
    health_host: str = "127.0.0.1"
    health_port: int = 9108

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
    # The dedupe filters' memory per process (processors/filter_ring.py): the event times
    # they cover shrink below the horizon when it is full; older events take the look-up.
    dedupe_memory_mb: float = Field(default=32.0, gt=0)
    # chDB's caches (mark, primary index, query condition, ...) together, in MiB
    # (processors/store.py CHDB_CACHE_SHARES; chdb:// only); 0: ClickHouse's defaults, 5 GiB each.
    chdb_cache_mb: float = Field(default=256.0, ge=0)
    # The C heap (ground/heap.py): glibc malloc arenas, set before storage starts its
    # threads (0: glibc's default, 8 per core), and how often freed pages go back to the OS (0: never).
    malloc_arenas: int = Field(default=2, ge=0, le=64)
    malloc_mmap_threshold_kb: int = Field(default=1024, ge=0, le=32 * 1024)  # 0: glibc's sliding threshold
    # One fetch's bytes per partition and in all (aiokafka's max_partition_fetch_bytes, fetch_max_bytes).
    fetch_partition_kb: int = Field(default=8 * 1024, ge=64)
    fetch_max_kb: int = Field(default=32 * 1024, ge=64)
    heap_trim_s: float = Field(default=30.0, ge=0)
    # chDB's own allocator (jemalloc, ground/heap.py): ms a freed page is kept for reuse
    # before it goes back to the OS; read when chDB loads, chdb:// only. 0: at once, which
    # halves the RSS swing a merge leaves behind (docs/BENCHMARKS.md "Memory soak"); chDB's
    # own is 5000. Never-kept-forever (-1) is refused: RSS then grows without bound.
    chdb_dirty_decay_ms: int = Field(default=0, ge=0)
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
    # GET /summary may answer what a query returned at most this long before the request
    # arrived (the live hub's newest, or a query under way: api/summary_cache.py); 0: always query.
    summary_max_age_ms: int = Field(default=1000, ge=0, le=10_000)
    # Storage threads of /summary's own queries (ClickHouse.lane): they queue behind no live
    # round or insert; 0: share the store's.
    api_read_threads: int = Field(default=2, ge=0, le=32)
    # GET /v1/channels may answer from an in-process snapshot holding every row stored up to
    # at most this long before the request arrived (api/channel_snapshot.py); 0: always query.
    channel_list_max_age_ms: int = Field(default=1000, ge=0, le=10_000)

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "LIVESALES_KAFKA_SASL_USERNAME and LIVESALES_KAFKA_SASL_PASSWORD are required with "
                f"LIVESALES_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
            )
        return self
    # Operations (docs/RELIABILITY.md).
    log_format: Literal["text", "json"] = "text"
    ready_stall_s: float = Field(default=30.0, gt=0)  # a consumer stalled longer is not ready
    ready_probe_s: float = Field(default=10.0, gt=0)  # storage probed when no write for this long
    kafka_session_timeout_ms: int = Field(default=6_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    kafka_rebalance_timeout_ms: int = Field(default=10_000, ge=1_000)

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
