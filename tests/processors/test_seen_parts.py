"""Which stored parts a process has read: merges of read parts are known, gaps are not."""

from __future__ import annotations

from processors.seen_parts import Part, SeenBlocks


def part(lo: int, hi: int, partition: str = "all") -> Part:
    return Part(f"{partition}_{lo}_{hi}_0", partition, lo, hi)


def test_a_merge_of_read_parts_is_covered_and_a_merge_over_a_gap_is_not() -> None:
    seen = SeenBlocks()
    for p in (part(1, 1), part(2, 2), part(4, 4)):
        seen.add(p)
    assert seen.covers(part(1, 2))  # merged from two read parts
    assert not seen.covers(part(1, 4))  # takes in block 3, never read
    assert not seen.covers(part(5, 5))
    assert seen.unseen([part(1, 2), part(3, 3), part(2, 4)]) == [part(3, 3), part(2, 4)]
    seen.add(part(1, 4))  # read whole once: the gap closes
    assert seen.covers(part(2, 4)) and seen.ranges == 1


def test_partitions_are_kept_apart_and_ranges_merge_when_they_touch() -> None:
    seen = SeenBlocks()
    seen.add(part(10, 12, "a"))
    seen.add(part(13, 20, "a"))
    seen.add(part(5, 8, "a"))
    assert seen.covers(part(10, 20, "a"))
    assert not seen.covers(part(8, 10, "a"))  # block 9 was never read
    assert not seen.covers(part(10, 12, "b"))
    seen.add(part(9, 9, "a"))
    assert seen.ranges == 1 and seen.covers(part(5, 20, "a"))


def test_a_part_is_read_off_its_name_with_or_without_a_mutation_version() -> None:
    from processors.seen_parts import part_of

    assert part_of("all_3_9_1") == Part("all_3_9_1", "0:all", 3, 9)
    assert part_of("all_3_9_1_12", shard=2) == Part("all_3_9_1_12", "2:all", 3, 9)
