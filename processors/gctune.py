"""Garbage collection tuned for batch work; every process that handles batches calls it."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Collect garbage less often: a batch is ~10^5 short-lived objects, and CPython's
    default (a collection every 700 allocations, full ones as survivors pile up) cost
    a quarter of the ingest rate in docs/BENCHMARKS.md. Called by each process's owner
    (the CLI, the validation child's initializer), not by Runtime: it is process-wide."""
    gc.collect()
    gc.freeze()  # start-up objects (modules, pydantic schemas) are never scanned again
    gc.set_threshold(50_000, 20, 20)
