"""Readiness that tells the truth: each component's state, and a policy per role.

``/readyz`` used to say 200 as soon as consumers had subscribed, through a frozen broker
and a full disk. Now it answers what each part can do right now and decides by role
(docs/RELIABILITY.md, "Readiness"):

* ``run`` / ``consume`` (processes with consumers) are ready when storage is writable,
  the broker answers, every consumer is subscribed, and none has been stalled (storage,
  dead-letter queue or fetches failing) for more than ``ReadyPolicy.stall_s`` (30 s).
* ``serve`` (the API alone) is ready when storage answers a read; the broker is reported
  but only ``POST /v1/events`` needs it.

Checks are cheap: storage counts as writable from the consumers' last insert, and is
probed (a read, and for embedded ClickHouse a small file written and removed in its
data directory) only when nothing was written for ``ReadyPolicy.probe_s`` (10 s). Probe
results are kept for a few seconds, so a burst of probes costs one check.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from ground.metrics import Metrics
from ingest.producer import Producer
from processors.store import ClickHouse

PROBE_TIMEOUT_S = 2.0
PROBE_CACHE_S = 3.0
CONSUMER_ROLES = ("run", "consume")


class ConsumerState(Protocol):
    """What readiness reads off a consumer (ingest.consumer.Consumer)."""

    @property
    def name(self) -> str: ...
    @property
    def subscribed(self) -> bool: ...
    @property
    def stalled_since(self) -> float | None: ...  # time.monotonic()
    @property
    def stall_reason(self) -> str | None: ...
    @property
    def last_write_ok_at(self) -> float | None: ...
    @property
    def last_write_failed_at(self) -> float | None: ...
    @property
    def lag_total(self) -> int | None: ...
    @property
    def lag_trustworthy(self) -> bool: ...


@dataclass
class _Probe:
    ok: bool = False
    error: str | None = None
    at: float = -1e9  # time.monotonic() of the check


@dataclass(frozen=True)
class ReadyPolicy:
    """How long a consumer may be stalled, and storage unwritten before it is probed."""

    stall_s: float = 30.0
    probe_s: float = 10.0


@dataclass
class Health:
    role: str
    policy: ReadyPolicy
    store: ClickHouse
    producer: Producer | None
    consumers: Sequence[ConsumerState]
    metrics: Metrics | None = None
    _storage: _Probe = field(default_factory=_Probe)
    _broker: _Probe = field(default_factory=_Probe)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.metrics is not None:
            self.metrics.seconds_since_last_write.set_function(self.seconds_since_last_write)

    # -- facts ---------------------------------------------------------------------------
    def last_write_ok_at(self) -> float | None:
        times = [t for c in self.consumers if (t := c.last_write_ok_at) is not None]
        return max(times) if times else None

    def seconds_since_last_write(self) -> float:
        """Since the last successful insert (or since start, before the first one)."""
        last = self.last_write_ok_at()
        return time.monotonic() - (last if last is not None else self.started_at)

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body): the body names every component and, when not ready, why."""
        async with self._lock:  # one probe at a time; the others read its result
            storage = await self._storage_state()
            broker = await self._broker_state()
        now = time.monotonic()
        consumers = [self._consumer_state(c, now) for c in self.consumers]
        reasons: list[str] = []
        if not self.store.is_open:
            reasons.append("storage is not open")
        elif not storage["ok"]:
            reasons.append(f"storage cannot be {'written' if self.role in CONSUMER_ROLES else 'read'}")
        if self.role in CONSUMER_ROLES:
            if not broker["ok"]:
                reasons.append("broker unreachable")
            if not consumers:
                reasons.append("no consumer started")
            for c in consumers:
                if not c["subscribed"]:
                    reasons.append(f"{c['name']} not subscribed")
                elif c["stalled_for_s"] is not None and c["stalled_for_s"] > self.policy.stall_s:
                    reasons.append(f"{c['name']} stalled for {c['stalled_for_s']:.0f} s ({c['stall_reason']})")
                elif c["behind_for_s"] is not None and c["behind_for_s"] > self.policy.stall_s:
                    # nothing fails, yet records wait and nothing is stored: fetches that
                    # return nothing (a broker that answers metadata but serves no data)
                    behind = f"{c['lag']} records behind, nothing stored for {c['behind_for_s']:.0f} s"
                    reasons.append(f"{c['name']} {behind}")
        ready = not reasons
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "role": self.role,
            "policy": self.describe_policy(),
            "components": {"storage": storage, "broker": broker, "consumers": consumers},
        }
        if not ready:
            body["error"] = {"code": "unavailable", "message": "; ".join(reasons)}
        return ready, body

    def describe_policy(self) -> str:
        if self.role in CONSUMER_ROLES:
            return (
                "ready when storage is writable, the broker answers, every consumer is subscribed"
                f" and none stalled, or behind with nothing stored, for over {self.policy.stall_s:g} s"
            )
        return "ready when storage answers a read; the broker matters only to POST /v1/events"

    # -- components ----------------------------------------------------------------------
    def _consumer_state(self, c: ConsumerState, now: float) -> dict[str, Any]:
        since = c.stalled_since
        return {
            "name": c.name,
            "subscribed": c.subscribed,
            "stalled_for_s": None if since is None else round(now - since, 1),
            "stall_reason": c.stall_reason,
            "lag": c.lag_total,
            "lag_trustworthy": c.lag_trustworthy,
            # records wait (by a lag we trust) and nothing was stored since: how long
            "behind_for_s": round(now - c.last_write_ok_at, 1)
            if c.lag_total and c.lag_trustworthy and c.last_write_ok_at is not None
            else None,
        }

    async def _storage_state(self) -> dict[str, Any]:
        now = time.monotonic()
        ok_at = self.last_write_ok_at()
        failed = [t for c in self.consumers if (t := c.last_write_failed_at) is not None]
        failed_at = max(failed) if failed else None
        since_write = None if ok_at is None else round(now - ok_at, 1)
        if failed_at is not None and (ok_at is None or failed_at > ok_at):
            return {"ok": False, "checked_by": "last_write", "error": "the last insert failed",
                    "seconds_since_last_write": since_write}  # fmt: skip
        if ok_at is not None and now - ok_at < self.policy.probe_s:
            return {"ok": True, "checked_by": "last_write", "seconds_since_last_write": since_write}
        if now - self._storage.at > PROBE_CACHE_S:
            self._storage = await self._probe_storage()
        out: dict[str, Any] = {"ok": self._storage.ok, "checked_by": "probe", "seconds_since_last_write": since_write}
        if self._storage.error:
            out["error"] = self._storage.error
        return out

    async def _probe_storage(self) -> _Probe:
        """A read for every role; for embedded ClickHouse also a small write where it keeps
        its data, which fails as an insert would when the disk is full or read-only."""
        if not self.store.is_open:
            return _Probe(False, "not open", time.monotonic())
        try:
            await asyncio.wait_for(self.store.query("SELECT 1 AS one"), PROBE_TIMEOUT_S)
            if self.role in CONSUMER_ROLES:
                url = urlparse(self.store.dsn)
                if url.scheme == "chdb":
                    await asyncio.to_thread(_write_probe_file, Path(url.path))
        except (TimeoutError, Exception) as exc:
            return _Probe(False, f"{type(exc).__name__}: {str(exc)[:200]}", time.monotonic())
        return _Probe(True, None, time.monotonic())

    async def _broker_state(self) -> dict[str, Any]:
        if self.producer is None or not self.producer.started:
            return {"ok": False, "error": "no producer connected"}
        if time.monotonic() - self._broker.at > PROBE_CACHE_S:
            try:
                await self.producer.ping(PROBE_TIMEOUT_S)
                self._broker = _Probe(True, None, time.monotonic())
            except Exception as exc:
                self._broker = _Probe(False, f"{type(exc).__name__}: {str(exc)[:200]}", time.monotonic())
        out: dict[str, Any] = {"ok": self._broker.ok}
        if self._broker.error:
            out["error"] = self._broker.error
        return out


def _write_probe_file(data_dir: Path, size: int = 64 * 1024) -> None:
    path = data_dir / f".livesales-ready-probe-{os.getpid()}"
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
    finally:
        path.unlink(missing_ok=True)
