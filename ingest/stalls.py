"""One consumer's stalls and last writes: what its stages tell each other and what
readiness reads (livesales.health).

A stall (storage, the DLQ or fetches failing) pauses fetching until a write succeeds
again; readiness fails once one lasts past its limit. Times are time.monotonic().
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Stalls:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stalled = False  # storage or DLQ failing: fetching is paused
        self.since: float | None = None  # storage, DLQ or fetches failing since
        self.reason: str | None = None
        self.last_write_ok_at: float | None = None
        self.last_write_failed_at: float | None = None

    def stall(self, why: str) -> None:
        """Storage or the DLQ failed: pause fetching (logged once per stall)."""
        if not self.stalled:
            log.error("%s: %s; pausing consumption and retrying", self.name, why)
        self.stalled = True
        self.note(why.split(":")[0])

    def recovered(self) -> None:
        """A write succeeded: fetch again."""
        self._resume("storage recovered; resuming")

    def given_up(self) -> None:
        """A batch given up unwritten (its partitions moved): a storage failure it met says
        nothing of the next batch, so fetching must not stay paused for it (a stall is set
        again by the next failure). Kept paused, a member assigned partitions right after
        such a failure fetched nothing from them."""
        self._resume("a batch given up after a storage failure; fetching again")

    def _resume(self, why: str) -> None:
        if self.stalled:
            log.info("%s: %s", self.name, why)
        self.stalled = False
        self.clear()

    def note(self, reason: str) -> None:
        """Failing since the first note (fetches failing note without pausing)."""
        if self.since is None:
            self.since = time.monotonic()
        self.reason = reason

    def clear(self) -> None:
        self.since = None
        self.reason = None
