"""The livesales store over the chDB-backed ClickHouse HTTP server: migrate, write, read,
and the faults a network and a busy server bring (nothing lost, nothing doubled)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from processors.batch import prepare
from processors.store import ClickHouse, StorageError
from processors.writer import Writer
from tests.api.conftest import Rec
from tests.conftest import wait_for
from tests.reference import distinct_counts, generate, reference, stored_counts, stored_minutes
from tests.support.process import ClickHouseHTTPProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTPProcess]:
    root = tmp_path_factory.mktemp("chhttp")
    with ClickHouseHTTPProcess(root / "data", log_path=root / "server.log") as s:
        yield s


@pytest.fixture
async def store(server: ClickHouseHTTPProcess) -> AsyncIterator[ClickHouse]:
    """A fresh database per test on the shared server, so tests never see each other's rows."""
    server.set_faults()
    admin = clickhouse_connect.get_client(dsn=server.dsn, autogenerate_session_id=False)
    db = f"t{time.monotonic_ns()}"
    admin.command(f"CREATE DATABASE {db}")
    ch = ClickHouse(server.dsn.rsplit("/", 1)[0] + f"/{db}")
    await ch.open()
    try:
        yield ch
    finally:
        server.set_faults()
        await ch.close()
        admin.command(f"DROP DATABASE {db}")
        admin.close()


def records(events: list[dict[str, Any]]) -> list[Rec]:
    return [Rec("t", 0, i, json.dumps(e, ensure_ascii=False).encode()) for i, e in enumerate(events)]


async def write_all(ch: ClickHouse, events: list[dict[str, Any]], batch: int = 200) -> int:
    """Write as the consumer does: each batch retried until it is stored; returns retries."""
    writer = Writer(ch)
    await writer.open()
    recs, retries = records(events), 0
    for k in range(0, len(recs), batch):
        prepared = prepare(recs[k : k + batch])
        while True:
            try:
                await writer.store(prepared.rows.values())
                break
            except StorageError:
                retries += 1
    return retries


async def test_migrates_writes_and_reads_like_the_embedded_store(store: ClickHouse) -> None:
    events = generate(n_orders=200, seed=3)
    await write_all(store, events)
    assert await stored_counts(store) == distinct_counts(events)
    assert await stored_minutes(store) == reference(events)
    versions = await store.query("SELECT max(version) AS v FROM schema_migrations")
    assert versions[0]["v"] >= 1


async def test_long_bound_parameters_travel_as_a_form(store: ClickHouse) -> None:
    hashes = list(range(50_000))  # beyond what fits a URL: clickhouse-connect posts a form
    rows = await store.query("SELECT count() AS n FROM numbers(100000) WHERE number IN {h:Array(UInt64)}", {"h": hashes})
    assert rows == [{"n": 50_000}]


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 0.3},
        {"error_after_rate": 0.3},
        {"reset_rate": 0.3},
        {"reset_after_rate": 0.3},
    ],
    ids=["5xx-before", "5xx-after-insert", "reset-before", "reset-after-insert"],
)
async def test_insert_faults_lose_and_double_nothing(
    server: ClickHouseHTTPProcess, store: ClickHouse, faults: dict[str, float]
) -> None:
    events = generate(n_orders=150, seed=5)
    server.set_faults(match="INSERT", seed=7, **faults)
    retries = await write_all(store, events, batch=60)
    counts = server.counts()
    server.set_faults()
    assert retries > 0, counts  # faults really hit the writes
    assert await stored_counts(store) == distinct_counts(events)
    assert await stored_minutes(store) == reference(events)


async def test_slow_answers_are_waited_for(server: ClickHouseHTTPProcess, store: ClickHouse) -> None:
    server.set_faults(delay_s=0.4)
    started = time.perf_counter()
    assert await store.query("SELECT 1 AS one") == [{"one": 1}]
    assert time.perf_counter() - started >= 0.4


async def test_errors_carry_clickhouse_codes(store: ClickHouse) -> None:
    with pytest.raises(StorageError, match="UNKNOWN_IDENTIFIER"):
        await store.query("SELECT no_such_column")


def test_wrong_password_is_refused(server: ClickHouseHTTPProcess) -> None:
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=server.user, password="wrong")  # noqa: S106


def test_command_answers_and_summaries(server: ClickHouseHTTPProcess, tmp_path: Path) -> None:
    client = clickhouse_connect.get_client(dsn=server.dsn, autogenerate_session_id=False)
    try:
        assert client.command("SELECT 1 + 1") == 2
        assert client.command("SELECT 'a' WHERE 0") == ""  # a result set with no rows
        summary = client.command("CREATE TABLE IF NOT EXISTS cmd_t (a UInt8) ENGINE = Memory")
        assert not isinstance(summary, (int, str))
        written = client.insert("cmd_t", [[1], [2], [3]], column_names=["a"])
        assert written.written_rows == 3
        raw = client.raw_query("SELECT a FROM cmd_t ORDER BY a FORMAT JSONEachRow")
        assert [json.loads(line)["a"] for line in raw.splitlines()] == [1, 2, 3]
        client.raw_insert("cmd_t", ["a"], b"\x04\x05", fmt="RowBinary")
        assert client.query("SELECT sum(a) FROM cmd_t").result_rows == [(15,)]
    finally:
        client.command("DROP TABLE IF EXISTS cmd_t")
        client.close()


async def test_a_late_answer_comes_after_the_insert_landed(server: ClickHouseHTTPProcess, store: ClickHouse) -> None:
    """delay_after_s: the window in which a killed client has stored rows it never heard of."""
    await store.run_in_thread(store.client.command, "CREATE TABLE late_t (a UInt8) ENGINE = MergeTree ORDER BY a")
    server.set_faults(match="INSERT", delay_after_s=1.5)
    pending = asyncio.ensure_future(store.run_in_thread(store.client.insert, "late_t", [[1]], column_names=["a"]))

    async def landed() -> bool:
        return (await store.query("SELECT count() AS n FROM late_t"))[0]["n"] == 1

    await wait_for(landed, timeout=5, what="the row to land")
    assert not pending.done()  # stored, and its client still waits for the answer
    await pending
