"""The livesales store over the chDB-backed ClickHouse HTTP server: migrate, write, read,
and the faults a network and a busy server bring (nothing lost, nothing doubled)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.summary import QuerySummary

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


# -- the process list, KILL QUERY and INSERT ... SELECT FROM input(): what a write fence uses --


@pytest.fixture
def database(server: ClickHouseHTTPProcess) -> Iterator[str]:
    """A fresh database for plain clickhouse-connect clients (no livesales store in it)."""
    server.set_faults()
    admin = connect(server)
    name = f"t{time.monotonic_ns()}"
    admin.command(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        server.set_faults()
        admin.command(f"DROP DATABASE {name}")
        admin.close()


def connect(server: ClickHouseHTTPProcess, database: str = "default") -> Client:
    return clickhouse_connect.get_client(dsn=f"{server.dsn.rsplit('/', 1)[0]}/{database}", autogenerate_session_id=False)


def listed(client: Client, prefix: str) -> list[str]:
    """The ids of the queries in system.processes that start with ``prefix``, as the service asks."""
    result = client.query(
        "SELECT query_id FROM system.processes WHERE startsWith(query_id, {p:String}) ORDER BY query_id",
        parameters={"p": prefix},
    )
    return [row[0] for row in result.result_rows]


def insert_later(client: Client, table: str, query_id: str) -> asyncio.Future[Any]:
    """An insert of one row under ``query_id``, sent from a thread: its future fails or answers."""
    return asyncio.ensure_future(
        asyncio.to_thread(
            client.command, f"INSERT INTO {table} FORMAT JSONEachRow", data=b'{"a":1}\n', settings={"query_id": query_id}
        )
    )


async def test_the_process_list_shows_a_waiting_insert_until_it_ran(server: ClickHouseHTTPProcess, database: str) -> None:
    writer, watcher = connect(server, database), connect(server, database)
    writer.command("CREATE TABLE procs_t (a UInt8) ENGINE = MergeTree ORDER BY a")
    prefix = f"fence-{uuid.uuid4().hex}-"
    server.set_faults(match="INSERT", delay_s=2)
    pending = insert_later(writer, "procs_t", prefix + "1")

    async def waiting() -> list[str]:
        return await asyncio.to_thread(listed, watcher, prefix)

    assert await wait_for(waiting, timeout=10, what="the delayed insert in system.processes") == [prefix + "1"]
    await asyncio.wait_for(pending, 30)
    assert listed(watcher, prefix) == []  # gone before its answer came
    assert watcher.command("SELECT count() FROM procs_t") == 1

    server.set_faults(match="INSERT", delay_after_s=2)  # ran at once, answered late: no longer listed
    pending = insert_later(writer, "procs_t", prefix + "2")

    async def landed() -> bool:
        return await asyncio.to_thread(watcher.command, "SELECT count() FROM procs_t") == 2

    await wait_for(landed, timeout=10, what="the second row to land")
    assert listed(watcher, prefix) == []
    assert not pending.done()
    await asyncio.wait_for(pending, 30)


async def test_kill_query_sync_cancels_a_waiting_insert(server: ClickHouseHTTPProcess, database: str) -> None:
    writer, killer = connect(server, database), connect(server, database)
    writer.command("CREATE TABLE kill_t (a UInt8) ENGINE = MergeTree ORDER BY a")
    prefix = f"fence-{uuid.uuid4().hex}-"
    killed = server.counts()["killed"]
    server.set_faults(match="INSERT", delay_s=60)
    pending = insert_later(writer, "kill_t", prefix + "1")

    async def waiting() -> list[str]:
        return await asyncio.to_thread(listed, killer, prefix)

    await wait_for(waiting, timeout=10, what="the delayed insert in system.processes")
    started = time.monotonic()
    answer = killer.command(
        "KILL QUERY WHERE query_id IN {ids:Array(String)} SYNC", parameters={"ids": [prefix + "1", prefix + "none"]}
    )
    assert prefix + "1" in str(answer) and "finished" in str(answer)
    assert listed(killer, prefix) == []  # SYNC: answered once the insert left the list
    with pytest.raises(DatabaseError, match="394") as refused:
        await asyncio.wait_for(pending, 10)
    assert "QUERY_WAS_CANCELLED" in str(refused.value)
    assert time.monotonic() - started < 30  # woken, not waited out
    server.set_faults()
    assert killer.command("SELECT count() FROM kill_t") == 0
    assert server.counts()["killed"] == killed + 1


async def test_kill_query_async_by_one_id_and_unsupported_forms(server: ClickHouseHTTPProcess, database: str) -> None:
    writer, killer = connect(server, database), connect(server, database)
    writer.command("CREATE TABLE kill_async_t (a UInt8) ENGINE = MergeTree ORDER BY a")
    prefix = f"fence-{uuid.uuid4().hex}-"
    server.set_faults(match="INSERT", delay_s=60)
    pending = insert_later(writer, "kill_async_t", prefix + "1")

    async def waiting() -> list[str]:
        return await asyncio.to_thread(listed, killer, prefix)

    await wait_for(waiting, timeout=10, what="the delayed insert in system.processes")
    answer = killer.command("KILL QUERY WHERE query_id = {id:String} ASYNC", parameters={"id": prefix + "1"})
    assert prefix + "1" in str(answer) and "waiting" in str(answer)
    with pytest.raises(DatabaseError, match="394"):
        await asyncio.wait_for(pending, 10)
    assert killer.command("KILL QUERY WHERE query_id = {id:String}", parameters={"id": prefix + "none"}) == ""
    with pytest.raises(DatabaseError, match="NOT_IMPLEMENTED"):
        killer.command("KILL QUERY WHERE user = 'livesales' SYNC")
    server.set_faults()
    assert killer.command("SELECT count() FROM kill_async_t") == 0


def test_insert_select_from_input_filters_on_the_server(server: ClickHouseHTTPProcess, database: str) -> None:
    """A throwIf in the WHERE fences the insert: all rows stored, or none and code 395."""
    client = connect(server, database)
    client.command("CREATE TABLE fenced_t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    sql = (
        "INSERT INTO fenced_t SETTINGS async_insert = 0 SELECT * FROM input({s:String}) "
        "WHERE throwIf({x:UInt8} = 1, 'fenced, no FORMAT here') = 0 FORMAT JSONEachRow"
    )
    structure = "a UInt32, s String"
    inserted = server.counts()["inserted_rows"]
    summary = client.command(
        sql, parameters={"s": structure, "x": 0}, data=b'{"a":1,"s":"x"}\n{"a":2,"s":"y"}\n',
        settings={"query_id": f"fence-{uuid.uuid4().hex}"},
    )  # fmt: skip
    assert isinstance(summary, QuerySummary) and summary.written_rows == 2
    assert server.counts()["inserted_rows"] == inserted + 2
    with pytest.raises(DatabaseError, match="395") as refused:
        client.command(sql, parameters={"s": structure, "x": 1}, data=b'{"a":3,"s":"z"}\n')
    assert "fenced" in str(refused.value)
    assert client.query("SELECT a, s FROM fenced_t ORDER BY a").result_rows == [(1, "x"), (2, "y")]
    client.command("CREATE TABLE fenced_null (a UInt32, s String) ENGINE = Null")
    literal = sql.replace("fenced_t", "fenced_null").replace("{s:String}", f"'{structure}'")
    nulled = client.command(literal, parameters={"x": 0}, data=b'{"a":4,"s":"w"}\n')
    assert isinstance(nulled, QuerySummary) and nulled.written_rows == 1
