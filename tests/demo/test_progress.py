"""The demo's replay progress: one line rewritten in place on a terminal, with log lines
that clear it first; separate lines, less often, anywhere else (demo.progress)."""

from __future__ import annotations

import io
import logging

from demo.progress import CLEAR, ClearLine, Progress
from tests.support.clock import ManualClock as Clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_a_line_per_update_every_15_seconds_and_no_carriage_returns() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(60.0, out, clock)
    progress(1, 10)
    clock.now += 5
    progress(2, 10)  # too soon: not written
    clock.now += 10
    progress(3, 10)
    progress(10, 10)  # the last one always
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == [
        "festival day replay: 1/10 events, stream time 09:00 (+08:00)",
        "festival day replay: 3/10 events, stream time 09:15 (+08:00)",  # 15 s at 60× is 15 minutes
        "festival day replay: 10/10 events, stream time 09:15 (+08:00)",
        "festival day replay done; the dashboard keeps serving. Ctrl-C to stop.",
    ]


def test_a_terminal_rewrites_one_line_and_a_log_record_clears_it_first() -> None:
    out, clock = Terminal(), Clock()
    progress = Progress(60.0, out, clock)
    progress(1, 10)
    clock.now += 2
    progress(2, 10)
    assert out.getvalue() == (
        f"{CLEAR}festival day replay: 1/10 events, stream time 09:00 (+08:00)"
        f"{CLEAR}festival day replay: 2/10 events, stream time 09:02 (+08:00)"
    )

    err = io.StringIO()
    handler = logging.StreamHandler(err)
    handler.addFilter(ClearLine(out))
    log = logging.getLogger("tests.demo.progress")
    log.addHandler(handler)
    try:
        log.warning("broker unavailable")
    finally:
        log.removeHandler(handler)
    assert out.getvalue().endswith(CLEAR) and err.getvalue() == "broker unavailable\n"
