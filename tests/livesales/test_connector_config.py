"""The connectors' tuning reaches their config (livesales.wiring.connector_config): the
names an operator or a test sets in LIVESALES_TUNING are the ones the parts run with."""

from __future__ import annotations

from ground.settings import Settings, Tuning
from livesales.wiring import connector_config


def test_tuning_reaches_the_receiver_the_reconciler_and_the_worker() -> None:
    tuning = Tuning(connect_rate_per_s=40, reconcile_lag_s=2, reconcile_overlap_s=30, reconcile_retry_s=5,
                    connector_pushes_topic="pushes-x")  # fmt: skip
    c = connector_config(Settings(kafka_session_timeout_ms=9_000, reconcile_interval_s=60, tuning=tuning))
    assert (c.receiver.rate_per_s, c.receiver.burst, c.receiver.raw_topic) == (40, 80, "pushes-x")
    assert (c.reconcile.lag_s, c.reconcile.overlap_s, c.reconcile.retry_s, c.reconcile.interval_s) == (2, 30, 5, 60)
    assert (c.worker.raw_topic, c.worker.session_timeout_ms) == ("pushes-x", 9_000)


def test_the_defaults_are_the_documented_ones() -> None:
    c = connector_config(Settings())
    assert (c.receiver.rate_per_s, c.reconcile.lag_s, c.reconcile.overlap_s) == (500, 180, 600)
    assert c.receiver.raw_topic == "livesales.connector_pushes"
