"""The production topology for real: ``livesales consume`` and ``livesales serve`` processes
sharing one ClickHouse over HTTP (tests.support's chDB-backed server), the real Tansu broker,
counts checked through the API against tests.reference's independent count."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ground.settings import Settings
from ingest.producer import Producer
from livesales.wiring import topics as topics_of
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.livesales.roles_support import (
    Role,
    api_totals,
    gather_stop,
    reference_totals,
    role_env,
    wait_assigned,
    write_tokens,
)
from tests.reference import distinct_counts, encode, generate, stored_counts
from tests.support.offsets import all_committed
from tests.support.process import ClickHouseHTTPProcess


def key_of(event: dict[str, Any]) -> bytes:
    """Contract §1's recommended key: one order's (or channel's) events in one partition."""
    return str(event.get("order_id") or event["channel_id"]).encode()


async def produce(settings: Settings, events: list[dict[str, Any]], keyed: bool = True) -> None:
    producer = Producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        msgs = [(topics_of(settings).for_schema(e["schema"]), key_of(e) if keyed else None, encode(e)) for e in events]
        for k in range(0, len(msgs), 200):
            await producer.send_all_or_raise(msgs[k : k + 200])
    finally:
        await producer.stop()


async def wait_all_counted(settings: Settings, serve: Role, events: list[dict[str, Any]], timeout: float) -> None:
    """Every offset committed, and the API answers the reference's totals."""
    want = reference_totals(events)
    await wait_for(lambda: all_committed(settings), timeout=timeout, what="every offset committed")

    answers: list[Any] = [None]

    async def api_agrees() -> bool:
        answers[0] = await api_totals(serve)
        return bool(answers[0] == want)

    try:
        await wait_for(api_agrees, timeout=30, what="the API to answer the reference totals")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nAPI: {answers[0]}\nreference: {want}") from None


async def test_consume_and_serve_share_a_clickhouse_server(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    env = role_env(topics, chhttp, write_tokens(tmp_path / "tokens.json"), LIVESALES_VALIDATION_PROCESSES="0")
    consume = Role("consume", env, tmp_path / "consume.log").start()
    serve = Role("serve", env, tmp_path / "serve.log").start()
    try:
        await asyncio.gather(consume.wait_ready(), serve.wait_ready())
        events = generate(n_orders=60, seed=11)
        await produce(topics, events)
        await wait_all_counted(topics, serve, events, timeout=60)
        assert await stored_counts(http_store) == distinct_counts(events)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{consume.url}/metrics") as r:
                metrics = await r.text()
            async with s.get(f"{consume.url}/healthz") as r:
                assert r.status == 200
        assert 'livesales_rows_stored_total{table="order_steps"}' in metrics
    finally:
        codes = await gather_stop(consume, serve)
    assert codes == [0, 0], consume.text()[-2000:] + serve.text()[-2000:]
    assert "Traceback" not in consume.text() + serve.text()


@pytest.mark.slow
async def test_two_consumers_count_exactly_through_clickhouse_faults(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    """5xx answers and connection resets before and after statements ran (an insert that
    landed but whose answer was lost), and slow answers, on every call of two consumer
    processes: nothing lost, nothing doubled."""
    env = role_env(
        topics, chhttp, write_tokens(tmp_path / "tokens.json"),
        LIVESALES_TUNING='{"batch_max_records": 100, "min_insert_interval_ms": 0}',
    )  # fmt: skip
    a = Role("consume", env, tmp_path / "a.log").start()
    serve = Role("serve", env, tmp_path / "serve.log").start()
    b = Role("consume", env, tmp_path / "b.log")
    try:
        await asyncio.gather(a.wait_ready(), serve.wait_ready())
        b.start()
        await b.wait_ready()
        await asyncio.gather(wait_assigned(a), wait_assigned(b))
        events = generate(n_orders=400, seed=17)
        chhttp.set_faults(error_rate=0.1, reset_rate=0.1, error_after_rate=0.1, reset_after_rate=0.1,
                          delay_s=0.02, seed=3)  # fmt: skip
        await produce(topics, events)
        await wait_for(lambda: all_committed(topics), timeout=180, what="every offset committed under faults")
        counts = chhttp.counts()
        chhttp.set_faults()
        assert counts["errors"] + counts["resets"] and counts["errors_after"] + counts["resets_after"], counts
        await wait_all_counted(topics, serve, events, timeout=60)
        assert await stored_counts(http_store) == distinct_counts(events)
    finally:
        chhttp.set_faults()
        codes = await gather_stop(a, b, serve)
    assert codes == [0, 0, 0]


async def assert_stored_once(http_store: ClickHouse, events: list[dict[str, Any]]) -> None:
    """Every distinct step stored, each exactly once."""
    want = distinct_counts(events)
    distinct = await http_store.query(
        "SELECT (SELECT uniqExact(step_hash) FROM order_steps) AS o, (SELECT uniqExact(event_hash) FROM stream_stats) AS s"
    )
    assert (distinct[0]["o"], distinct[0]["s"]) == want  # nothing lost
    assert await stored_counts(http_store) == want  # nothing twice


@pytest.mark.slow
async def test_unkeyed_redeliveries_across_two_consumers_count_once(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    """Without keys (contract §1: the service must not depend on them) an order's redelivery
    or webhook retry lands on another partition, owned by the other process: each process
    forwards what is not in place to ``<topic>.routed`` (ingest.routing), so all copies of
    one order step are decided by one of them."""
    env = role_env(topics, chhttp, write_tokens(tmp_path / "tokens.json"))
    a = Role("consume", env, tmp_path / "a.log").start()
    b = Role("consume", env, tmp_path / "b.log").start()
    try:
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        await asyncio.gather(wait_assigned(a), wait_assigned(b))
        events = generate(n_orders=300, seed=29)
        await produce(topics, events, keyed=False)
        await wait_for(lambda: all_committed(topics), timeout=120, what="every offset committed")
        await assert_stored_once(http_store, events)
        forwarded = [await metrics_of(r) for r in (a, b)]
        assert sum('livesales_messages_forwarded_total{topic="' in m for m in forwarded) >= 1, forwarded
    finally:
        codes = await gather_stop(a, b)
        assert codes == [0, 0]


@pytest.mark.slow
async def test_consumer_killed_while_events_flow_loses_nothing(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    """SIGKILL one of two consumer processes while its insert has landed but not been
    answered (so its offsets are not committed), restart it, keep producing: every order
    step is stored and counted once."""
    env = role_env(topics, chhttp, write_tokens(tmp_path / "tokens.json"), LIVESALES_TUNING='{"batch_max_records": 100}')
    a = Role("consume", env, tmp_path / "a.log").start()
    b = Role("consume", env, tmp_path / "b.log").start()
    serve = Role("serve", env, tmp_path / "serve.log").start()
    try:
        await asyncio.gather(a.wait_ready(), b.wait_ready(), serve.wait_ready())
        await asyncio.gather(wait_assigned(a), wait_assigned(b))
        events = generate(n_orders=600, seed=23)
        third = len(events) // 3
        # inserts land at once but are answered 0.4 s later: a kill now is "stored, not committed"
        chhttp.set_faults(match="INSERT", delay_after_s=0.4)
        await produce(topics, events[:third])

        async def a_stored_some() -> bool:
            return "livesales_rows_stored_total" in await metrics_of(a) and (await stored_counts(http_store))[0] > 0

        await wait_for(a_stored_some, timeout=60, what="rows stored before the kill")
        a.kill()
        await produce(topics, events[third : 2 * third])
        a.start()
        await a.wait_ready()
        await produce(topics, events[2 * third :])
        chhttp.set_faults()
        await wait_for(lambda: all_committed(topics), timeout=180, what="every offset committed after the kill")
        await assert_stored_once(http_store, events)
        await wait_all_counted(topics, serve, events, timeout=30)  # and the API answers exactly
    finally:
        chhttp.set_faults()
        codes = await gather_stop(a, b, serve)
    assert codes == [0, 0, 0]


async def metrics_of(role: Role) -> str:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{role.url}/metrics") as r:
            return await r.text()
    except aiohttp.ClientError:
        return ""
