"""ingest.records: aiokafka's fetcher builds the lighter records, which carry what its own did."""

from __future__ import annotations

import dataclasses
import gc
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer import fetcher
from aiokafka.structs import ConsumerRecord

from ground.settings import Settings
from ingest.producer import Producer
from ingest.records import Record, lighten_records


async def test_a_real_fetch_gives_records_with_every_field_and_untracked(topics: Settings) -> None:
    assert lighten_records()  # the suite's root made the swap already; a second call keeps it
    producer = Producer(topics.kafka_bootstrap)
    await producer.start()
    try:
        sent = [(topics.topic_orders, f"k{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(50)]
        await producer.send_all_or_raise([*sent, (topics.topic_orders, b"tomb", None)])  # type: ignore[list-item]
    finally:
        await producer.stop()
    kafka = AIOKafkaConsumer(topics.topic_orders, bootstrap_servers=topics.kafka_bootstrap, enable_auto_commit=False,
                             group_id=f"records-{time.time_ns()}", auto_offset_reset="earliest")  # fmt: skip
    await kafka.start()
    got: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < 51 and time.monotonic() < deadline:
            for recs in (await kafka.getmany(timeout_ms=500)).values():
                got += recs  # type: ignore[arg-type] # what the fetcher builds now
    finally:
        await kafka.stop()
    assert len(got) == 51
    assert all(type(r) is Record for r in got)
    assert not any(gc.is_tracked(r) for r in got)
    by_key = {r.key: r for r in got}
    assert {r.value for r in got} == {v for _, _, v in sent} | {None}
    one = by_key[b"k7"]
    fields = (one.topic, one.value, one.serialized_key_size, one.serialized_value_size, one.headers)
    assert fields == (topics.topic_orders, b'{"n": 7}', 2, 8, ())
    assert by_key[b"tomb"].serialized_value_size == -1
    offsets = sorted((r.partition, r.offset) for r in got)
    assert len(set(offsets)) == 51 and all(o >= 0 for _, o in offsets)


def test_the_fields_are_aiokafkas_in_its_order() -> None:
    """The fetcher passes them by position: a reordered or renamed field would mislabel values."""
    assert Record.__struct_fields__ == tuple(f.name for f in dataclasses.fields(ConsumerRecord))


def test_an_aiokafka_that_builds_records_another_way_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass
    class Other:
        topic: str

    monkeypatch.setattr(fetcher, "ConsumerRecord", Other)
    assert not lighten_records()
    assert fetcher.ConsumerRecord is Other
