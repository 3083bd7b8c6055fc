"""The operator's settings, read from ``LIVESALES_*`` env vars (contract §5).

Only what an operator decides lives here, grouped as the README's table shows it: Kafka,
ClickHouse, the API, the answers' policy, operations. Internal tuning is ``Tuning``: named
constants with the values docs/BENCHMARKS.md chose, overridable as a whole through one
JSON variable for tests and benchmarks, not a knob to turn in production. The runtime
turns these into each component's own small config (livesales/wiring.py); no component
reads ``Settings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LIVESALES_"


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


class Tuning(BaseModel):
    """Internal tuning: the values docs/BENCHMARKS.md measured, under names a test can set.

    ``LIVESALES_TUNING='{"batch_max_records": 100}'`` overrides some of them (tests and
    benchmarks do); an unknown name is refused at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Consumers (ingest/consumer.py).
    batch_max_records: int = Field(default=20_000, ge=1, description="records one fetch may bring")
    batch_wait_ms: int = Field(default=100, ge=1, description="how long a fetch waits for records")
    min_insert_interval_ms: int = Field(default=150, ge=0, description="at most one insert per interval; 0: none")
    write_retry_max_s: float = Field(default=10.0, gt=0, description="the back-off's cap while storage fails")
    fetch_partition_kb: int = Field(default=8 * 1024, ge=64, description="one fetch's bytes per partition")
    fetch_max_kb: int = Field(default=32 * 1024, ge=64, description="one fetch's bytes in all")
    kafka_rebalance_timeout_ms: int = Field(default=10_000, ge=1_000, description="a member's time to rejoin")
    # Exactly-once (processors/writer.py): older events always take the exact look-up.
    dedupe_horizon_hours: float = Field(default=48.0, gt=0, description="the dedupe filters' span")
    dedupe_memory_mb: float = Field(default=64.0, gt=0, description="the dedupe filters' memory per process")
    # The C heaps (ground/heap.py). glibc's own MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_
    # and jemalloc's JE_MALLOC_CONF, when set, win over these.
    malloc_arenas: int = Field(default=2, ge=0, le=64, description="glibc arenas; 0: glibc's default")
    malloc_mmap_threshold_kb: int = Field(default=32 * 1024, ge=0, le=32 * 1024, description="0: glibc's sliding one")
    heap_trim_s: float = Field(default=30.0, ge=0, description="how often freed pages go back; 0: never")
    chdb_dirty_decay_ms: int = Field(default=5000, ge=0, description="chDB's jemalloc dirty_decay_ms")
    chdb_cache_mb: float = Field(default=256.0, ge=0, description="embedded chDB's caches, MiB; 0: ClickHouse's")
    chdb_merge_nice: int = Field(default=19, ge=0, le=19, description="embedded chDB's merge threads' nice value")
    # The API (api/): per-token burst is twice the rate.
    api_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="largest request body")
    api_read_threads: int = Field(default=2, ge=0, le=32, description="storage threads of /summary; 0: shared")
    # Live screens (api/live/).
    live_max_streams_per_token: int = Field(default=50, ge=1, description="open streams per token")
    live_poll_ms: int = Field(default=1000, ge=50, description="how often other processes' stores are polled")
    live_min_interval_ms: int = Field(default=500, ge=0, description="a channel recomputed at most this often")
    live_compute_cores: float = Field(default=0.5, gt=0, description="CPU the live computations may use")
    live_send_timeout_s: float = Field(default=10.0, gt=0, description="a viewer this far behind is dropped")
    live_send_buffer_bytes: int = Field(default=256 * 1024, ge=0, description="kernel send buffer; 0: default")
    # Connectors (connectors/): the raw pushes' topic, and reconciliation's windows, which
    # end ``lag`` before now (the platforms' late writes), start ``overlap`` before the last
    # one ended, and are tried again ``retry`` after a failure.
    connector_pushes_topic: str = Field(default="livesales.connector_pushes", min_length=1, description="raw pushes")
    reconcile_lag_s: float = Field(default=180.0, ge=0, description="a window ends this long before now")
    reconcile_overlap_s: float = Field(default=600.0, ge=0, description="and starts this long before the last end")
    reconcile_retry_s: float = Field(default=30.0, gt=0, description="a failed window is tried again after")
    # pushes a second per source address on /connect/* (burst: twice that); behind an
    # ingress every push has the ingress's address: raise it there, limit at the ingress
    connect_rate_per_s: float = Field(default=500.0, gt=0, description="pushes a second per source address")
    # Robots (notify/): how often the store is read for transitions.
    notify_poll_s: float = Field(default=10.0, gt=0, description="the detector's round")
    # Readiness (livesales/health.py).
    ready_stall_s: float = Field(default=30.0, gt=0, description="a consumer stalled longer is not ready")
    ready_probe_s: float = Field(default=10.0, gt=0, description="storage probed when no write for this long")


