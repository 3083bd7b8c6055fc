"""The Bloom filter never forgets a key, and says "maybe" rarely for keys it never saw."""

from __future__ import annotations

import numpy as np

from processors.bloom import BloomFilter


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
