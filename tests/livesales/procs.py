"""Run ``livesales`` as a child process and watch its log (tests of whole-process behaviour)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    from localbroker import free_port as fp

    return fp()


class Livesales:
    """``python -m livesales.cli <args>`` with ``env``; stderr goes to a file we can poll."""

    def __init__(self, tmp: Path, env: dict[str, str], *args: str) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALES_")}
        base = {"LIVESALES_CLICKHOUSE_DSN": f"chdb://{tmp / 'ch'}", "LIVESALES_API_PORT": "0",
                "LIVESALES_VALIDATION_PROCESSES": "0"}  # fmt: skip
        self.log = tmp / f"livesales-{time.monotonic_ns()}.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livesales.cli", *(args or ("run",))],
            env={**clean, **base, **env}, cwd=tmp, stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, needle: str, timeout: float = 30.0) -> None:
        until(lambda: needle in self.text() or self.proc.poll() is not None, timeout, f"{needle!r} in the log")
        assert needle in self.text(), self.text()

    def signal(self, sig: int = signal.SIGTERM) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
