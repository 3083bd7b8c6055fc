"""deploy/Dockerfile read by a small parser: stages, base pin, user, health check, contents.

No Docker daemon runs here, so the image is not built; what can be checked without one
is: the recipe's structure, that its HEALTHCHECK command really tells ready from not
(run against a local HTTP server), and that it copies every package the service imports.
"""

from __future__ import annotations

import ast
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, continuation lines joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not buf:
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.I)
            assert m, line
            stages.append(Stage(m[1], m[2]))
        elif stages:
            stages[-1].instructions.append((instruction, rest.strip()))
        elif instruction == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def _resolve(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], value)


def test_multi_stage_from_a_pinned_slim_python(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    args, stages = dockerfile
    assert [s.name for s in stages] == ["builder", "runtime"]
    for stage in stages:
        base = _resolve(stage.base, args)
        # an exact patch release (optionally with its digest), never a moving tag
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    builder, runtime = stages
    assert any("pip wheel" in a for a in builder.args("RUN"))
    # the runtime stage takes the built venv from the builder and nothing from the context
    copies = runtime.args("COPY")
    assert copies and all(c.startswith("--from=builder ") for c in copies)
    assert not runtime.args("ADD")


def test_runs_as_a_non_root_user(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    runtime = dockerfile[1][-1]
    users = runtime.args("USER")
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so Kubernetes' runAsNonRoot can check it
    assert json.loads(runtime.args("ENTRYPOINT")[-1]) == ["livesales"]


def _healthcheck_command(runtime: Stage) -> list[str]:
    (check,) = runtime.args("HEALTHCHECK")
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", check)
    assert m, check
    command: list[str] = json.loads(m[1])
    return command


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("status", "role", "healthy"), [
    (200, "serve", True), (503, "serve", False), (200, "consume", True), (503, "consume", False), (None, "serve", False)
])
def test_healthcheck_asks_readyz_on_the_role_port(
    dockerfile: tuple[dict[str, str], list[Stage]],
    ready_server: ThreadingHTTPServer,
    status: int | None,
    role: str,
    healthy: bool,
) -> None:
    command = _healthcheck_command(dockerfile[1][-1])
    assert command[:2] == ["python", "-c"] and "/readyz" in command[2]
    _Ready.status = status or 200
    listening = ready_server.server_address[1] if status else _free_port()
    closed = _free_port()
    ports = {"LIVESALES_API_PORT": listening, "LIVESALES_HEALTH_PORT": closed}
    if role == "consume":
        ports = {"LIVESALES_API_PORT": closed, "LIVESALES_HEALTH_PORT": listening}
    env = {k: str(v) for k, v in ports.items()}
    proc = subprocess.run([sys.executable, *command[1:]], env=env, timeout=30, check=False)
    assert (proc.returncode == 0) is healthy


def test_installs_the_wheel_without_the_embedded_extra(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """The image talks to a ClickHouse server and a Kafka cluster: no chDB, no local broker."""
    builder = dockerfile[1][0]
    installs = [
        part.strip()
        for run in builder.args("RUN")
        for part in run.split("&&")
        if re.search(r"\bpip install\b", part)
    ]
    assert installs, "the builder installs nothing"
    for install in installs:
        targets = [t.strip("'\"") for t in install.split()[2:] if not t.startswith("-")]
        assert targets == ["/wheels/livesales-*.whl"], install  # the wheel alone, no [extra]
        assert "embedded" not in install and "chdb" not in install and "calfkit" not in install, install


def _imported_packages(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_copies_every_package_the_service_imports(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    builder = dockerfile[1][0]
    copied = {c.split()[0] for c in builder.args("COPY")}
    packages = {c for c in copied if (ROOT / c / "__init__.py").exists()}
    assert packages >= {"livesales", "ingest", "processors", "api", "schemas"}
    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"}
    # the CLI imports these lazily, only for demo/replay/bench, which the image leaves out
    lazy_only = {"demo", "scenarios", "benchmarks", "localbroker", "localplatforms"}
    needed = set().union(*(_imported_packages(ROOT / p) for p in packages)) & local
    assert needed - lazy_only <= packages
    for name in needed & lazy_only:
        users = [p for p in packages if name in _imported_packages(ROOT / p)]
        assert users == ["livesales"], (name, users)
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    assert "*" in ignore and all(f"!{c.rstrip('/')}/" in ignore or f"!{c}" in ignore for c in copied)
