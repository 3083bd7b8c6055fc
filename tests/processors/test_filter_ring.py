"""The ring of dedupe slices: memory under the cap whatever is added, and a cutoff that
keeps every "no" from memory true."""

from __future__ import annotations

import numpy as np

from processors.filter_ring import NEVER, ROW_BYTES, FilterRing, MemoryBudget

NOW_S = 1_780_000_000.0
NOW_MS = int(NOW_S * 1000)


def keys(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)


def ring(budget: MemoryBudget, horizon_s: float = 48 * 3600, clock: list[float] | None = None) -> FilterRing:
    now = clock or [NOW_S]
    r = FilterRing(True, budget, horizon_s, clock=lambda: now[0])
    r.start(NOW_MS - int(horizon_s * 1000))  # as after a load of an empty store
    return r


def test_memory_stays_under_the_cap_while_ten_times_its_rows_arrive_and_the_cutoff_covers_the_rest() -> None:
    rng = np.random.default_rng(3)
    budget = MemoryBudget(2 * 1024 * 1024, min_slice_rows=1024)
    r = ring(budget)
    held_rows = budget.slice_bytes // ROW_BYTES  # what the cap holds
    batch = 5_000
    added_e, added_s, added_t = [], [], []
    for b in range(-(-10 * held_rows // batch)):
        e, s = keys(rng, batch), keys(rng, batch)
        t = np.full(batch, NOW_MS - 3_600_000 + b * 1000, dtype=np.int64)  # event time rises batch by batch
        r.add(e, s, t)
        added_e.append(e), added_s.append(s), added_t.append(t)
        assert budget.used <= budget.slice_bytes
    assert sum(len(x) for x in added_e) >= 10 * held_rows
    events, steps, times = np.concatenate(added_e), np.concatenate(added_s), np.concatenate(added_t)
    covered = times >= r.cutoff_ms
    # the slices dropped took the cutoff past their rows: most rows are now before it...
    assert covered.mean() < 0.2 and r.cutoff_ms > NOW_MS - 3_600_000
    # ...and every row at or after it is still "maybe stored" (by event and by step)
    assert r.might_contain(events[covered], steps[covered]).all()
    assert r.might_contain(events[covered], keys(rng, int(covered.sum()))).all()
    never = keys(rng, 100_000)
    assert r.might_contain(never, keys(rng, 100_000)).mean() < 0.002  # a dozen slices, still few false "maybe"


def test_a_budget_shared_by_tables_drops_the_oldest_slices_of_any_of_them() -> None:
    rng = np.random.default_rng(5)
    clock = [NOW_S]
    budget = MemoryBudget(1024 * 1024, min_slice_rows=1024)
    a, b = ring(budget, clock=clock), ring(budget, clock=clock)
    a.add(keys(rng, 20_000), keys(rng, 20_000), np.full(20_000, NOW_MS, dtype=np.int64))
    a_cutoff = a.cutoff_ms
    for _ in range(40):
        clock[0] += 1
        b.add(keys(rng, 5_000), keys(rng, 5_000), np.full(5_000, int(clock[0] * 1000), dtype=np.int64))
        assert budget.used <= budget.slice_bytes
    assert a.cutoff_ms > a_cutoff  # a's older slices made room for b's newer ones
    assert b.slices and a.rows < 20_000


def test_rows_dated_ahead_of_the_clock_do_not_drag_the_cutoff_ahead() -> None:
    rng = np.random.default_rng(7)
    budget = MemoryBudget(512 * 1024, min_slice_rows=1024)
    r = ring(budget)
    ahead = keys(rng, 10)
    r.add(ahead, keys(rng, 10), np.full(10, NOW_MS + 20 * 3_600_000, dtype=np.int64))  # a producer 20 h ahead
    for i in range(30):
        r.add(keys(rng, 2_000), keys(rng, 2_000), np.full(2_000, NOW_MS - 60_000 + i, dtype=np.int64))
    assert r.cutoff_ms <= NOW_MS  # slices went, but not past the fresh events
    assert r.might_contain(ahead, keys(rng, 10)).all()  # and the future rows are still known


def test_slices_older_than_the_horizon_go_and_take_the_cutoff_with_them() -> None:
    rng = np.random.default_rng(9)
    clock = [NOW_S]
    r = ring(MemoryBudget(64 * 1024 * 1024, min_slice_rows=1024), horizon_s=3600, clock=clock)
    old = keys(rng, 3_072)  # two whole slices (1,024 and 2,048 rows)
    r.add(old, keys(rng, 3_072), np.full(3_072, NOW_MS - 60_000, dtype=np.int64))
    clock[0] += 2 * 3600  # two horizons later: the slice's rows were learnt and occurred over one ago
    r.add(keys(rng, 10), keys(rng, 10), np.full(10, int(clock[0] * 1000), dtype=np.int64))
    r.expire()
    assert r.cutoff_ms == NOW_MS - 60_000 + 1
    assert not r.might_contain(old, keys(rng, 3_072)).any() and len(r.slices) == 1  # forgotten, and before the cutoff


def test_nothing_is_answered_from_memory_before_the_load() -> None:
    budget = MemoryBudget(1024 * 1024)
    r = FilterRing(False, budget, 3600)
    assert r.cutoff_ms == NEVER
    r.add(np.arange(5, dtype=np.uint64), np.zeros(5, dtype=np.uint64), np.full(5, NOW_MS, dtype=np.int64))
    assert r.cutoff_ms == NEVER


def test_what_a_window_relies_on_is_forgotten_only_when_a_slice_from_its_load_on_goes() -> None:
    """A window (processors.dedupe) holds what was stored before it was loaded and relies
    on the slices for the rest: from ``receiving_seq`` on."""
    rng = np.random.default_rng(13)
    budget = MemoryBudget(4 * 1024 * 1024, min_slice_rows=1024)
    r = ring(budget)
    r.reset()
    assert r.receiving_seq > r.dropped_seq  # a window loaded now is valid until something goes
    r.add(keys(rng, 1_024), keys(rng, 1_024), np.full(1_024, NOW_MS, dtype=np.int64))  # one full slice
    after = r.receiving_seq
    r.add(keys(rng, 10), keys(rng, 10), np.full(10, NOW_MS + 48 * 3_600_000, dtype=np.int64))  # a future slice
    r.add(keys(rng, 10), keys(rng, 10), np.full(10, NOW_MS, dtype=np.int64))
    r.drop_oldest()  # the slice full before the load
    assert after > r.dropped_seq
    r.drop_oldest()  # the slice with rows learnt after it
    assert after <= r.dropped_seq


def test_a_backlog_of_fresh_rows_sends_none_to_the_exact_look_up() -> None:
    """400,000 new rows in the writer's batches, each probed before it is added: with 32 bits
    a key the slices answered "maybe" for 11-16 of them, each an exact look-up of 20-100 ms
    in the writer's critical path (docs/BENCHMARKS.md); with 64, none."""
    rng = np.random.default_rng(5)
    r = ring(MemoryBudget.of_mb(64))
    maybe = 0
    for _ in range(20):
        e, s = keys(rng, 20_000), keys(rng, 20_000)
        maybe += int(r.might_contain(e, s).sum())
        r.add(e, s, np.full(20_000, NOW_MS, dtype=np.int64))
    assert r.rows == 400_000 and len(r.slices) >= 3  # several slices, each probed
    assert maybe == 0
