"""A group member's right to write for its partitions, as this member can know it.

Kafka gives a partition to another member when this one misses its heartbeats for the
session timeout (a long pause, a network partition) or is kicked out of a rebalance; a
member that keeps writing after that is a *zombie*. The coordinator's clock starts no
earlier than our last heartbeat that it answered *as a member of the current generation*
(ingest.membership: an answer "rebalance in progress" renews nothing), so while less than
``session timeout - margin`` has passed since that heartbeat was *sent*, nobody else
can own our partitions yet. The writer asks ``holds`` right before every insert
(processors.writer).

Each assignment and each revocation starts a new *epoch*: a batch fetched in an earlier
one is never written (its records are re-read from the committed offsets), and the
epoch names this member's claim on the server (``token``: processors.fence), which is
what fences an insert that outlived the lease (docs/DESIGN.md, "Zombies").
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Collection, Iterable


class Lease:
    def __init__(self, session_timeout_s: float, margin_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= margin_s < session_timeout_s:
            raise ValueError("the margin must be shorter than the session timeout")
        self.valid_for = session_timeout_s - margin_s
        self._clock = clock
        self.owned: frozenset[tuple[str, int]] = frozenset()
        self.renewed_at = -math.inf
        self.epoch = 0
        self._instance = uuid.uuid4().hex[:16]

    @property
    def token(self) -> str:
        """This member's claim for the current epoch: unique across members and epochs."""
        return f"{self._instance}.{self.epoch}"

    def assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """A new assignment (the join that gave it is as good as a heartbeat)."""
        self.owned = frozenset(partitions)
        self.epoch += 1
        self.renew(self._clock())

    def released(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Revocation began: nothing more is sent for these partitions, whatever was fetched."""
        self.owned = self.owned - frozenset(partitions)
        self.epoch += 1

    def lost(self) -> None:
        """The coordinator no longer knows us, or a later claim took a partition on the
        server: whatever we held is someone else's now."""
        self.owned = frozenset()
        self.epoch += 1

    def renew(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (heartbeat, commit) was answered as a member."""
        self.renewed_at = max(self.renewed_at, sent_at)

    def owns(self, partitions: Collection[tuple[str, int]], epoch: int | None = None) -> bool:
        """Still assigned, as far as this member was told (time aside); with ``epoch``,
        also still the assignment that was current then."""
        return (epoch is None or epoch == self.epoch) and self.owned.issuperset(partitions)

    def holds(self, partitions: Collection[tuple[str, int]], epoch: int | None = None) -> bool:
        """Owned, and certainly not yet given to anyone else (called from the writer thread)."""
        return self._clock() < self.renewed_at + self.valid_for and self.owns(partitions, epoch)
