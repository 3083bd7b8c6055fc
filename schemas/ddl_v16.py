"""Migration 16: ``order_steps`` gets two projection indexes, on ``event_hash`` and on
``step_hash``, so that the writer's exact look-up costs the same on a big store as on a
small one.

Why: a row the dedupe filters cannot clear goes to an exact look-up (processors.dedupe),
``WHERE event_hash IN (…)`` and ``WHERE step_hash IN (…)``. The bloom_filter skip
indexes answer it by reading one filter per granule of the whole table: 34 MiB per
index at 20M rows, ~90 ms a look-up when quiet and ~430 ms under ingest, about five times
that at 100M (``livesales bench bigstore``: ingest 0.59-0.69 of the small store's rate
at 20M rows). A projection that holds only the sort key and each row's ``_part_offset``
(ClickHouse ≥ 25.6: a projection used as an index) is a sorted copy of the hashes: the
look-up binary-searches it and reads a few granules, ~20 ms at 20M and not growing with
the store. Each insert writes the two small sorted projections with its part.

The look-ups ask for it with ``LOOKUP_SETTINGS`` (the skip indexes would otherwise be
tried first and win). A part the projection is not yet materialized in is read whole:
the answer never depends on the projection, only its cost. The skip indexes stay, for
other readers of ``event_hash`` and for servers where this migration was left out.
"""

from __future__ import annotations

from schemas.migration import Migration

KEY_INDEXES = {"p_event_idx": "event_hash", "p_step_idx": "step_hash"}
# for a look-up of a few keys on order_steps: the projection indexes, on any table size
LOOKUP_SETTINGS = {"use_skip_indexes": 0, "min_table_rows_to_use_projection_index": 0}
LOOKUP_SETTINGS_SQL = " SETTINGS " + ", ".join(f"{k} = {v}" for k, v in LOOKUP_SETTINGS.items())
INDEXED_TABLES = ("order_steps",)

V16 = Migration(
    16,
    "order_steps: projection indexes (_part_offset ordered by event_hash, by step_hash) for the exact look-up",
    (
        *(
            f"ALTER TABLE order_steps ADD PROJECTION IF NOT EXISTS {name} (SELECT _part_offset ORDER BY {column})"
            for name, column in KEY_INDEXES.items()
        ),
        *(f"ALTER TABLE order_steps MATERIALIZE PROJECTION {name}" for name in KEY_INDEXES),
    ),
)
