"""Batches the writer merges count exactly what one batch of all their records would."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from processors.batch import prepare
from processors.rows import _among
from tests.processors.test_validate import example

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class _Rec:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.value = topic, partition, offset, value


def _order(event_id: str, order_id: str, status: str = "paid") -> bytes:
    ev: dict[str, Any] = copy.deepcopy(example("order_paid"))
    ev |= {"event_id": event_id, "order_id": order_id, "status": status}
    return json.dumps(ev, ensure_ascii=False).encode()


def _records(values: list[bytes], start: int) -> list[_Rec]:
    return [_Rec("livesales.orders", 0, start + i, v) for i, v in enumerate(values)]


def test_absorbing_a_later_batch_drops_its_repeats_of_earlier_rows() -> None:
    first = [_order("e1", "o1"), _order("e2", "o2"), _order("e3", "o3", "created")]
    later = [
        _order("e1", "o1"),  # the same event again (redelivery)
        _order("e9", "o2"),  # the same step under a new event id (webhook retry)
        _order("e3", "o3", "paid"),  # a known event id with another step: still the same event
        _order("e4", "o4"),  # new
        _order("e4", "o4"),  # repeated inside the later batch itself
        b"{broken",
    ]
    merged = prepare(_records(first, 0), now=NOW)
    merged.absorb(prepare(_records(later, 3), now=NOW))
    whole = prepare(_records(first + later, 0), now=NOW)

    rows, expected = merged.rows["order.v1"], whole.rows["order.v1"]
    assert rows.payloads == expected.payloads == [*first, later[3]]
    assert rows.event_hashes.tolist() == expected.event_hashes.tolist()
    assert rows.step_hashes.tolist() == expected.step_hashes.tolist()
    assert rows.repeated == expected.repeated == 4
    assert merged.next_offsets == whole.next_offsets == {("livesales.orders", 0): 9}
    assert merged.consumed == whole.consumed == {"livesales.orders": 9}
    assert merged.dead_codes == whole.dead_codes == {"invalid_json": 1}
    assert [d["source"]["offset"] for d in merged.dead_letters] == [8]
    assert merged.parts == 2


def test_absorbing_into_a_batch_without_that_table() -> None:
    stats = json.dumps(example("stream_stats")).encode()
    merged = prepare(_records([stats], 0), now=NOW)
    merged.absorb(prepare(_records([_order("e1", "o1")], 1), now=NOW))
    assert len(merged.rows["order.v1"]) == 1 and len(merged.rows["stream_stats.v1"]) == 1


def test_the_join_finds_exactly_the_hashes_np_isin_finds() -> None:
    """``processors.rows._among`` (a sort and binary searches) against ``np.isin``: random
    hashes with repeats on both sides, those past either end of the known ones, and empties."""
    rnd = np.random.default_rng(7)
    for _ in range(200):
        known = rnd.integers(0, 60, int(rnd.integers(0, 40)), dtype=np.uint64)
        hashes = rnd.integers(0, 80, int(rnd.integers(0, 40)), dtype=np.uint64)
        assert _among(hashes, known).tolist() == np.isin(hashes, known).tolist()
    top = np.array([2**64 - 1, 0, 5], dtype=np.uint64)
    assert _among(top, np.array([2**64 - 1], dtype=np.uint64)).tolist() == [True, False, False]
