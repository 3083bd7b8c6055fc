"""Kafka's CRC checks at the CPU's speed: aiokafka's fetcher verifies each batch with a
hardware CRC-32C before its own, slower check would.

Every record batch a broker sends carries the CRC-32C of its content; aiokafka checks it
(``check_crcs``, on by default, as in Kafka's Java client) with a table-driven C loop that
runs ~1.5 GB/s here: ~0.3 µs of a bare consumer's ~1.3 CPU-µs an event. ``google-crc32c``
uses the CPU's CRC32 instruction (~17 GB/s). Nothing is checked less: a partition's
fetched bytes are verified batch by batch, and only when every whole batch matches does
aiokafka skip its own check of them. Anything else (a mismatch, a legacy v0/v1 batch, a header too short)
is handed on untouched, so aiokafka checks it and raises ``CorruptRecordException`` as it
always did.

The fetcher looks ``MemoryRecords`` and ``PartitionRecords`` up by name, so the swap is two
module attributes, made process-wide by the process's owner (the CLI) and the suite's root,
as ``ingest.records``' is.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import google_crc32c
from aiokafka.consumer import fetcher
from aiokafka.record._protocols import MemoryRecordsProtocol
from aiokafka.record.memory_records import MemoryRecords

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">i")  # batchLength, at 8: the bytes after it
_CRC = struct.Struct(">I")  # at 17, covering from the attributes (21) to the batch's end
_HEADER_AFTER_LENGTH = 49  # a v2 batch header's bytes after batchLength (Kafka's RECORD_BATCH_OVERHEAD - 12)


def crcs_match(data: bytes) -> bool:
    """True when every whole batch in a partition's fetched bytes is a v2 batch whose CRC-32C
    matches. A partial batch at the end is not checked, as aiokafka neither checks nor yields
    it (the next fetch brings it whole)."""
    pos, end = 0, len(data)
    while end - pos >= 12:
        (length,) = _LENGTH.unpack_from(data, pos + 8)
        stop = pos + 12 + length
        if stop > end:
            break
        if length < _HEADER_AFTER_LENGTH or data[pos + 16] != 2:
            return False
        (crc,) = _CRC.unpack_from(data, pos + 17)
        if google_crc32c.value(data[pos + 21 : stop]) != crc:
            return False
        pos = stop
    return True


class VerifiedRecords:
    """aiokafka's ``MemoryRecords`` of bytes whose CRCs all matched (read the same way)."""

    __slots__ = ("_records",)

    def __init__(self, records: MemoryRecordsProtocol) -> None:
        self._records = records

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        return self._records.next_batch()


def memory_records(data: bytes) -> MemoryRecordsProtocol | VerifiedRecords:
    """What the fetcher builds from a partition's bytes, marked verified when they are."""
    records = MemoryRecords(data)
    if type(data) is bytes and crcs_match(data):
        return VerifiedRecords(records)
    return records


class PartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc] # aiokafka's is untyped
    """aiokafka's, with its own CRC check left out for bytes already verified."""

    def __init__(self, tp: Any, records: Any, *rest: Any) -> None:
        super().__init__(tp, records, *rest)
        if isinstance(records, VerifiedRecords):
            self._check_crcs = False  # read at each batch: every one was checked above


def check_crcs_in_hardware() -> bool:
    """Make aiokafka's fetcher check CRCs with ``google-crc32c``; True once it does. Without
    the C extension (a pure-Python fallback would be slower than aiokafka's own), or with an
    aiokafka whose fetcher builds its records another way, nothing changes (False, one
    warning where it matters): everything works as before, only slower."""
    current = fetcher.__dict__.get("PartitionRecords")
    if current is PartitionRecords:
        return True
    if google_crc32c.implementation != "c":
        log.warning("google-crc32c has no C extension here: aiokafka checks CRCs itself")
        return False
    if current is not PartitionRecords.__base__ or fetcher.__dict__.get("MemoryRecords") is not MemoryRecords:
        log.warning("aiokafka's fetcher builds its records another way: it checks CRCs itself")
        return False
    fetcher.MemoryRecords = memory_records  # the names the fetcher looks up at each fetch
    fetcher.PartitionRecords = PartitionRecords
    return True
