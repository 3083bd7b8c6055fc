"""The demo as a process: it listens where LIVESALES_API_PORT says (``--port`` wins), stops
on SIGTERM, and its broker dies with it even when it is SIGKILLed."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.livesales.procs import Livesales, free_port, until

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has died; only its exit status waits to be read


def broker_pid(app: Livesales) -> int:
    line = next(x for x in app.text().splitlines() if "broker: 127.0.0.1:" in x)
    port = re.search(r"broker: 127\.0\.0\.1:(\d+)", line)
    assert port is not None
    kids = [p for p in children(app.proc.pid) if "tansu" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
            or f":{port.group(1)}".encode() in Path(f"/proc/{p}/cmdline").read_bytes()]  # fmt: skip
    assert len(kids) == 1, (kids, children(app.proc.pid))
    return kids[0]


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc (Linux)")
def test_demo_honours_env_port_and_its_broker_dies_on_sigkill(tmp_path: Path) -> None:
    port = free_port()
    app = Livesales(tmp_path, {"LIVESALES_API_PORT": str(port)}, "demo", "--speed", "3000",
                    "--data-dir", str(tmp_path / "demo"))  # fmt: skip
    try:
        app.wait_log("livesales demo is up", timeout=60)
        assert f"livesales demo is up: http://127.0.0.1:{port}/" in app.text()
        broker = broker_pid(app)
        assert alive(broker)
        os.kill(app.proc.pid, signal.SIGKILL)
        app.wait(10)
        until(lambda: not alive(broker), 5.0, f"broker {broker} to die with the demo")
    finally:
        app.kill()


def test_demo_port_flag_wins_and_sigterm_stops_it(tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    app = Livesales(tmp_path, {"LIVESALES_API_PORT": str(env_port)}, "demo", "--speed", "3000",
                    "--data-dir", str(tmp_path / "demo"), "--port", str(flag_port))  # fmt: skip
    try:
        app.wait_log("livesales demo is up", timeout=60)
        assert f"livesales demo is up: http://127.0.0.1:{flag_port}/" in app.text()
        app.signal(signal.SIGTERM)
        assert app.wait(20) == 0, app.text()
    finally:
        app.kill()
