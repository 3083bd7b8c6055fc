"""A Bloom filter over 64-bit key hashes, vectorised with numpy.

It answers "definitely new" for almost every fresh key without a ClickHouse round
trip; "maybe seen" sends the key to an exact look-up. False negatives are impossible,
so exactness never depends on it: it only saves work.

It is *blocked*: a key's probe bits lie in two 64-bit words, five bits in each. A batch
then costs two gathers (and two scatters to add) per key instead of one per probe; in the
writer's critical path that took a 13,000-row batch from ~28 ms to ~9 ms
(docs/BENCHMARKS.md). Two words rather than one keep the false positives near a classic
filter's at the same 16 bits per key: ~0.1% at full capacity, ~3e-6 at 40% (one word
gave 0.4% and 2e-4, measured). A filter never grows: when one is full its owner starts
another beside it (processors.filter_ring).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_PROBES = 5  # per word: 10 bits of a key, from the top 60 bits of the remixed hash
BITS_PER_KEY = 16  # at the capacity a filter is built for
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it permutes uint64
U64 = npt.NDArray[np.uint64]


class Probes:
    """A batch's probe bits, computed once and tested against any number of filters: the
    bit masks do not depend on a filter's size, only the word indices do (a mask of the
    hash's halves), so a ring of slices (processors.filter_ring) pays the hashing once."""

    def __init__(self, hashes: U64) -> None:
        self.halves = (hashes, hashes >> np.uint64(32))
        with np.errstate(over="ignore"):
            mixed = hashes * _MIX
        self.masks: list[U64] = []
        bit = np.empty_like(mixed)  # one scratch array: 5x faster than a temporary per step
        for block in range(2):
            mask = np.zeros(hashes.shape, dtype=np.uint64)
            for j in range(_PROBES):
                np.right_shift(mixed, np.uint64(58 - 6 * (block * _PROBES + j)), out=bit)
                np.bitwise_and(bit, np.uint64(63), out=bit)
                np.left_shift(np.uint64(1), bit, out=bit)
                np.bitwise_or(mask, bit, out=mask)
            self.masks.append(mask)


class BloomFilter:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1024)
        self._words = np.zeros(self.words_for(self.capacity), dtype=np.uint64)
        self.count = 0

    @staticmethod
    def words_for(capacity: int) -> int:
        """A power of two (at most 2**32), so a key's words are masks of its hash's halves."""
        nwords = 1 << ((max(capacity, 1024) * BITS_PER_KEY + 63) // 64 - 1).bit_length()
        return min(nwords, 1 << 32)

    @classmethod
    def bytes_for(cls, capacity: int) -> int:
        """What a filter for ``capacity`` keys takes, before it is built (the budget asks)."""
        return 8 * cls.words_for(capacity)

    def _probes(self, probes: Probes) -> list[tuple[npt.NDArray[np.intp], U64]]:
        """Per block, each key's word and bit mask. The words come from the hash's low and
        high halves, the bits from a remix of the whole hash, so neither repeats the
        other's choice."""
        last = np.uint64(len(self._words) - 1)
        return [((half & last).astype(np.intp), mask) for half, mask in zip(probes.halves, probes.masks, strict=True)]

    def add(self, hashes: U64, probes: Probes | None = None) -> None:
        if hashes.size == 0:
            return
        for word, mask in self._probes(probes or Probes(hashes)):
            # Where keys share a word, a fancy-indexed |= keeps only one of their masks;
            # the keys whose bits did not stick go again until every one has.
            while word.size:
                self._words[word] |= mask
                lost = (self._words[word] & mask) != mask
                word, mask = word[lost], mask[lost]
        self.count += int(hashes.size)

    def might_contain(self, hashes: U64, probes: Probes | None = None) -> npt.NDArray[np.bool_]:
        hit = np.ones(hashes.shape, dtype=bool)
        for word, mask in self._probes(probes or Probes(hashes)):
            hit &= (self._words[word] & mask) == mask
        return hit

    @property
    def nbytes(self) -> int:
        return int(self._words.nbytes)

    @property
    def full(self) -> bool:
        return self.count > self.capacity
