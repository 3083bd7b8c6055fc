"""A group member's right to write for its partitions, as this member can know it.

Kafka gives a partition to another member when this one misses its heartbeats for the
session timeout (a long pause, a network partition) or is kicked out of a rebalance; a
member that keeps writing after that is a *zombie*. The coordinator's clock starts no
earlier than our last heartbeat that it answered, so while less than
``session timeout - margin`` has passed since that heartbeat was *sent*, nobody else
can own our partitions yet. The writer asks ``holds`` right before every insert
(processors.writer); the margin is what an insert may take once sent
(docs/DESIGN.md, "Zombies").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable


class Lease:
    def __init__(self, session_timeout_s: float, margin_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= margin_s < session_timeout_s:
            raise ValueError("the margin must be shorter than the session timeout")
        self.valid_for = session_timeout_s - margin_s
        self._clock = clock
        self.owned: frozenset[tuple[str, int]] = frozenset()
        self.renewed_at = -math.inf

    def assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """A new assignment (the join that gave it is as good as a heartbeat)."""
        self.owned = frozenset(partitions)
        self.renew(self._clock())

    def released(self, partitions: Iterable[tuple[str, int]]) -> None:
        self.owned = self.owned - frozenset(partitions)

    def lost(self) -> None:
        """The coordinator no longer knows us: whatever we held is someone else's now."""
        self.owned = frozenset()

    def renew(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (heartbeat, commit) was answered as a member."""
        self.renewed_at = max(self.renewed_at, sent_at)

    def owns(self, partitions: Collection[tuple[str, int]]) -> bool:
        """Still assigned, as far as this member was told (time aside)."""
        return self.owned.issuperset(partitions)

    def holds(self, partitions: Collection[tuple[str, int]]) -> bool:
        """Owned, and certainly not yet given to anyone else (called from the writer thread)."""
        return self._clock() < self.renewed_at + self.valid_for and self.owns(partitions)
