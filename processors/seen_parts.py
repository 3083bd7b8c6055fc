"""Which of a table's stored rows this process has already read, by the parts that hold them.

ClickHouse stores every insert as a new *part* with a fresh block number, and a merge
replaces parts by one spanning their block range (``all_3_9_1`` holds blocks 3 to 9). A
part becomes visible to queries all at once, when its insert commits. So "what was
stored since I last looked" has an exact answer that needs no clock: the active parts
whose block ranges this process has not read yet. Merges and mutations of parts already
read span blocks already read and cost nothing; a merge that took in a block never seen
(an insert that committed and was merged between two looks) is read once, whole.

This is what lets a dedupe filter in one process be brought up to date with what every
other process stored, in one query that reads nothing when nothing changed
(processors.dedupe).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

_PARTS_SQL = (
    "SELECT name, partition_id, min_block_number, max_block_number FROM system.parts"
    " WHERE database = currentDatabase() AND table = {t:String} AND active"
)


@dataclass(frozen=True)
class Part:
    name: str
    partition: str
    min_block: int
    max_block: int


# A filter on the ``_part`` virtual column, which ClickHouse applies to whole parts
# before reading anything: only parts holding a block outside every read range are read.
# (A partition id never holds an underscore: it is ``all``, digits, dashes or hex.)
# Block numbers count per shard: through a Distributed table (schemas.cluster) a part is
# known by its shard too (``shardNum()``: 0 on a single server).
SHARD_PARTITION = "concat(toString(shardNum()), ':', _partition_id)"
UNREAD = (
    f"NOT arrayExists((p, l, h) -> p = {SHARD_PARTITION} AND l <= toUInt64(splitByChar('_', _part)[2])"
    " AND toUInt64(splitByChar('_', _part)[3]) <= h, {rp:Array(String)}, {rl:Array(UInt64)}, {rh:Array(UInt64)})"
)


def part_of(name: str, shard: int = 0) -> Part:
    """A part from its name: ``<partition>_<min block>_<max block>_<level>[_<mutation>]``."""
    partition, low, high = name.split("_")[:3]
    return Part(name, f"{shard}:{partition}", int(low), int(high))


def active_parts(client: Client, table: str) -> list[Part]:
    """The parts of the server the client talks to. Through a Distributed table these
    are no shard's (their keys say shard 0), so nothing is marked read by them and the
    first refresh reads every shard's parts: slower, still exact."""
    rows = client.query(_PARTS_SQL, parameters={"t": table}).result_rows
    return [Part(str(r[0]), f"0:{r[1]}", int(r[2]), int(r[3])) for r in rows]


class SeenBlocks:
    """Disjoint, sorted block ranges per partition, merged when they touch: a gap left by
    an insert that never committed closes once a merged part spanning it has been read."""

    def __init__(self) -> None:
        self._lows: dict[str, list[int]] = {}
        self._highs: dict[str, list[int]] = {}

    def covers(self, part: Part) -> bool:
        lows = self._lows.get(part.partition)
        if not lows:
            return False
        i = bisect.bisect_right(lows, part.min_block) - 1
        return i >= 0 and self._highs[part.partition][i] >= part.max_block

    def unseen(self, parts: list[Part]) -> list[Part]:
        return [p for p in parts if not self.covers(p)]

    def add(self, part: Part) -> None:
        lows = self._lows.setdefault(part.partition, [])
        highs = self._highs.setdefault(part.partition, [])
        lo, hi = part.min_block, part.max_block
        # every range that overlaps or touches [lo, hi] is absorbed into it
        start = bisect.bisect_left(highs, lo - 1)
        end = bisect.bisect_right(lows, hi + 1)
        if start < end:
            lo, hi = min(lo, lows[start]), max(hi, highs[end - 1])
        lows[start:end] = [lo]
        highs[start:end] = [hi]

    def arrays(self) -> tuple[list[str], list[int], list[int]]:
        """(partition, low, high) of every range, as the query parameters of ``UNREAD``."""
        partitions, lows, highs = [], [], []
        for partition, starts in self._lows.items():
            partitions += [partition] * len(starts)
            lows += starts
            highs += self._highs[partition]
        return partitions, lows, highs

    @property
    def ranges(self) -> int:
        """How many disjoint ranges are kept (memory; stays small: see the class note)."""
        return sum(len(v) for v in self._lows.values())
