"""The write fence against a server's process list (tests.support's ClickHouse over HTTP,
whose every data insert here runs seconds after it arrived, listed meanwhile, as on a
slow server): a new owner's claim waits out, or kills, the earlier owner's running insert
before it decides, and that insert stores nothing."""

from __future__ import annotations

import asyncio

import pytest

from processors.fence import Claim, FenceConfig, Superseded
from processors.store import ClickHouse, StorageError
from processors.writer import Ownership, Writer
from tests.conftest import wait_for
from tests.processors.test_dedupe_across_processes import order, rows, steps
from tests.support.process import ClickHouseHTTPProcess

pytestmark = pytest.mark.slow

P0 = ("orders", 0)


async def running_inserts(store: ClickHouse) -> int:
    got = await store.query("SELECT count() AS n FROM system.processes WHERE startsWith(query_id, 'livesales-w-')")
    return int(got[0]["n"])


def owner(token: str) -> Ownership:
    return Ownership(holds=lambda: True, claim=Claim("g", token, (P0,)), partitions=(P0,))


@pytest.mark.parametrize("patience_s", [30.0, 0.5], ids=["waited-out", "killed"])
async def test_a_new_owner_decides_only_once_the_old_owners_insert_cannot_land(
    http_store: ClickHouse, chhttp: ClickHouseHTTPProcess, patience_s: float
) -> None:
    """A sends K; the server holds it 4 s. B is assigned the partition meanwhile, claims it
    and re-reads K: it must not decide before A's insert has ended. Waited out, A's
    insert then fails its own check (B's claim is the latest); killed, it never runs.
    Either way K is stored once, by B."""
    store, server = http_store, chhttp
    a, b = Writer(store), Writer(store, fence=FenceConfig(patience_s=patience_s, poll_s=0.02))
    await a.open()
    await b.open()
    await a.store(rows(order("e0", "o0")), owner("a.1"))  # A's claim, before the server slows down
    server.set_faults(match="FROM input(", delay_s=4.0)
    k = order("e-k", "o-k")
    sent = asyncio.create_task(a.store(rows(k), owner("a.1")))
    await wait_for(lambda: running_inserts(store), timeout=10, what="A's insert running on the server")
    server.set_faults()  # B's own inserts are fast: only A's is in flight
    await b.store(rows(k, order("e-l", "o-l")), owner("b.1"))
    assert b.fence is not None and b.fence.waited == 1
    assert b.fence.killed == (1 if patience_s < 4 else 0)
    with pytest.raises((Superseded, StorageError)):
        await sent
    assert await steps(store) == {("o0", "paid"): 1, ("o-k", "paid"): 1, ("o-l", "paid"): 1}
