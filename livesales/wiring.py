"""From the operator's ``Settings`` to each component's own small config.

The one place that reads ``Settings`` field by field: components take the config they
need (ingest.consumer.ConsumerConfig, api.context.ApiConfig, ...), so a newcomer sees at a
glance what a component depends on, and a test builds one without the environment.
"""

from __future__ import annotations

from api.alerts import Thresholds
from api.context import ApiConfig
from api.live.hub import LiveConfig
from connectors.service import ServiceConfig, service_config
from ground.settings import Settings
from ingest.consumer import ConsumerConfig
from ingest.kafka_security import KafkaAccess
from ingest.topics import Topics
from livesales.health import ReadyPolicy
from notify.config import check_public_url
from notify.detector import DetectorConfig
from notify.messages import MessageConfig
from notify.sender import SenderConfig
from notify.service import NotifyConfig
from processors.store import ClickHouse, ServerOptions


def kafka_access(s: Settings) -> KafkaAccess:
    password = s.kafka_sasl_password
    return KafkaAccess(
        bootstrap=s.kafka_bootstrap,
        security_protocol=s.kafka_security_protocol,
        sasl_mechanism=s.kafka_sasl_mechanism,
        sasl_username=s.kafka_sasl_username,
        sasl_password=password.get_secret_value() if password else None,
        ssl_cafile=str(s.kafka_ssl_cafile) if s.kafka_ssl_cafile else None,
    )


def topics(s: Settings) -> Topics:
    return Topics(s.topic_orders, s.topic_onboarding, s.topic_stream_stats, s.topic_channels, s.topic_dlq)


def consumer_config(s: Settings) -> ConsumerConfig:
    t = s.tuning
    return ConsumerConfig(
        kafka=kafka_access(s),
        group=s.consumer_group,
        topics=topics(s),
        session_timeout_ms=s.kafka_session_timeout_ms,
        heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
        rebalance_timeout_ms=t.kafka_rebalance_timeout_ms,
        fetch_partition_kb=t.fetch_partition_kb,
        fetch_max_kb=t.fetch_max_kb,
        batch_max_records=t.batch_max_records,
        batch_wait_ms=t.batch_wait_ms,
        min_insert_interval_ms=t.min_insert_interval_ms,
        write_retry_max_s=t.write_retry_max_s,
    )


def thresholds(s: Settings) -> Thresholds:
    return Thresholds(s.alert_silence_minutes, s.alert_refund_spike_pct)


def live_config(s: Settings) -> LiveConfig:
    t = s.tuning
    return LiveConfig(
        max_streams=s.live_max_streams,
        max_streams_per_token=t.live_max_streams_per_token,
        poll_ms=t.live_poll_ms,
        min_interval_ms=t.live_min_interval_ms,
        compute_cores=t.live_compute_cores,
        send_timeout_s=t.live_send_timeout_s,
        send_buffer_bytes=t.live_send_buffer_bytes,
        thresholds=thresholds(s),
    )


def api_config(s: Settings) -> ApiConfig:
    return ApiConfig(
        tokens_file=s.api_tokens_file,
        rate_per_s=s.api_rate_per_s,
        max_body_bytes=s.tuning.api_max_body_bytes,
        read_threads=s.tuning.api_read_threads,
        max_age_ms=s.api_max_age_ms,
        topics=topics(s),
        thresholds=thresholds(s),
        live=live_config(s),
    )


def ready_policy(s: Settings) -> ReadyPolicy:
    return ReadyPolicy(stall_s=s.tuning.ready_stall_s, probe_s=s.tuning.ready_probe_s)


def clickhouse(s: Settings) -> ClickHouse:
    """The store as the settings describe it (chDB takes its server settings from the first
    handle opened on a path, so every handle on the runtime's store is opened this way)."""
    return ClickHouse(
        s.clickhouse_dsn, cluster=s.clickhouse_cluster, options=server_options(s),
        chdb_cache_mb=s.tuning.chdb_cache_mb, chdb_merge_nice=s.tuning.chdb_merge_nice,
    )  # fmt: skip


def server_options(s: Settings) -> ServerOptions:
    """The LIVESALES_CLICKHOUSE_* parts that override the DSN's."""
    password = s.clickhouse_password
    return ServerOptions(
        user=s.clickhouse_user,
        password=password.get_secret_value() if password else None,
        ca_file=str(s.clickhouse_ca_file) if s.clickhouse_ca_file else None,
    )


def public_url(s: Settings) -> str:
    """Where a robot message's link points: LIVESALES_PUBLIC_URL, else the API listener."""
    return check_public_url(s.public_url or f"http://{s.api_host}:{s.api_port}")


def notify_config(s: Settings) -> NotifyConfig:
    """Every process with consumers detects and posts; the senders' group posts each once."""
    sender = SenderConfig(kafka=kafka_access(s), messages=MessageConfig(public_url(s)))
    return NotifyConfig(sender=sender, detector=DetectorConfig(poll_s=s.tuning.notify_poll_s))


def connector_config(s: Settings) -> ServiceConfig:
    """The connectors' workers form a consumer group of their own beside the counters'."""
    t = s.tuning
    return service_config(
        kafka_access(s), f"{s.consumer_group}.connectors", s.topic_orders, raw_topic=t.connector_pushes_topic,
        reconcile_interval_s=s.reconcile_interval_s, session_timeout_ms=s.kafka_session_timeout_ms,
        reconcile_lag_s=t.reconcile_lag_s, reconcile_overlap_s=t.reconcile_overlap_s,
        reconcile_retry_s=t.reconcile_retry_s, push_rate_per_s=t.connect_rate_per_s,
    )