class Settings(BaseSettings):
    """Every ``LIVESALES_*`` setting, with its default and what it means."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # -- Kafka ------------------------------------------------------------------------
    kafka_bootstrap: str = Field(default="localhost:9092", description="Kafka bootstrap servers")
    consumer_group: str = Field(default="livesales", description="consumer group id")
    topic_orders: str = Field(default="livesales.orders", description="`order.v1` events")
    topic_onboarding: str = Field(default="livesales.onboarding", description="`onboarding.v1` events")
    topic_stream_stats: str = Field(default="livesales.stream_stats", description="`stream_stats.v1` events")
    topic_channels: str = Field(default="livesales.channels", description="`channel.v1` events")
    topic_dlq: str = Field(default="livesales.dlq", description="dead letters written by the service")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="for every Kafka client of the process"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="with a SASL_* protocol"
    )
    kafka_sasl_username: str | None = Field(default=None, description="required with a SASL_* protocol")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="required with a SASL_* protocol")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for SSL; none: the system's")
    kafka_session_timeout_ms: int = Field(
        default=6_000, ge=1_000,
        description="how soon the group notices a dead member; heartbeats every sixth of it",
    )

    # -- ClickHouse -------------------------------------------------------------------
    clickhouse_dsn: str = Field(
        default_factory=_default_dsn,
        description="`chdb:///path` (embedded) or `http(s)://user:pass@host:8123/db`; default: `data/clickhouse`",
    )
    clickhouse_cluster: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$",
        description="a cluster of the servers' remote_servers: Replicated and Distributed tables",
    )
    clickhouse_user: str | None = Field(default=None, description="overrides the DSN's user")
    clickhouse_password: SecretStr | None = Field(default=None, description="overrides the DSN's password")
    clickhouse_ca_file: Path | None = Field(default=None, description="CA bundle for https://")
    retention_days: int | None = Field(
        default=None, ge=1,
        description="drop order steps, stream stats and minutes older than this (by event time); none: keep all",
    )

    # -- API --------------------------------------------------------------------------
    api_host: str = Field(default="127.0.0.1", description="API listener (and `consume`'s health endpoints)")
    api_port: int = Field(default=8080, description="API listener")
    api_tokens_file: Path | None = Field(
        default=None, description="JSON tokens file; none: every call but health is refused"
    )
    api_rate_per_s: float = Field(default=50.0, gt=0, description="requests per second per token (burst: twice)")
    live_max_streams: int = Field(default=2000, ge=1, description="open live streams per process")
    api_max_age_ms: int = Field(
        default=1000, ge=0, le=10_000,
        description="how old an answer of /summary or /v1/channels may be; 0: always query",
    )
    alert_silence_minutes: int = Field(default=15, ge=1, le=24 * 60, description="minutes without a paid order")
    alert_refund_spike_pct: float = Field(default=20.0, ge=0, description="refunds as % of paid orders")

    # -- Platforms and robots (contract §7, §8) ---------------------------------------
    connectors_file: Path | None = Field(
        default=None, description="JSON of the platform connectors and their shops; none: no connector"
    )
    reconcile_interval_s: float = Field(
        default=300.0, ge=10, description="how often each shop's orders are pulled from its platform"
    )
    notify_file: Path | None = Field(default=None, description="JSON of the group robots; none: no robot")
    public_url: str | None = Field(
        default=None, description="the dashboard's address in robot messages; none: the API listener's"
    )

    # -- Operations -------------------------------------------------------------------
    health_port: int = Field(default=9108, description="`consume`'s /healthz, /readyz and /metrics")
    log_format: Literal["text", "json"] = Field(default="text", description="log lines as text or JSON")
    validation_processes: int = Field(default=1, ge=0, description="validation child processes; 0: a thread")
    tuning: Tuning = Field(default_factory=Tuning, description="internal tuning as JSON (tests, benchmarks)")

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

    @property
    def topics(self) -> tuple[str, ...]:
        """The four topics of events in (contract §1)."""
        return (self.topic_orders, self.topic_onboarding, self.topic_stream_stats, self.topic_channels)

    @property
    def kafka_heartbeat_interval_ms(self) -> int:
        """A sixth of the session timeout: Kafka advises at most a third."""
        return max(100, self.kafka_session_timeout_ms // 6)


# Settings of earlier versions: named in one warning line at start when still set.
REMOVED: dict[str, str] = {
    **{name: "internal: LIVESALES_TUNING" for name in Tuning.model_fields},
    "clickhouse_database": "the DSN's path",
    "clickhouse_secure": "the DSN's https://",
    "health_host": "LIVESALES_API_HOST",
    "kafka_heartbeat_interval_ms": "a sixth of LIVESALES_KAFKA_SESSION_TIMEOUT_MS",
    "api_burst": "twice LIVESALES_API_RATE_PER_S",
    "max_value_bytes": "the contract's 64 KiB",
    "summary_max_age_ms": "LIVESALES_API_MAX_AGE_MS",
    "channel_list_max_age_ms": "LIVESALES_API_MAX_AGE_MS",
}


def removed_in(environ: Mapping[str, str] | None = None) -> str | None:
    """One warning line naming each removed setting still set, and what replaced it."""
    env = os.environ if environ is None else environ
    found = [
        f"{ENV_PREFIX}{name.upper()} ({instead})"
        for name, instead in REMOVED.items()
        if f"{ENV_PREFIX}{name.upper()}" in env
    ]
    return f"livesales: warning: removed settings ignored: {', '.join(found)}" if found else None


def _group(name: str) -> str:
    if name.startswith(("kafka_", "topic_")) or name == "consumer_group":
        return "Kafka"
    if name.startswith(("clickhouse_", "chdb_", "retention_")):
        return "ClickHouse"
    if name.startswith(("api_", "live_", "alert_")):
        return "API and its answers"
    if name in ("connectors_file", "reconcile_interval_s", "notify_file", "public_url"):
        return "Platforms and robots"
    return "Operations"


def settings_table() -> str:
    """The README's table of settings, grouped, from the fields themselves (a test keeps
    the README equal to it: ``python -m ground.settings`` prints it)."""
    rows: dict[str, list[str]] = {}
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "see meaning"
        elif field.default is None:
            default = "none"
        else:
            default = f"`{field.default}`"
        line = f"| `{ENV_PREFIX}{name.upper()}` | {default} | {field.description} |"
        rows.setdefault(_group(name), []).append(line)
    out = ["| setting | default | meaning |", "|---|---|---|"]
    for group, lines in rows.items():
        out.append(f"| **{group}** | | |")
        out.extend(lines)
    return "\n".join(out)


if __name__ == "__main__":
    print(settings_table())
