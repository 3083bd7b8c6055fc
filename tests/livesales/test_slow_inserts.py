"""Exactly once when ClickHouse is slow (docs/DESIGN.md, "Zombies and slow inserts").

``livesales consume`` processes on the real broker share one ClickHouse over HTTP
(tests.support's chDB-backed server) whose every data insert runs 9 s after it arrived,
as an overloaded server, a quorum or a Distributed insert would. A consumer is stopped
past its session, killed, or restarted while such an insert is in flight; its successor
takes the partitions over and re-reads the same records. Before the write fence, the
successor decided while the old insert was still running and both landed: whole batches
stored twice. Counts are checked against tests.reference's independent count.
"""

from __future__ import annotations

import ast
import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from ground.settings import Settings
from processors.placement import partitions_for
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.livesales.roles_support import Role, gather_stop, role_env, wait_assigned, write_tokens
from tests.livesales.test_roles import assert_stored_once, produce
from tests.reference import generate
from tests.support.offsets import all_committed
from tests.support.process import ClickHouseHTTPProcess

pytestmark = pytest.mark.slow

SLOW_S = 9.0
# Longer than the group takes to hand a stopped member's partitions over (Tansu: 4.4-11 s),
# so the successor's first decision always comes while the old insert is still running.
SLOWER_S = 15.0
PARTITIONS = 4  # the test topics' (tests/conftest.py)
# Only the data inserts are slow (they read the batch from input()); claims and look-ups are not.
SLOW_INSERTS = {"match": "FROM input(", "delay_s": SLOW_S}
_CLAIM = re.compile(r"claim=([0-9a-f]+\.\d+)")


_ASSIGNED = re.compile(r"assigned (\[.*?\]), claim=")


def on_partitions_of(role: Role, topics: Settings, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order events whose routing key (order_id) lands on ``role``'s latest assignment.

    So the other consumer has nothing to store when it takes these partitions over: it
    rejoins at once, its new owner's first decision comes while the stopped one's insert
    is still running on the server — the race the write fence closes. (A busy successor
    would itself drain a 9 s insert first, and miss the race.)"""
    owned = {p for t, p in ast.literal_eval(_ASSIGNED.findall(role.text())[-1]) if t == topics.topic_orders}
    orders = [e for e in events if e["schema"] == "order.v1"]
    where = partitions_for([str(e["order_id"]).encode() for e in orders], PARTITIONS)
    return [e for e, p in zip(orders, where.tolist(), strict=True) if p in owned]


def env_for(topics: Settings, ch: ClickHouseHTTPProcess, tmp_path: Path) -> dict[str, str]:
    return role_env(
        topics, ch, write_tokens(tmp_path / "tokens.json"),
        LIVESALES_TUNING='{"batch_max_records": 200}', LIVESALES_VALIDATION_PROCESSES="0",
    )  # fmt: skip


async def running_inserts_of(http_store: ClickHouse, role: Role) -> int:
    """How many of ``role``'s data inserts the server is running now (its latest claim)."""
    tokens = _CLAIM.findall(role.text())
    if not tokens:
        return 0
    rows = await http_store.query(
        "SELECT count() AS n FROM system.processes WHERE position(query_id, {t:String}) > 0",
        {"t": f"-{tokens[-1]}-"},
    )
    return int(rows[0]["n"])


async def two_consumers(env: dict[str, str], tmp_path: Path) -> tuple[Role, Role]:
    a = Role("consume", env, tmp_path / "a.log").start()
    b = Role("consume", env, tmp_path / "b.log").start()
    await asyncio.gather(a.wait_ready(), b.wait_ready())
    await asyncio.gather(wait_assigned(a), wait_assigned(b))
    return a, b


async def successor_takes_over(
    topics: Settings, chhttp: ClickHouseHTTPProcess, store: ClickHouse, tmp_path: Path, seed: int, fault: str
) -> None:
    """A has an insert running on the server (held ``SLOWER_S``) when ``fault`` hits it;
    B takes A's partitions over and re-reads the uncommitted batch while that insert still
    runs. Every order step must be stored once."""
    a, b = await two_consumers(env_for(topics, chhttp, tmp_path), tmp_path)
    try:
        chhttp.set_faults(**{**SLOW_INSERTS, "delay_s": SLOWER_S})
        events = on_partitions_of(a, topics, generate(n_orders=400, seed=seed))
        await produce(topics, events)
        await wait_for(lambda: running_inserts_of(store, a), timeout=60, what="an insert of A running")
        assert a.proc is not None
        claims = _claims(b)
        if fault == "stop":
            a.proc.send_signal(signal.SIGSTOP)
        else:
            a.kill()
        try:  # A stays stopped (or dead) until B has taken its partitions over
            await wait_for(lambda: _more_claims(b, claims), timeout=60, what="B assigned A's partitions")
        finally:
            if fault == "stop":
                a.proc.send_signal(signal.SIGCONT)
            else:
                a.start()  # as a supervisor would
        await wait_for(lambda: all_committed(topics), timeout=240, what="every offset committed")
        chhttp.set_faults()
        await assert_stored_once(store, events)
    finally:
        chhttp.set_faults()
        codes = await gather_stop(a, b)
    assert codes == [0, 0], a.text()[-3000:] + b.text()[-3000:]


async def test_a_consumer_stopped_past_its_session_with_a_slow_insert_in_flight_doubles_nothing(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    """SIGSTOP for longer than its session (6 s): the new owner must wait out the old
    insert (or have it fail its own check) before deciding; after SIGCONT the zombie
    writes nothing more."""
    await successor_takes_over(topics, chhttp, http_store, tmp_path, seed=41, fault="stop")


async def test_a_consumer_killed_with_a_slow_insert_in_flight_doubles_nothing(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    """SIGKILL: the server goes on running the insert after its client is gone (as
    ClickHouse does with an insert whose data it has); it would land after the successor
    decided."""
    await successor_takes_over(topics, chhttp, http_store, tmp_path, seed=43, fault="kill")


async def test_a_rolling_restart_under_slow_inserts_doubles_nothing(
    topics: Settings, chhttp: ClickHouseHTTPProcess, http_store: ClickHouse, tmp_path: Path
) -> None:
    """Every deploy: each consumer SIGTERMed in turn and started again while events flow
    and every insert takes 9 s. Each SIGTERM makes the others revoke with slow inserts in
    flight, the case where a draining member kept renewing its lease on "rebalance in
    progress" answers and wrote after its partitions had moved."""
    env = env_for(topics, chhttp, tmp_path)
    a, b = await two_consumers(env, tmp_path)
    try:
        chhttp.set_faults(**SLOW_INSERTS)
        events = generate(n_orders=300, seed=47)
        third = len(events) // 3
        await produce(topics, events[:third])
        for role in (a, b):
            await wait_for(lambda r=role: running_inserts_of(http_store, r), timeout=60, what="an insert running")
            assert await asyncio.to_thread(role.stop) == 0, role.text()[-3000:]
            role.start()
            await role.wait_ready()
            await produce(topics, events[third : 2 * third] if role is a else events[2 * third :])
        await wait_for(lambda: all_committed(topics), timeout=240, what="every offset committed")
        chhttp.set_faults()
        await assert_stored_once(http_store, events)
    finally:
        chhttp.set_faults()
        codes = await gather_stop(a, b)
    assert codes == [0, 0], a.text()[-3000:] + b.text()[-3000:]


def _claims(role: Role) -> int:
    """How many assignments the process logged (each with its claim)."""
    return len(_CLAIM.findall(role.text()))


async def _more_claims(role: Role, than: int) -> bool:
    return _claims(role) > than
