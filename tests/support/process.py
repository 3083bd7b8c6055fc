"""Start the chDB-backed ClickHouse HTTP server as a child process, and steer its faults."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ClickHouseHTTPProcess:
    """``with ClickHouseHTTPProcess(data_dir) as ch: ch.dsn``; faults via ``set_faults``."""

    data: Path
    user: str = "livesales"
    password: str = "s3cret-pw"  # noqa: S105 - a throw-away test server
    log_path: Path | None = None
    port: int = 0
    tls: tuple[Path, Path] | None = None  # (certificate, key): serve HTTPS
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def dsn(self) -> str:
        return f"{self.scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/default"

    def start(self, timeout: float = 60.0) -> ClickHouseHTTPProcess:
        self.data.mkdir(parents=True, exist_ok=True)
        err = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.clickhouse_http", "--data", str(self.data),
             "--port", str(self.port), "--user", self.user, "--password", self.password,
             *(("--certfile", str(self.tls[0]), "--keyfile", str(self.tls[1])) if self.tls else ())],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode()  # the child prints it once it answers
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"ClickHouse HTTP server did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ClickHouseHTTPProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault plan (fields of tests.support.clickhouse_http.Faults); no args: none."""
        req = urllib.request.Request(  # noqa: S310 - loopback test server
            f"{self.url}/_faults", data=json.dumps(faults).encode(), method="PUT",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10, context=self._tls_context()) as resp:  # noqa: S310 - loopback
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def _tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/_faults", timeout=10, context=self._tls_context()) as resp:  # noqa: S310
            result: dict[str, int] = json.loads(resp.read())["counts"]
        return result
