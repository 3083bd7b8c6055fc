"""The consumers ``livesales bench chaos`` runs: each a ``livesales consume`` process in
one slot, killed, terminated or stopped when its fault comes and restarted as a
supervisor (Kubernetes, systemd) would restart it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.procs import ROOT, _ready
from localbroker import free_port


@dataclass
class Slot:
    """One consumer of the group: a ``livesales consume`` process, restarted as a supervisor would."""

    index: int
    env: dict[str, str]
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    started: list[Path] = field(default_factory=list)  # one log per process started
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one fault at a time

    def start(self) -> None:
        self.port, log = free_port(), self.logs / f"c{self.index}.{len(self.started)}.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "livesales.cli", "consume"], cwd=ROOT, stdout=out, stderr=out,
                env={**self.env, "LIVESALES_HEALTH_PORT": str(self.port)},
            )  # fmt: skip
        self.started.append(log)

    async def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"consume process {self.index} exited; see {self.started[-1]}")
        return await _ready(self.port) and " assigned [" in self.started[-1].read_text(errors="replace")

    async def readyz(self) -> str:
        """Why the process is not ready (or "ready"), as its /readyz answers."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
                s.get(f"http://127.0.0.1:{self.port}/readyz") as r,
            ):
                body: dict[str, Any] = await r.json()
            return str(body.get("error", {}).get("message", body.get("status")))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return f"no answer ({exc!r})"

    async def fault(self, kind: str, stop_s: float, odd: list[str]) -> None:
        proc = self.proc
        assert proc is not None  # noqa: S101
        if kind == "stop":
            proc.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(stop_s)
            finally:
                proc.send_signal(signal.SIGCONT)
            return
        proc.send_signal(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
        code = await asyncio.to_thread(_wait, proc, 90)
        if kind == "term" and code != 0 and self.started[-1].stat().st_size:  # not just started: it must drain
            odd.append(f"c{self.index} exited {code} on SIGTERM ({self.started[-1].name})")
        await asyncio.sleep(1.0 if kind == "kill" else 0.0)
        self.start()

    def stop(self) -> int | None:
        """SIGCONT (it may be stopped), SIGTERM, wait; SIGKILL past 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        return _wait(self.proc, 60)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9
