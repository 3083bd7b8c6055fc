"""Start ``livesales consume`` / ``livesales serve`` processes against the HTTP ClickHouse
and read their answers: the pieces tests/livesales/test_roles.py composes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ground.settings import Settings
from localbroker import free_port
from tests.conftest import wait_for
from tests.reference import CHANNELS, reference
from tests.support.process import ClickHouseHTTPProcess

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-roles-000000"  # noqa: S105 - a test token
SUMMED = ("paid_orders", "gmv_fen", "units", "weight_g", "created_orders", "refunded_orders", "refund_fen")
PEAKS = ("views_total", "viewers_peak")


def write_tokens(path: Path) -> Path:
    path.write_text(json.dumps({"tokens": [{"token": TOKEN, "name": "roles", "scope": "all"}]}), encoding="utf-8")
    return path


def role_env(settings: Settings, ch: ClickHouseHTTPProcess, tokens: Path, **extra: str) -> dict[str, str]:
    """The LIVESALES_* environment of a process; the DSN carries no credentials, the
    LIVESALES_CLICKHOUSE_USER/_PASSWORD overrides do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALES_")}
    env.update({
        "LIVESALES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LIVESALES_CONSUMER_GROUP": settings.consumer_group,
        "LIVESALES_TOPIC_ORDERS": settings.topic_orders,
        "LIVESALES_TOPIC_ONBOARDING": settings.topic_onboarding,
        "LIVESALES_TOPIC_STREAM_STATS": settings.topic_stream_stats,
        "LIVESALES_TOPIC_CHANNELS": settings.topic_channels,
        "LIVESALES_TOPIC_DLQ": settings.topic_dlq,
        "LIVESALES_CLICKHOUSE_DSN": f"http://127.0.0.1:{ch.port}/default",
        "LIVESALES_CLICKHOUSE_USER": ch.user,
        "LIVESALES_CLICKHOUSE_PASSWORD": ch.password,
        "LIVESALES_API_TOKENS_FILE": str(tokens),
        "LIVESALES_API_RATE_PER_S": "1000",
        "LIVESALES_TUNING": '{"batch_wait_ms": 20, "write_retry_max_s": 0.5}',
        **extra,
    })  # fmt: skip
    return env


@dataclass
class Role:
    """One ``livesales <role>`` child process, its log and the port it answers on."""

    role: str
    env: dict[str, str]
    log: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Role:
        self.port = free_port()
        key = "LIVESALES_HEALTH_PORT" if self.role == "consume" else "LIVESALES_API_PORT"
        env = {**self.env, key: str(self.port)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "livesales.cli", self.role], cwd=ROOT, env=env, stdout=out, stderr=out
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no drain, no commit, no leaving the group (a crashed or OOM-killed pod)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 90) -> None:
        async def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"{self.role} exited:\n{self.text()[-3000:]}"
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{self.url}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, timeout=timeout, interval=0.2, what=f"{self.role} /readyz")


async def api_totals(serve: Role) -> dict[str, dict[str, int]] | None:
    """Per channel, the summary's counts as the API answers them (None if any call failed)."""
    out: dict[str, dict[str, int]] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        for cid, *_ in CHANNELS:
            async with s.get(f"{serve.url}/v1/channels/{cid}/summary") as r:
                if r.status != 200:
                    return None
                body: dict[str, Any] = await r.json()
            out[cid] = {k: int(body[k] or 0) for k in (*SUMMED, *PEAKS)}
    return out


def reference_totals(events: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """tests.reference's per-minute counts, summed (or maxed) per channel as the summary does."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys((*SUMMED, *PEAKS), 0))
    for (cid, _), cells in reference(events).items():
        for k in SUMMED:
            out[cid][k] += cells.get(k, 0)
        for k in PEAKS:
            out[cid][k] = max(out[cid][k], cells.get(k, 0))
    return dict(out)


async def wait_assigned(role: Role, timeout: float = 60) -> None:
    """Until the process logged a non-empty partition assignment (it holds a share of the group)."""

    async def assigned() -> bool:
        return "assigned [(" in role.text()

    await wait_for(assigned, timeout=timeout, what=f"{role.role} assigned partitions")


async def gather_stop(*roles: Role) -> list[int | None]:
    return list(await asyncio.gather(*(asyncio.to_thread(r.stop) for r in roles)))
