"""A clock the test moves by hand: ``clock()`` reads ``clock.now``; pass it where the code
under test takes a ``clock`` (a ``time.monotonic`` stand-in)."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
