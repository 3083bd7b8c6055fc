"""The detector: reads the store every few seconds and publishes the transitions it finds.

Any number of processes may run one; none coordinates with another. Each names a
transition by what the stored data says (notify.transitions.make_id) and publishes one
delivery per robot whose scope and rules cover it; the senders post each (robot, id)
once (notify.sender). So a second detector costs a second copy of each message on the
topic, never a second post, and a detector that restarts (its memory lost) republishes
what it finds recent, which the senders skip.

Transitions, by what the rows say at processing time ``now``:

* 开播 (``live_started``): a channel is live and its session started (notify.reads) within
  the maximum age. Id: the session's first storage time.
* 下播 (``live_ended``): a channel's status is ``ended`` (not live, and not ``scheduled``:
  rows stored ahead of an announced start end nothing), and it stopped being live (its
  last storage time + 10 minutes) within the maximum age. Id: its last storage time.
  Carries the sale's totals.
* 告警 / 恢复 (``firing`` / ``cleared`` of silence, refund_spike, pace_drop): each episode of
  the alert list (api.queries.alerts, given as ``alerts``) that started, or ended,
  within the maximum age of the channel's clock. Id: the episode's start, for both
  edges: an episode fires once and clears once.

"Recent" is bounded by the maximum age (an hour) so that a detector starting on a store
with a long history posts nothing stale; an alert's age is measured on the channel's
own clock, as the alert rules are, so a replayed sale behaves like a live one.

Cost: one read of the per-channel state a round, and only for a channel whose last
storage time or status changed since the last round (and that some robot covers): its
alert list (two reads pruned by its key), once a session its session start, at its end
its stream figures. Memory: per channel active within the window, its last signature
and session; the ids published within the window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from api.queries.channel_list import LIVE_WINDOW
from ground.stopping import cancel_and_wait
from notify.config import ALERT_RULES, RobotConfig
from notify.metrics import NotifyMetrics
from notify.reads import Session, active_channels, live_session, ms, stream_figures, window_since
from notify.sender import NOTIFY_TOPIC
from notify.transitions import Delivery, Figures, Place, Transition, encode
from processors.store import ClickHouse

log = logging.getLogger(__name__)

# (channel_id, now) -> the contract's alert list of the channel (api.queries.alerts.alerts_of)
AlertSource = Callable[[str, datetime], Awaitable[list[dict[str, Any]]]]
_LIVE_WINDOW_MS = int(LIVE_WINDOW.total_seconds() * 1000)


class Publisher(Protocol):
    """What the detector needs of ingest.producer.Producer."""

    async def send_all_or_raise(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> None: ...


@dataclass(frozen=True)
class DetectorConfig:
    topic: str = NOTIFY_TOPIC
    poll_s: float = 10.0
    max_age_s: float = 3600.0  # contract §8: a transition older than an hour is not posted


def _place(r: dict[str, Any]) -> Place:
    return Place(str(r["platform"] or ""), str(r["district"] or ""), str(r["township"] or ""), r["title"], r["host"])


def _figures(r: dict[str, Any], views: int | None = None, peak: int | None = None) -> Figures:
    return Figures(
        paid_orders=int(r["paid_orders"]), gmv_fen=int(r["gmv_fen"]), refund_fen=int(r["refund_fen"]),
        weight_g=int(r["paid_weight_g"]), views_total=views, viewers_peak=peak,
        first_ms=ms(r["first_at"]) if r["first_at"] is not None else None,
        last_ms=ms(r["last_at"]) if r["last_at"] is not None else None,
    )  # fmt: skip


def _transition(c: str, rule: str, edge: str, key_ms: int, at_ms: int, place: Place, figures: Figures,
                now_ms: int, text: str | None = None) -> Transition:  # fmt: skip
    return Transition(c, rule, edge, key_ms, at_ms, now_ms, place, figures, text)


def _edge_order(t: Transition) -> tuple[int, int, int]:
    """Within a channel: 开播 first, alerts by time (a firing before its clearing), 下播 last."""
    rank = {"live": 0, "firing": 1, "cleared": 1, "ended": 2}[t.edge]
    return rank, t.at_ms, 0 if t.edge == "firing" else 1


class Detector:
    def __init__(
        self,
        config: DetectorConfig,
        robots: Sequence[RobotConfig],
        store: ClickHouse,
        publisher: Publisher,
        alerts: AlertSource,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "notify-detector",
    ) -> None:
        self.config, self.name = config, name
        self.robots = tuple(robots)
        self.store, self.publisher, self.alerts = store, publisher, alerts
        self.metrics = metrics or NotifyMetrics()
        self._clock = clock
        self._seen: dict[str, tuple[int, str]] = {}  # channel -> (last stored ms, status) handled
        self._sessions: dict[str, Session] = {}  # live channel -> its session
        self._published: dict[str, int] = {}  # transition id -> first seen (ms), within the window
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # a store or broker outage, or a bug: the next round tries again
                self.metrics.detect_failures.inc()
                log.warning("%s: detection round failed", self.name, exc_info=True)
            await asyncio.sleep(self.config.poll_s)

    def _covered(self, rules: Sequence[str], r: dict[str, Any]) -> bool:
        d, t = str(r["district"] or ""), str(r["township"] or "")
        return any(robot.wants(rule, d, t) for robot in self.robots for rule in rules)

    async def poll(self) -> list[Transition]:
        """One round: the transitions found and published (those already published by this
        detector are not again). Raises when the store or the broker fails; nothing of the
        round is then remembered, so the next round finds it all again."""
        now_s = self._clock()
        now, now_ms = datetime.fromtimestamp(now_s, UTC), int(now_s * 1000)
        max_age_ms = int(self.config.max_age_s * 1000)
        rows = await active_channels(self.store, window_since(now, timedelta(seconds=self.config.max_age_s)), now)
        found: list[Transition] = []
        handled: dict[str, tuple[int, str]] = {}
        sessions: dict[str, Session] = {}
        for r in rows:
            c = str(r["channel_id"])
            live = r["status"] == "live"
            signature = (ms(r["last_stored"]), str(r["status"]))
            handled[c] = signature
            if self._seen.get(c) == signature:
                if live and c in self._sessions:
                    sessions[c] = self._sessions[c]
                continue
            if not self._covered((*ALERT_RULES, "live_started", "live_ended"), r):
                continue
            mine: list[Transition] = []
            place = _place(r)
            if live:
                session = self._sessions.get(c) if self._seen.get(c, (0, ""))[1] == "live" else None
                session = session or await live_session(self.store, c)
                if session is not None:
                    sessions[c] = session
                    if now_ms - session.start_ms <= max_age_ms:
                        mine.append(_transition(c, "live_started", "live", session.start_ms,
                                               session.first_event_ms, place, _figures(r), now_ms))  # fmt: skip
            elif r["status"] == "ended":  # not "scheduled": rows stored ahead of an announced start
                stopped_ms = signature[0] + _LIVE_WINDOW_MS
                if now_ms - stopped_ms <= max_age_ms and self._covered(("live_ended",), r):
                    views, peak = await stream_figures(self.store, c)
                    at = ms(r["last_at"]) if r["last_at"] is not None else signature[0]
                    mine.append(_transition(c, "live_ended", "ended", signature[0], at, place,
                                           _figures(r, views, peak), now_ms))  # fmt: skip
            if self._covered(ALERT_RULES, r) and r["last_at"] is not None:
                mine += await self._alert_transitions(c, r, place, now, now_ms, max_age_ms)
            found += sorted(mine, key=_edge_order)
        new = [t for t in found if t.id not in self._published]
        await self._publish(new)
        # the round is done: remember it
        self._seen, self._sessions = handled, sessions
        for t in new:
            self._published[t.id] = t.detected_ms
            self.metrics.transitions.labels(t.rule, t.edge).inc()
        horizon = now_ms - max_age_ms - _LIVE_WINDOW_MS
        self._published = {i: at for i, at in self._published.items() if at >= horizon}
        return new

    async def _alert_transitions(
        self, c: str, r: dict[str, Any], place: Place, now: datetime, now_ms: int, max_age_ms: int
    ) -> list[Transition]:
        clock_ms = ms(r["last_at"])
        out = []
        for a in await self.alerts(c, now):
            rule = str(a["rule"])
            since_ms = int(datetime.fromisoformat(a["since"]).timestamp() * 1000)
            if clock_ms - since_ms <= max_age_ms:
                # the banner of an episode already over says how it ended: not the 告警's text
                text = a["message"] if a["state"] == "firing" else None
                out.append(_transition(c, rule, "firing", since_ms, since_ms, place, _figures(r), now_ms, text))
            if a["state"] == "cleared" and a["until"] is not None:
                until_ms = int(datetime.fromisoformat(a["until"]).timestamp() * 1000)
                if clock_ms - until_ms <= max_age_ms:
                    out.append(_transition(c, rule, "cleared", since_ms, until_ms, place, _figures(r), now_ms,
                                          a["message"]))  # fmt: skip
        return out

    async def _publish(self, transitions: list[Transition]) -> None:
        messages: list[tuple[str, bytes | None, bytes]] = []
        for t in transitions:
            for robot in self.robots:
                if robot.wants(t.rule, t.place.district, t.place.township):
                    key, value = encode(Delivery(robot.name, t))
                    messages.append((self.config.topic, key, value))
        if messages:
            await self.publisher.send_all_or_raise(messages)
