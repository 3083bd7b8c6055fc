"""The Bloom filter never forgets a key, and says "maybe" rarely for keys it never saw."""

from __future__ import annotations

import numpy as np

from processors.bloom import BloomFilter, Probes


def test_no_false_negatives_and_few_false_positives() -> None:
    rng = np.random.default_rng(7)
    bloom = BloomFilter(100_000)
    added = rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64, endpoint=True)
    for chunk in np.array_split(added, 7):  # several adds, as batch after batch
        bloom.add(chunk)
    assert bloom.might_contain(added).all()
    never = rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64, endpoint=True)
    assert bloom.might_contain(never).mean() < 0.02
    assert not bloom.full


def test_repeated_keys_in_one_add_are_all_kept() -> None:
    bloom = BloomFilter(1024)
    keys = np.array([5, 5, 5, 2**63 + 9, 2**63 + 9, 0], dtype=np.uint64)
    bloom.add(keys)
    assert bloom.might_contain(keys).all()


def test_keys_sharing_a_word_in_one_add_are_all_kept() -> None:
    """A key's words are its hash's low and high bits: keys equal there meet in the same
    words, and the vectorised add must not let one key's bits overwrite another's."""
    bloom = BloomFilter(1024)
    keys = (np.arange(1, 65, dtype=np.uint64) << np.uint64(16)) + np.uint64(3)  # 64 keys, same words
    bloom.add(keys)
    assert bloom.might_contain(keys).all()


def test_false_positives_stay_rare_at_full_capacity() -> None:
    rng = np.random.default_rng(11)
    bloom = BloomFilter(200_000)
    bloom.add(rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True))
    never = rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True)
    assert bloom.might_contain(never).mean() < 0.005


def test_full_once_more_keys_than_planned() -> None:
    bloom = BloomFilter(1024)
    bloom.add(np.arange(1025, dtype=np.uint64))
    assert bloom.full


def test_a_keys_probe_bits_are_five_distinct_picks_per_word_from_its_remixed_hash() -> None:
    """Probes builds its masks in one scratch array; each must still be the OR of five bits
    chosen by six-bit fields of the remixed hash (word 1: fields 0-4, word 2: fields 5-9)."""
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64 - 1, 2_000, dtype=np.uint64, endpoint=True)
    probes = Probes(hashes)
    for i in range(0, 2_000, 97):
        mixed = (int(hashes[i]) * 0x9E3779B97F4A7C15) % 2**64
        for block in range(2):
            fields = [(mixed >> (58 - 6 * (block * 5 + j))) & 63 for j in range(5)]
            assert int(probes.masks[block][i]) == sum(1 << f for f in set(fields))
    assert (probes.halves[1] == hashes >> np.uint64(32)).all()
