"""SIGTERM in every start-up state ends the process within 5 s, with exit code 0."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
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
    app.wait_log("assigned")  # the group is joined while storage opens: wait for both
    app.wait_log("API listening")
    stops_quickly(app)


def test_stop_while_migrating(tmp_path: Path, broker: LocalBroker) -> None:
    """A stop between migrations ends them there (the rest run at the next start): on a
    loaded machine the nine migrations of a fresh store took 5 s, and the stop waited."""
    app = Livesales(tmp_path, {"LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap,
                               "LIVESALES_TOPIC_ORDERS": f"stop-{time.monotonic_ns()}"})  # fmt: skip
    app.wait_log("applied migration 1:")
    stops_quickly(app)


def test_serve_stops_while_broker_is_frozen(tmp_path: Path, frozen_broker: LocalBroker) -> None:
    app = Livesales(tmp_path, {"LIVESALES_KAFKA_BOOTSTRAP": frozen_broker.bootstrap}, "serve")
    app.wait_log("applied migration")  # storage is open; the producer now waits on the frozen broker
    time.sleep(0.5)
    stops_quickly(app)


def test_stop_when_running_and_the_broker_freezes(tmp_path: Path) -> None:
    """Issue 23: with the broker frozen while running, the last commit and the leave-group
    waited for aiokafka's 40 s request timeout. Each step of a stop has a deadline now."""
    with LocalBroker(log_path=tmp_path / "broker.log") as broker:
        topic = f"stop-{time.monotonic_ns()}"
        app = Livesales(tmp_path, {
            "LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap, "LIVESALES_TOPIC_ORDERS": topic,
            "LIVESALES_TUNING": '{"batch_max_records": 20, "min_insert_interval_ms": 300}',
        })  # fmt: skip
        app.wait_log("assigned")
        done = threading.Event()
        flow = threading.Thread(target=lambda: asyncio.run(_keep_producing(broker.bootstrap, topic, done)))
        flow.start()  # orders flow: a fetch, an insert and a commit are always under way
        try:
            time.sleep(3.0)
            broker.freeze()
            time.sleep(8.0)  # past the session: heartbeats, commits and the coordinator look-up wait on it
            stops_quickly(app)
        finally:
            done.set()
            broker.thaw()
            flow.join(60)


def test_stop_while_every_insert_fails(tmp_path: Path, broker: LocalBroker) -> None:
    """A consumer whose inserts all fail (a ClickHouse outage) gives its batches up at a
    stop, says so in one line, and exits: they are read again by whoever comes next."""
    from tests.support.process import ClickHouseHTTPProcess

    with ClickHouseHTTPProcess(tmp_path / "chdata", log_path=tmp_path / "ch.log") as ch:
        topic = f"stop-{time.monotonic_ns()}"
        app = Livesales(tmp_path, {
            "LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap, "LIVESALES_TOPIC_ORDERS": topic,
            "LIVESALES_CLICKHOUSE_DSN": f"http://127.0.0.1:{ch.port}/default",
            "LIVESALES_CLICKHOUSE_USER": ch.user, "LIVESALES_CLICKHOUSE_PASSWORD": ch.password,
            "LIVESALES_HEALTH_PORT": str(free_port()),
        }, "consume")  # fmt: skip
        app.wait_log("assigned")
        ch.set_faults(match="INSERT INTO order_events_in", error_rate=1.0)
        asyncio.run(_produce_orders(broker.bootstrap, topic, n_orders=1))
        app.wait_log("storage failed")
        stops_quickly(app)
        assert "they will be re-read" in app.text()


async def _produce_orders(bootstrap: str, topic: str, n_orders: int) -> None:
    from ingest.producer import Producer
    from tests.reference import encode, generate

    producer = Producer(bootstrap)
    await producer.start()
    try:
        orders = [e for e in generate(n_orders=n_orders, seed=1) if e["schema"] == "order.v1"]
        await producer.send_all_or_raise([(topic, str(e["order_id"]).encode(), encode(e)) for e in orders])
    finally:
        await producer.stop()


async def _keep_producing(bootstrap: str, topic: str, done: threading.Event) -> None:
    """A few hundred orders a second until ``done`` (sends to a frozen broker just wait)."""
    from ingest.producer import Producer
    from tests.reference import encode, generate

    producer = Producer(bootstrap)
    await producer.start()
    try:
        orders = [e for e in generate(n_orders=5_000, seed=2) if e["schema"] == "order.v1"]
        for k in range(0, len(orders), 20):
            if done.is_set():
                break
            chunk = orders[k : k + 20]
            await asyncio.wait_for(
                producer.send_all_or_raise([(topic, str(e["order_id"]).encode(), encode(e)) for e in chunk]), 30
            )
            await asyncio.sleep(0.05)
    except TimeoutError:
        pass  # frozen
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5)
