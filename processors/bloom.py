"""A Bloom filter over 64-bit key hashes, vectorised with numpy.

It answers "definitely new" for almost every fresh key without a ClickHouse round
trip; "maybe seen" sends the key to an exact look-up. False negatives are impossible,
so exactness never depends on it: it only saves work. 10 bits and 7 probes per key
give about 1% false positives; when more keys than planned arrive, the owner rebuilds
it larger (processors.dedupe).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_PROBES = 7
_BITS_PER_KEY = 10
U64 = npt.NDArray[np.uint64]


class BloomFilter:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1024)
        # a power of two, so a probe's position is a mask instead of a slow uint64 modulo
        self.nbits = 1 << (self.capacity * _BITS_PER_KEY - 1).bit_length()
        self.count = 0
        self._bits = np.zeros((self.nbits + 7) // 8, dtype=np.uint8)

    def _positions(self, hashes: U64) -> npt.NDArray[np.uint64]:
        h1 = hashes & np.uint64(0xFFFFFFFF)
        h2 = (hashes >> np.uint64(32)) | np.uint64(1)
        probes = np.arange(_PROBES, dtype=np.uint64)
        with np.errstate(over="ignore"):
            pos: npt.NDArray[np.uint64] = (h1[:, None] + probes[None, :] * h2[:, None]) & np.uint64(
                self.nbits - 1
            )
        return pos

    def add(self, hashes: U64) -> None:
        if hashes.size == 0:
            return
        pos = self._positions(hashes).ravel()
        byte = (pos >> np.uint64(3)).astype(np.intp)
        bit = (pos & np.uint64(7)).astype(np.uint8)
        # One pass per bit position: within a pass every write to a byte ORs in the same
        # mask, so repeated bytes are harmless. 4x faster than np.bitwise_or.at here.
        for k in range(8):
            at = byte[bit == k]
            self._bits[at] |= np.uint8(1 << k)
        self.count += int(hashes.size)

    def might_contain(self, hashes: U64) -> npt.NDArray[np.bool_]:
        if hashes.size == 0:
            return np.zeros(0, dtype=bool)
        pos = self._positions(hashes)
        bytes_ = self._bits[(pos >> np.uint64(3)).astype(np.intp)]
        hit = (bytes_ >> (pos & np.uint64(7)).astype(np.uint8)) & np.uint8(1)
        return np.asarray(hit.all(axis=1), dtype=bool)

    @property
    def full(self) -> bool:
        return self.count > self.capacity

