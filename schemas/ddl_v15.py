"""Migration 15: small parts are stored packed, one file each, instead of ~10.

Why: every insert makes a part in ``order_steps`` (plus one per projection) and in each
of the two channel views' tables, 9 parts of ~10 files each: 91 files per insert,
however few its rows (``livesales bench inserts``). Creating a file on a disk whose
files are created and deleted all the time (a running store: inserts and merges) cost
~0.4-0.9 ms on this host's ext4, so the files, not the rows, were most of an insert's
time, and the insert time bounds how fresh the counts are. ClickHouse's *packed* part
storage (``min_bytes_for_full_part_storage``: a part under that many uncompressed bytes
is one ``data.packed`` file, each projection one more) writes the same columns and
marks into a single file. Same host, same run, ./data: an insert of 100 rows 147-157
-> 55 ms wall, sys CPU 110-134 -> 21-31 ms, 91 -> 9 files (docs/BENCHMARKS.md, "One
insert's cost"). Merges pack their result too until it reaches the threshold; bigger
parts, which most rows of a large store live in, keep the full layout reads are tuned on.

Checked on chDB 26.9 before adopting: dedup tokens, merges, ``ALTER … DELETE``,
``MATERIALIZE PROJECTION``, projection reads and a reopen all work on packed parts, and
the whole test suite runs on them. ClickHouse's docs list the setting among those "only
available in ClickHouse Cloud"; the open-source engine (chDB is one) has it and writes
``Packed`` parts (``system.parts.part_storage_type``). A server that does not know it
stops this migration with "Unknown setting": drop the statement there (nothing else
depends on it).
"""

from __future__ import annotations

from schemas.migration import STORED_TABLES, Migration

PACKED_BELOW_BYTES = 16 << 20  # uncompressed: a live insert is KBs, a catch-up insert a few MB
PACKED = f"min_bytes_for_full_part_storage = {PACKED_BELOW_BYTES}"

V15 = Migration(
    15,
    "parts under 16 MiB are stored packed (one file, and one per projection), not ~10 files each",
    tuple(f"ALTER TABLE {t} MODIFY SETTING {PACKED}" for t in STORED_TABLES),
)
