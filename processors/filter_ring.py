"""Dedupe filters as a ring of fixed-size Bloom slices, so memory is bounded by a setting.

A filter that is rebuilt twice as large whenever it fills (from every hash in the
horizon) makes memory follow the rows stored within the horizon: at 5,000 events/s that
is 864M rows in 48 h, and the soak grew 25 MiB/min in steps (docs/BENCHMARKS.md). Here
rows go into the newest *slice*; a full slice stays as it is and a new one is started
beside it (nothing is read again). Slices are dropped, oldest first, when the process's
``MemoryBudget`` (``Tuning.dedupe_memory_mb``) has no room for a new one, or when a
horizon has passed since their rows were learnt and occurred.

What memory still proves: every slice records the latest event time (``occurred_at``)
of its rows. Dropping one raises the ring's ``cutoff_ms`` past that time, so the slices
left hold *every* row this process knows of whose event time is at or after the cutoff
— whether slices went by the cap or by time. A redelivered event carries its original's
event time, so for a row at or after the cutoff a "no" from memory is final; an older row
takes the exact look-up (processors.dedupe). Under the cap the cutoff trails the newest
stored events by the rows the budget holds (event time, not the wall clock), so a
consumer catching up after an outage still answers from memory.

Rows dated in the future (a producer's clock ahead: validation admits up to 24 h) would
drag the cutoff ahead of every fresh event when their slice is dropped, so they are kept
in a small slice of their own that is dropped only when the cutoff has passed it (or,
should it fill, with the cutoff raised past it: slower, still exact).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from processors.bloom import BITS_PER_KEY, BloomFilter, Probes

log = logging.getLogger(__name__)

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

NEVER = 1 << 62  # a cutoff no event reaches: nothing is answered from memory
MIN_SLICE_ROWS = 1 << 16
FUTURE_ROWS = 1 << 16  # rows dated ahead of the clock, per table
FUTURE_MARGIN_MS = 10 * 60_000  # event time this far ahead of our clock counts as "future"
DEFAULT_MEMORY_MB = 64  # ~3M rows of slices: 10 minutes at 5,000 events/s, days at a county's rate
# A slice holds a quarter of the keys its filters were sized for (64 bits a key): ~1e-8
# false positives each. At half (32 bits a key, ~1e-5 each) the slices of a 400,000-event
# backlog still sent 11-16 rows to the exact look-up, each look-up a query of 20-100 ms in
# the writer's critical path (docs/BENCHMARKS.md, "A big store"); at a quarter, none.
_FILL = 4
ROW_BYTES = 2 * _FILL * BITS_PER_KEY // 8  # a row's share of a slice with both filters (event, step): 16
SLICES_IN_BUDGET = 4  # slice size: about a quarter of the slices' share of the budget (each is probed per batch)
SLICE_SHARE = 3 / 4  # the rest is the old days' window filters' (processors.dedupe)


def _pow2_floor(n: int) -> int:
    return 1 << max(0, n.bit_length() - 1)


@dataclass
class Slice:
    seq: int
    capacity: int  # rows it takes before the next slice starts
    events: BloomFilter
    steps: BloomFilter | None
    rows: int = 0
    max_occurred_ms: int = -NEVER
    learnt_at: float = 0.0  # wall clock of its latest add

    @classmethod
    def new(cls, seq: int, capacity: int, has_steps: bool) -> Slice:
        steps = BloomFilter(_FILL * capacity) if has_steps else None
        return cls(seq, capacity, BloomFilter(_FILL * capacity), steps)

    @property
    def nbytes(self) -> int:
        return self.events.nbytes + (self.steps.nbytes if self.steps is not None else 0)

    def add(self, events: U64, steps: U64 | None, occurred: I64, now: float) -> None:
        self.events.add(events)
        if self.steps is not None and steps is not None:
            self.steps.add(steps)
        self.rows += len(events)
        if len(occurred):
            self.max_occurred_ms = max(self.max_occurred_ms, int(occurred.max()))
        self.learnt_at = now


def slice_bytes(capacity: int, has_steps: bool) -> int:
    return BloomFilter.bytes_for(_FILL * capacity) * (2 if has_steps else 1)


@dataclass
class MemoryBudget:
    """The dedupe memory of one process (all its tables' rings together)."""

    max_bytes: int
    min_slice_rows: int = MIN_SLICE_ROWS  # the first slice's size (each next one doubles)
    rings: list[FilterRing] = field(default_factory=list)

    @classmethod
    def of_mb(cls, mb: float) -> MemoryBudget:
        return cls(int(mb * 1024 * 1024))

    @property
    def slice_bytes(self) -> int:
        return int(self.max_bytes * SLICE_SHARE)

    @property
    def window_rows(self) -> int:
        """Rows the old days' windows may hold (8 bytes a row: processors.dedupe)."""
        return (self.max_bytes - self.slice_bytes) // 8

    @property
    def max_slice_rows(self) -> int:
        return max(self.min_slice_rows, _pow2_floor(self.slice_bytes // ROW_BYTES // SLICES_IN_BUDGET))

    @property
    def used(self) -> int:
        return sum(r.nbytes for r in self.rings)

    def make_room(self, nbytes: int, requester: FilterRing) -> None:
        """Drop the oldest slices (of any table's ring) until ``nbytes`` more fit. A
        ring's newest slice is only taken from the ring that is replacing it."""
        used = self.used
        while used + nbytes > self.slice_bytes:
            candidates = [(r.slices[0].learnt_at, i) for i, r in enumerate(self.rings)
                          if len(r.slices) > (0 if r is requester else 1)]  # fmt: skip
            if not candidates:
                return  # a budget below one slice: the newest slices stay
            ring = self.rings[min(candidates)[1]]
            used -= ring.drop_oldest()


class FilterRing:
    """One table's slices (oldest first) and the cutoff from which they answer."""

    def __init__(
        self, has_steps: bool, budget: MemoryBudget, horizon_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.has_steps = has_steps
        self.budget = budget
        self.horizon_s = horizon_s
        self._clock = clock
        self.slices: list[Slice] = []
        self.future: Slice | None = None
        self._start_ms = NEVER  # set by the load: the event time from which it read every row
        self._floor_ms = -NEVER  # just past the latest event time of any slice dropped
        self.dropped_seq = -1  # every slice up to this one is gone (windows rely on the rest)
        self._seq = 0
        self._next_capacity = 0  # none yet: the budget's smallest
        budget.rings.append(self)

    # -- state ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (a reload follows): nothing is answered until ``cutoff_ms`` is set."""
        self.slices, self.future = [], None
        self._start_ms, self._floor_ms = NEVER, -NEVER
        self.dropped_seq = self._seq
        self._next_capacity = 0

    def start(self, from_ms: int) -> None:
        """The load read every stored row with an event time at or after ``from_ms``."""
        self._start_ms = from_ms

    @property
    def cutoff_ms(self) -> int:
        """Rows with an earlier event time are never answered from memory."""
        return NEVER if self._start_ms == NEVER else max(self._start_ms, self._floor_ms)

    @property
    def receiving_seq(self) -> int:
        """The slice the next rows go to (one not made yet: the next number). Everything
        learnt from now on is in it or a later slice; ``dropped_seq`` reaching it means
        some of that is forgotten."""
        if self.slices and self.slices[-1].rows < self.slices[-1].capacity:
            return self.slices[-1].seq
        return self._seq + 1

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.slices) + (self.future.nbytes if self.future else 0)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.slices) + (self.future.rows if self.future else 0)

    def drop_oldest(self) -> int:
        """Drop the oldest slice; the cutoff moves past its rows. Returns the bytes freed."""
        s = self.slices.pop(0)
        self._raise_cutoff(s.max_occurred_ms + 1)
        self.dropped_seq = max(self.dropped_seq, s.seq)
        return s.nbytes

    def _raise_cutoff(self, to_ms: int) -> None:
        self._floor_ms = max(self._floor_ms, to_ms)

    def expire(self) -> None:
        """Drop slices whose rows were all learnt and occurred more than a horizon ago."""
        now = self._clock()
        old_ms = int((now - self.horizon_s) * 1000)
        while self.slices and self.slices[0].learnt_at < now - self.horizon_s:
            if self.slices[0].max_occurred_ms >= old_ms:
                break
            self.drop_oldest()
        if self.future is not None and self.future.max_occurred_ms < self.cutoff_ms:
            self.future = None  # every row it holds is older than the cutoff: never asked

    # -- adding ---------------------------------------------------------------------------
    def add(self, events: U64, steps: U64, occurred: I64) -> None:
        if not len(events):
            return
        now = self._clock()
        ahead = occurred > int(now * 1000) + FUTURE_MARGIN_MS
        if ahead.any():
            self._add_future(events[ahead], steps[ahead], occurred[ahead], now)
            keep = ~ahead
            events, steps, occurred = events[keep], steps[keep], occurred[keep]
        i, n = 0, len(events)
        while i < n:
            s = self._current()
            j = min(n, i + s.capacity - s.rows)
            s.add(events[i:j], steps[i:j] if self.has_steps else None, occurred[i:j], now)
            i = j

    def _current(self) -> Slice:
        if self.slices and self.slices[-1].rows < self.slices[-1].capacity:
            return self.slices[-1]
        capacity = min(max(self._next_capacity, self.budget.min_slice_rows), self.budget.max_slice_rows)
        self._next_capacity = 2 * capacity
        self.budget.make_room(slice_bytes(capacity, self.has_steps), self)
        self._seq += 1
        s = Slice.new(self._seq, capacity, self.has_steps)
        self.slices.append(s)
        return s

    def _add_future(self, events: U64, steps: U64, occurred: I64, now: float) -> None:
        f = self.future
        if f is not None and f.rows + len(events) > f.capacity:
            log.warning("more than %d rows dated ahead of the clock: answered by the exact look-up", f.capacity)
            self._raise_cutoff(f.max_occurred_ms + 1)
            f = None
        if f is None:
            capacity = max(FUTURE_ROWS, _pow2_floor(len(events)) * 2)
            self.budget.make_room(slice_bytes(capacity, self.has_steps), self)
            self._seq += 1
            f = self.future = Slice.new(self._seq, capacity, self.has_steps)
        f.add(events, steps if self.has_steps else None, occurred, now)

    # -- asking ---------------------------------------------------------------------------
    def might_contain(self, events: U64, steps: U64) -> npt.NDArray[np.bool_]:
        """Per row: "maybe stored" by any slice (False is final for rows at or after the
        cutoff). The probe bits are computed once for all slices."""
        hit = np.zeros(len(events), dtype=bool)
        every = self.slices + ([self.future] if self.future is not None else [])
        if not every or not len(events):
            return hit
        pe = Probes(events)
        ps = Probes(steps) if self.has_steps else None
        for s in every:
            hit |= s.events.might_contain(events, pe)
            if s.steps is not None and ps is not None:
                hit |= s.steps.might_contain(steps, ps)
        return hit
