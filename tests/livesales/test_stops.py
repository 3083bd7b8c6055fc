"""SIGTERM in every start-up state ends the process within 5 s, with exit code 0."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localbroker import LocalBroker
from tests.livesales.procs import Livesales, free_port

STOP_WITHIN_S = 5.0


def stops_quickly(app: Livesales, sig: int = signal.SIGTERM) -> None:
    sent = app.signal(sig)
    try:
        code = app.wait(timeout=STOP_WITHIN_S + 10)
    finally:
        app.kill()
    took = time.monotonic() - sent
    print(f"stopped in {took:.2f} s")  # docs/RELIABILITY.md quotes these (pytest -s)
    assert code == 0, app.text()
    assert took < STOP_WITHIN_S, f"took {took:.1f}s to stop\n{app.text()}"
    assert "Traceback" not in app.text(), app.text()


@pytest.fixture
def frozen_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker that accepts connections but answers nothing (SIGSTOP)."""
    with LocalBroker(log_path=tmp_path / "frozen.log") as b:
        b.freeze()
        try:
            yield b
        finally:
            b.thaw()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_while_broker_is_unreachable(tmp_path: Path, sig: int) -> None:
    app = Livesales(tmp_path, {"LIVESALES_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})
    app.wait_log("broker unavailable")
    stops_quickly(app, sig)


def test_stop_while_broker_is_frozen(tmp_path: Path, frozen_broker: LocalBroker) -> None:
    app = Livesales(tmp_path, {"LIVESALES_KAFKA_BOOTSTRAP": frozen_broker.bootstrap})
    app.wait_log("API listening")  # storage and API are up; now it waits on the broker
    time.sleep(0.5)
    stops_quickly(app)


def test_stop_while_clickhouse_is_unreachable(tmp_path: Path) -> None:
    app = Livesales(tmp_path, {"LIVESALES_CLICKHOUSE_DSN": f"http://default:@127.0.0.1:{free_port()}/default",
                               "LIVESALES_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})  # fmt: skip
    app.wait_log("ClickHouse unavailable")
    stops_quickly(app)


def test_stop_when_running(tmp_path: Path, broker: LocalBroker) -> None:
    app = Livesales(tmp_path, {"LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap,
                               "LIVESALES_TOPIC_ORDERS": f"stop-{time.monotonic_ns()}"})  # fmt: skip
    app.wait_log("assigned")
    stops_quickly(app)


def test_serve_stops_while_broker_is_frozen(tmp_path: Path, frozen_broker: LocalBroker) -> None:
    app = Livesales(tmp_path, {"LIVESALES_KAFKA_BOOTSTRAP": frozen_broker.bootstrap}, "serve")
    app.wait_log("applied migration")  # storage is open; the producer now waits on the frozen broker
    time.sleep(0.5)
    stops_quickly(app)
