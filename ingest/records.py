"""A lighter record for what aiokafka fetches: same fields, a C struct the collector skips.

aiokafka's fetcher wraps every message in ``aiokafka.structs.ConsumerRecord``, a Python
dataclass: a Python ``__init__`` of 11 fields and one more object for the garbage collector
to track, while a batch of 20,000 waits in the queues. That was a quarter of a bare
consumer's CPU with the collector tuned as ours is (processors.gctune), half without it
(docs/BENCHMARKS.md, "Stages"). ``Record`` has the same fields, read the same way;
built in C (msgspec) and untracked (``gc=False``: it holds only strings, numbers, bytes and
a tuple of header pairs, so it can be in no reference cycle).

The fetcher looks its record class up by name at each message, so the swap is one module
attribute: process-wide, like the garbage collector's tuning (processors.gctune), and so
made by the process's owner (the CLI) and the test suite's root, not at import.
"""

from __future__ import annotations

import dataclasses
import logging

import aiokafka
import msgspec
from aiokafka.consumer import fetcher
from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)


class Record(msgspec.Struct, frozen=True, gc=False):
    """What ``AIOKafkaConsumer.getmany`` gives once ``lighten_records`` ran: the fields of
    aiokafka's ``ConsumerRecord``, in its order (the fetcher passes them by position)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    headers: tuple[tuple[str, bytes], ...]


def lighten_records() -> bool:
    """Make aiokafka's fetcher build ``Record``s; True once it does. An aiokafka that no
    longer builds its records from ``fetcher.ConsumerRecord`` with these fields is left as
    it is (False, one warning): everything works as before, only slower."""
    current = fetcher.__dict__.get("ConsumerRecord")
    if current is Record:
        return True
    fields = tuple(f.name for f in dataclasses.fields(ConsumerRecord))
    if current is not ConsumerRecord or fields != Record.__struct_fields__:
        log.warning("aiokafka %s builds its records another way; keeping its own", aiokafka.__version__)
        return False
    fetcher.ConsumerRecord = Record  # the name the fetcher looks up at each message
    return True
