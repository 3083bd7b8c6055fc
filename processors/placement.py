"""Is a message where the partition owner of its dedupe keys reads it? (docs/DESIGN.md)

Every copy of one dedupe key (an event id, an order step) must be decided by the one
group member that owns one partition number, or two live members can both find a step
new and both store it. A message is *in place* when its Kafka key is its routing key
(``ROUTE_FIELD``: order_id, firm_id, channel_id) and its partition is the one the
Java/aiokafka default partitioner gives that key: ``(murmur2(key) & 0x7fffffff) % n``.
Anything else (no key, another key, librdkafka's CRC32 partitioner) is forwarded to
``<topic>.routed`` on that partition by ingest.routing.

This runs in the validation process, over a whole batch at once: murmur2 per message in
pure Python costs ~2 µs, a fifth of the consumer's budget per event; numpy over fixed-
width rows of the batch's keys costs a few hundredths of that (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U32 = npt.NDArray[np.uint32]

ROUTED_SUFFIX = ".routed"
# The routing key of each schema: every copy of an event id, and every event of one
# step key (platform, order_id/firm_id, status), has the same one.
ROUTE_FIELD = {
    "order.v1": "order_id",
    "onboarding.v1": "firm_id",
    "stream_stats.v1": "channel_id",
    "channel.v1": "channel_id",
}
MAX_KEY_BYTES = 512  # a routing key is an id of at most 128 characters: 512 bytes of UTF-8

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)
_WIDTHS = (4, 8, 16, 32, 64, 128, 256, MAX_KEY_BYTES)

# What a record's partition says about it, before its value is read.
MISPLACED = 0  # wrong partition for its key, or no usable key: forward whatever the key is
IF_KEYED = 1  # right partition for its key: in place if that key is its routing key
TRUSTED = 2  # read from a .routed topic: placed there by a forward


def routed_topic(topic: str) -> str:
    return topic + ROUTED_SUFFIX


def murmur2(keys: Sequence[bytes]) -> U32:
    """Kafka's murmur2 of each key (keys longer than ``MAX_KEY_BYTES``: 0, never asked for)."""
    n = len(keys)
    out = np.zeros(n, dtype=np.uint32)
    if not n:
        return out
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    lo = 0
    for top in _WIDTHS:  # one fixed-width pass per size class: a long key does not widen all rows
        inside = (lengths > lo) & (lengths <= top) if lo else lengths <= top
        lo = top
        if not inside.any():
            continue
        if inside.all():  # the usual case: every key in one class, no copy
            return _murmur2_rows(keys, lengths, _width(int(lengths.max())))
        rows = np.flatnonzero(inside)
        out[rows] = _murmur2_rows([keys[i] for i in rows.tolist()], lengths[rows], _width(int(lengths[rows].max())))
    return out


def _width(longest: int) -> int:
    return max(4, (longest + 3) // 4 * 4)


def _murmur2_rows(keys: Sequence[bytes], lengths: npt.NDArray[np.int64], width: int) -> U32:
    # numpy pads each key with NUL bytes to the width, in C; the lengths say where each ends
    words = np.array(keys, dtype=f"S{width}").view("<u4").reshape(len(keys), width // 4)
    h = (np.uint32(_SEED) ^ lengths.astype(np.uint32)).astype(np.uint32)
    blocks = lengths // 4
    with np.errstate(over="ignore"):
        for j in range(int(blocks.max())):
            k = words[:, j] * _M
            k ^= k >> np.uint32(24)
            k *= _M
            h = np.where(blocks > j, (h * _M) ^ k, h)
        # the last 1-3 bytes, little-endian, NUL-padded: one word XORed in, as Kafka's byte by byte
        tail = words[np.arange(len(keys)), np.minimum(blocks, width // 4 - 1)]
        h = np.where(lengths % 4 > 0, (h ^ tail) * _M, h)
        h ^= h >> np.uint32(13)
        h *= _M
        h ^= h >> np.uint32(15)
    return h.astype(np.uint32)


def partitions_for(keys: Sequence[bytes], counts: npt.NDArray[np.int64] | int) -> npt.NDArray[np.int64]:
    """The default partitioner's choice for each key, given its topic's partition count."""
    hashed = (murmur2(keys) & np.uint32(0x7FFFFFFF)).astype(np.int64)
    return hashed % np.maximum(counts, 1)


@dataclass(frozen=True)
class Placement:
    """Where a batch's records were read, for the in-place check: their keys, and per run
    of consecutive records of one partition (as ``getmany`` groups them), how many, that
    partition and its topic's partition count (0: a ``.routed`` topic, trusted)."""

    keys: list[bytes | None]
    runs: list[tuple[int, int, int]]  # (records, partition, partition count)

    def states(self) -> list[int]:
        """Per record: MISPLACED, IF_KEYED or TRUSTED.

        A record without a key (or with one longer than any routing key) is hashed as if
        empty: either way its key cannot equal its routing key, which check_values asks
        of every IF_KEYED record, so no per-record test is needed here."""
        n = len(self.keys)
        sizes = np.array([r[0] for r in self.runs], dtype=np.int64)
        partition = np.repeat(np.array([r[1] for r in self.runs], dtype=np.int64), sizes)
        count = np.repeat(np.array([r[2] for r in self.runs], dtype=np.int64), sizes)
        if partition.size != n:
            raise ValueError(f"runs cover {partition.size} records, not {n}")
        keys = self.keys
        hashable: Sequence[bytes] = keys if None not in keys else [k or b"" for k in keys]  # type: ignore[assignment]
        chosen = partitions_for(hashable, count)
        state = np.where(count == 0, TRUSTED, np.where(chosen == partition, IF_KEYED, MISPLACED))
        out: list[int] = state.tolist()
        return out
