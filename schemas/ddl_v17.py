"""Migration 17: ``order_steps`` drops its two ``bloom_filter`` skip indexes,
``ix_event`` and ``ix_step``.

Why: since migration 16 nothing reads them. The writer's exact look-up
(processors.dedupe) and the reconciler's ``counted()`` (connectors.state) read the
projection indexes of schemas/ddl_v16.py and ask ClickHouse not to try skip indexes
(``LOOKUP_SETTINGS``); no query of the API filters ``order_steps`` by a hash. Yet every
insert hashed each row into both filters, and every merge rebuilt them for all the rows
it rewrote: a cost that grows with the store (34 MiB per index at 20M rows), paid for an
index no one reads. ``livesales bench inserts`` and ``bench ingest`` show what dropping
them saves (docs/BENCHMARKS.md, "One insert's cost").

The other tables (onboarding steps, stream stats, the channel registry) keep their
``ix_event``: their look-ups still use it. ``DROP INDEX`` is a light mutation (the
index's files are removed from each part; no rows are rewritten). A query that does
filter ``order_steps`` by ``event_hash`` or ``step_hash`` gets the same answer, read
through the projection indexes or the rows.
"""

from __future__ import annotations

from schemas.migration import Migration

DROPPED_INDEXES = ("ix_event", "ix_step")

V17 = Migration(
    17,
    "order_steps: drop the bloom_filter skip indexes on the hashes (migration 16's projections replace them)",
    tuple(f"ALTER TABLE order_steps DROP INDEX IF EXISTS {name}" for name in DROPPED_INDEXES),
)
