"""The replay's progress line, and log lines that do not run into it.

On a terminal the line is rewritten in place every ``every_s`` seconds, and any log
record first clears it (``ClearLine``): a log line printed after it would otherwise start
mid-line, glued to "stream time 09:02 (+08:00)". Anywhere else (``make demo > file``, a
CI log) ``\r`` would pile every update onto one line, so each update is a line of its
own, written less often.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

from scenarios import festival

CLEAR = "\r\033[K"  # carriage return, erase to the end of the line


class Progress:
    """``progress(sent, total)`` for scenarios.replay: the events sent and the festival
    day's clock at ``speed`` times real time."""

    def __init__(self, speed: float, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.speed, self.out, self.clock = speed, out, clock
        self.tty = out.isatty()
        self.every_s = 2.0 if self.tty else 15.0
        self.started = clock()
        self.last = -1e9

    def __call__(self, sent: int, total: int) -> None:
        now = self.clock()
        if now - self.last < self.every_s and sent != total:
            return
        self.last = now
        day_clock = festival.START.timestamp() + (now - self.started) * self.speed
        shown = time.strftime("%H:%M", time.gmtime(day_clock + 8 * 3600))
        line = f"festival day replay: {sent:,}/{total:,} events, stream time {shown} (+08:00)"
        self.out.write(f"{CLEAR}{line}" if self.tty else f"{line}\n")
        if sent == total:
            done = "festival day replay done; the dashboard keeps serving. Ctrl-C to stop.\n"
            self.out.write(f"\n{done}" if self.tty else done)
        self.out.flush()


class ClearLine(logging.Filter):
    """On the log handlers while a terminal shows the progress line: clears it first."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def filter(self, record: logging.LogRecord) -> bool:
        self.out.write(CLEAR)
        self.out.flush()
        return True
