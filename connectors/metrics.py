"""Prometheus metrics of the connectors, registered in the process's registry
(``ground.metrics.Metrics().registry``) under the ``livesales_connector_`` prefix."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConnectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.pushes = Counter("livesales_connector_pushes", "Push messages verified and put on the raw topic",
                              ["platform"], registry=r)  # fmt: skip
        self.push_requests = Counter(
            "livesales_connector_push_requests", "POST /connect/{platform} answers by status", ["platform", "status"],
            registry=r,
        )
        self.bad_signatures = Counter(
            "livesales_connector_bad_signatures", "Pushes refused: bad or missing signature, or not decryptable",
            ["platform"], registry=r,
        )
        self.unknown_shops = Counter(
            "livesales_connector_unknown_shops", "Verified push messages for a shop not in the connectors file",
            ["platform"], registry=r,
        )
        self.push_ack_seconds = Histogram(
            "livesales_connector_push_ack_seconds", "Receipt of a push to its answer (its messages acked by Kafka)",
            ["platform"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5), registry=r,
        )
        self.events = Counter(
            "livesales_connector_events", "order.v1 events published (acked), by the path that published them",
            ["platform", "source"], registry=r,
        )
        self.recovered = Counter(
            "livesales_connector_recovered_steps", "Steps first published by reconciliation (pushes lost or late)",
            ["platform"], registry=r,
        )
        self.api_calls = Counter(
            "livesales_connector_api_calls", "Platform API calls by outcome (ok, unavailable, refused)",
            ["platform", "outcome"], registry=r,
        )
        self.retries = Counter(
            "livesales_connector_push_retries", "Raw pushes left on Kafka to retry (platform API unavailable)",
            ["platform"], registry=r,
        )
        self.reconciliations = Counter(
            "livesales_connector_reconciliations", "Reconciliation windows by outcome (done, failed)",
            ["platform", "outcome"], registry=r,
        )
        self.reconciled_lag = Gauge(
            "livesales_connector_reconciled_lag_seconds", "Now minus the watermark, per shop this process owns",
            ["platform", "shop_id"], registry=r,
        )
