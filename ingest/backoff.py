"""Exponential backoff with a cap, for every retry loop of the ingest side."""

from __future__ import annotations


class Backoff:
    """Exponential backoff with a cap; reset after a success."""

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first
