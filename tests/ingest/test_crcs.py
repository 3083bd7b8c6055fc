"""ingest.crcs: the hardware CRC check accepts exactly the batches aiokafka's own accepts,
and a corrupted batch still stops the fetch with aiokafka's error."""

from __future__ import annotations

import random
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from ground.settings import Settings
from ingest.crcs import VerifiedRecords, check_crcs_in_hardware, crcs_match, memory_records
from ingest.producer import Producer


def _batch(first: int, values: list[bytes]) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 22)  # fmt: skip
    for i, value in enumerate(values):
        builder.append(i, timestamp=None, key=f"k{first + i}".encode(), value=value, headers=[])
    return bytes(builder.build())


def _fetched(rnd: random.Random, batches: int) -> bytes:
    """What a fetch brings for one partition: several whole batches, one after another."""
    return b"".join(
        _batch(b * 100, [rnd.randbytes(rnd.randint(0, 600)) for _ in range(rnd.randint(1, 40))]) for b in range(batches)
    )


def _aiokafka_accepts(data: bytes) -> bool:
    records = MemoryRecords(data)
    while records.has_next():
        batch = records.next_batch()
        if batch is None or not batch.validate_crc():
            return False
    return True


def _values(records: object) -> list[bytes | None]:
    parts = fetcher.PartitionRecords(TopicPartition("t", 0), records, None, 0, None, None, True, "read_uncommitted")
    return [r.value for r in parts]


def test_whole_batches_match_as_aiokafka_says_and_any_flipped_byte_does_not() -> None:
    rnd = random.Random(7)
    for _ in range(40):
        data = _fetched(rnd, rnd.randint(1, 4))
        assert crcs_match(data) and _aiokafka_accepts(data)
        # every byte the CRC covers: the first batch's attributes onwards, and later batches whole
        starts, pos = [], 0
        while pos < len(data):
            starts.append(pos)
            pos += 12 + int.from_bytes(data[pos + 8 : pos + 12], "big")
        # any byte from a batch's magic on: its CRC, the bytes the CRC covers, the magic itself
        # (a batch's offset, length and leader epoch are outside any CRC, for aiokafka too)
        at = rnd.choice([i for i in range(len(data)) if not any(s <= i < s + 16 for s in starts)])
        broken = bytearray(data)
        broken[at] ^= 1 << rnd.randrange(8)
        assert not crcs_match(bytes(broken)), at
        assert not _aiokafka_accepts(bytes(broken)), at


def test_a_partial_batch_at_the_end_is_left_for_the_next_fetch_as_aiokafka_leaves_it() -> None:
    rnd = random.Random(3)
    data = _fetched(rnd, 3)
    cut = data[: len(data) - 17]
    assert crcs_match(cut)
    assert isinstance(memory_records(cut), VerifiedRecords)
    assert _values(memory_records(cut)) == _values(MemoryRecords(cut))


def test_a_corrupted_batch_is_handed_to_aiokafka_which_raises() -> None:
    assert check_crcs_in_hardware()  # the suite's root made the swap already
    data = bytearray(_batch(0, [b'{"n": 1}', b'{"n": 2}']))
    data[-3] ^= 0x20  # a value's byte
    records = fetcher.MemoryRecords(bytes(data))
    assert not isinstance(records, VerifiedRecords)
    with pytest.raises(CorruptRecordException):
        _values(records)


def test_a_header_too_short_or_an_old_magic_is_left_to_aiokafka() -> None:
    data = bytearray(_batch(0, [b"x"]))
    data[16] = 1  # magic v1: CRC-32 (not C), elsewhere in the header
    assert not crcs_match(bytes(data))
    short = bytearray(_batch(0, [b"x"]))
    short[8:12] = (20).to_bytes(4, "big")
    assert not crcs_match(bytes(short[:32]))


def test_verified_records_read_as_aiokafkas_own() -> None:
    rnd = random.Random(11)
    data = _fetched(rnd, 4)
    verified = memory_records(data)
    assert isinstance(verified, VerifiedRecords)
    assert verified.size_in_bytes() == len(data)
    assert _values(verified) == _values(MemoryRecords(data))


async def test_a_real_fetch_is_verified_and_reads_every_value(topics: Settings) -> None:
    assert check_crcs_in_hardware()
    producer = Producer(topics.kafka_bootstrap)
    await producer.start()
    try:
        sent = [(topics.topic_orders, f"k{i}".encode(), f'{{"n": {i}}}'.encode() * (i % 7 + 1)) for i in range(300)]
        await producer.send_all_or_raise(sent)
    finally:
        await producer.stop()
    seen: list[object] = []
    real = fetcher.MemoryRecords

    def spy(data: bytes) -> object:
        seen.append(records := real(data))
        return records

    fetcher.MemoryRecords = spy
    kafka = AIOKafkaConsumer(topics.topic_orders, bootstrap_servers=topics.kafka_bootstrap, enable_auto_commit=False,
                             group_id=f"crcs-{time.time_ns()}", auto_offset_reset="earliest")  # fmt: skip
    got: list[bytes] = []
    try:
        await kafka.start()
        deadline = time.monotonic() + 30
        while len(got) < 300 and time.monotonic() < deadline:
            for recs in (await kafka.getmany(timeout_ms=500)).values():
                got += [r.value or b"" for r in recs]
    finally:
        fetcher.MemoryRecords = real
        await kafka.stop()
    assert sorted(got) == sorted(v for _, _, v in sent)
    assert seen and all(isinstance(r, VerifiedRecords) for r in seen)


def test_an_aiokafka_whose_fetcher_builds_records_another_way_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Other:
        pass

    monkeypatch.setattr(fetcher, "PartitionRecords", Other)
    assert not check_crcs_in_hardware()
    assert fetcher.PartitionRecords is Other
