"""When the next post to a robot may go: its rate limit, and the back-off while it fails.

Both are pure functions of an injected clock (epoch seconds), so the hour-long behaviour
of a failing robot is tested in virtual time (tests/notify/test_outbox.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


class RateLimit:
    """Sliding windows of (messages, seconds), all of which must hold.

    The robots count posts per robot over a trailing window; a post refused for going too
    fast still counted for some of them (and DingTalk blocks a robot ten minutes when
    pushed past 20 a minute), so this stays under the limit rather than probing it.
    A window is kept a little longer than the robot's (``margin``: 5 %, at least 0.25 s):
    the robot counts arrivals by its own clock, after the network's delay, and a post that
    left just in time here can arrive just too early there.
    Memory: one timestamp per post in the largest window.
    """

    @staticmethod
    def margin(seconds: float) -> float:
        return max(0.25, 0.05 * seconds)

    def __init__(self, windows: Sequence[tuple[int, float]]) -> None:
        if not windows or any(n < 1 or s <= 0 for n, s in windows):
            raise ValueError(f"rate-limit windows must be (messages >= 1, seconds > 0), got {windows!r}")
        self.windows = tuple(windows)
        self.longest = max(s for _, s in self.windows)
        self._sent: deque[float] = deque(maxlen=max(n for n, _ in self.windows))
        self._blocked_until = 0.0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next post may go (0: now)."""
        wait = max(0.0, self._blocked_until - now)
        sent = list(self._sent)
        for n, seconds in self.windows:
            if len(sent) >= n:
                # the n-th newest post must have left the window
                wait = max(wait, sent[-n] + seconds + self.margin(seconds) - now)
        return wait

    def note(self, now: float) -> None:
        """A post goes out at ``now``."""
        self._sent.append(now)

    def refused(self, now: float) -> None:
        """The robot answered "too fast" (another process posting, or a limit lower than
        documented): nothing more until a whole window has passed."""
        self._blocked_until = max(self._blocked_until, now + self.longest + self.margin(self.longest))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off between attempts, capped; a transition older than ``max_age_s``
    (since it was first seen) is dropped instead of posted (contract §8: an hour)."""

    first_s: float = 1.0
    cap_s: float = 300.0
    max_age_s: float = 3600.0

    def backoff(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        return min(self.cap_s, self.first_s * float(2 ** max(0, min(attempts - 1, 60))))

    def expires_at(self, created_s: float) -> float:
        return created_s + self.max_age_s
