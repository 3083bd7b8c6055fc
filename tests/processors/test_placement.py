"""The in-place decision (processors.placement) and what validation makes of it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import DefaultPartitioner, murmur2

from processors.batch import assemble, check_values
from processors.placement import IF_KEYED, MISPLACED, TRUSTED, Placement, partitions_for
from processors.placement import murmur2 as murmur2_batch
from tests.reference import encode, generate

NOW = datetime(2020, 3, 1, tzinfo=UTC)


def test_murmur2_equals_kafkas_on_random_keys() -> None:
    rnd = random.Random(5)
    alphabet = "ab-_09宁海长街蛏子é\x00\x7f"
    keys = [b"", b"\x00", b"a", b"ab", b"abc", b"abcd", b"\xff" * 7, "宁海县".encode(), b"k" * 512]
    keys += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 140))).encode() for _ in range(2000)]
    keys += [rnd.randbytes(rnd.randint(0, 64)) for _ in range(500)]
    assert murmur2_batch(keys).tolist() == [murmur2(k) & 0xFFFFFFFF for k in keys]
    partitioner = DefaultPartitioner()
    for n in (1, 4, 7, 12):
        want = [partitioner(k, list(range(n)), list(range(n))) for k in keys]
        assert partitions_for(keys, n).tolist() == want


def _home(key: str, n: int = 4) -> int:
    return DefaultPartitioner()(key.encode(), list(range(n)), list(range(n)))  # type: ignore[no-any-return]


def test_states_need_the_partitioners_partition_and_trust_routed_topics() -> None:
    home = _home("o-1")
    away = (home + 1) % 4
    placement = Placement([b"o-1", b"o-1", b"o-1"], [(1, home, 4), (1, away, 4), (1, away, 0)])
    assert placement.states() == [IF_KEYED, MISPLACED, TRUSTED]  # no key: check_values' key test (below)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None


def _checked(records: list[Rec], counts: dict[str, int]) -> Any:
    values = [r.value for r in records]
    runs = [(1, r.partition, 0 if r.topic.endswith(".routed") else counts[r.topic]) for r in records]
    placement = Placement([r.key for r in records], runs)
    checked = check_values(values, NOW, placement=placement)
    return checked, assemble(records, values, checked, NOW)


def test_only_events_keyed_and_partitioned_by_their_routing_key_are_stored_here() -> None:
    first = next(e for e in generate(n_orders=1, seed=3) if e["schema"] == "order.v1")
    order = {**first, "order_id": "宁海-o-1", "channel_id": "ch-9"}
    stats = {"schema": "stream_stats.v1", "event_id": "s-1", "occurred_at": order["occurred_at"],
             "channel_id": "ch-9", "platform": "douyin", "viewers_online": 3, "views_total": 5}  # fmt: skip
    o, s = encode(order), encode(stats)
    key, ch = "宁海-o-1".encode(), b"ch-9"
    records = [
        Rec("orders", _home("宁海-o-1"), 0, o, key),  # in place
        Rec("orders", (_home("宁海-o-1") + 1) % 4, 0, o, key),  # a CRC32 partitioner's choice
        Rec("orders", _home("ch-9"), 1, o, ch),  # keyed by another field
        Rec("orders", 0, 2, o, None),  # no key
        Rec("orders", 1, 3, b"{not json", None),  # bad: dead-lettered, never forwarded
        Rec("orders.routed", 3, 0, o, None),  # placed by a forward
        Rec("stats", _home("ch-9"), 0, s, ch),  # in place: stream stats route by channel_id
    ]
    checked, batch = _checked(records, {"orders": 4, "stats": 4})
    assert checked.tables["order.v1"].indices == [0]  # the .routed copy is a repeat within the batch
    assert checked.tables["order.v1"].repeated == 1
    assert checked.tables["stream_stats.v1"].indices == [6]
    assert [i for i, _ in checked.rejections] == [4]
    home = _home("宁海-o-1")
    assert batch.forwards == [("orders.routed", key, o, home)] * 3
