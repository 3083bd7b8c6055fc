"""The write fence on real ClickHouse (chDB): a claim, and inserts checked against it inside
their own statement (processors.fence). The waiting out of an earlier owner's running insert
needs a server's process list: tests/processors/test_fence_server.py."""

from __future__ import annotations

import pytest

from processors.fence import Claim, Superseded
from processors.store import ClickHouse
from processors.writer import Ownership, Writer
from tests.processors.test_dedupe_across_processes import order, rows, steps

P0, P1 = ("orders", 0), ("orders", 1)


def owner(claim: Claim, *partitions: tuple[str, int]) -> Ownership:
    return Ownership(holds=lambda: True, claim=claim, partitions=partitions)


async def test_an_insert_under_a_superseded_claim_writes_nothing(
    clickhouse: ClickHouse, two_writers: tuple[Writer, Writer]
) -> None:
    """A owned partition 0 and is still sending when B is assigned it and claims it: A's
    next insert fails inside its statement, B's lands, and each step is stored once."""
    a, b = two_writers
    claim_a = Claim("g", "a.1", (P0, P1))
    await a.store(rows(order("e1", "o1")), owner(claim_a, P0))
    await b.store(rows(order("e2", "o2")), owner(Claim("g", "b.1", (P0,)), P0))
    with pytest.raises(Superseded):
        await a.store(rows(order("e3", "o3")), owner(claim_a, P0))
    # partition 1 is still A's: the latest claim of it is A's own
    await a.store(rows(order("e4", "o4")), owner(claim_a, P1))
    assert await steps(clickhouse) == {("o1", "paid"): 1, ("o2", "paid"): 1, ("o4", "paid"): 1}


async def test_a_batch_of_a_partition_never_claimed_is_refused(two_writers: tuple[Writer, Writer]) -> None:
    a, _ = two_writers
    with pytest.raises(Superseded):
        await a.store(rows(order("e1", "o1")), owner(Claim("g", "a.1", (P0,)), P1))


async def test_claims_of_other_groups_fence_nothing(
    clickhouse: ClickHouse, two_writers: tuple[Writer, Writer]
) -> None:
    a, b = two_writers
    await a.store(rows(order("e1", "o1")), owner(Claim("g", "a.1", (P0,)), P0))
    await b.store(rows(order("e2", "o2")), owner(Claim("other", "b.1", (P0,)), P0))
    await a.store(rows(order("e3", "o3")), owner(Claim("g", "a.1", (P0,)), P0))
    assert sum((await steps(clickhouse)).values()) == 3


async def test_a_reclaim_by_the_first_owner_wins_again(
    clickhouse: ClickHouse, two_writers: tuple[Writer, Writer]
) -> None:
    """The latest claim wins, whoever made it: A, assigned the partition again after B,
    writes; B's claim is superseded."""
    a, b = two_writers
    await a.store(rows(order("e1", "o1")), owner(Claim("g", "a.1", (P0,)), P0))
    await b.store(rows(order("e2", "o2")), owner(Claim("g", "b.1", (P0,)), P0))
    await a.store(rows(order("e3", "o3")), owner(Claim("g", "a.2", (P0,)), P0))
    with pytest.raises(Superseded):
        await b.store(rows(order("e4", "o4")), owner(Claim("g", "b.1", (P0,)), P0))
    assert sum((await steps(clickhouse)).values()) == 3


async def test_a_sole_writer_neither_claims_nor_checks(clickhouse: ClickHouse) -> None:
    """Embedded chDB: one process, one writer lock orders every insert (docs/DESIGN.md)."""
    w = Writer(clickhouse, sole_writer=True)
    await w.open()
    await w.store(rows(order("e1", "o1")), owner(Claim("g", "a.1", (P0,)), P1))
    assert w.fence is None
    assert sum((await steps(clickhouse)).values()) == 1
