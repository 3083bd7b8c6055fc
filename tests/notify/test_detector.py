"""The detector on real chDB with a recording publisher: what it finds, what it leaves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.alerts import Thresholds
from api.auth import Scope
from api.queries.alerts import alerts_of
from notify.config import RULES, RobotConfig
from notify.detector import Detector, DetectorConfig
from notify.reads import session_of
from notify.service import Notifications, NotifyConfig
from notify.transitions import decode
from processors.store import ClickHouse
from tests.api.conftest import order, stats, store_events
from tests.conftest import wait_for

C25 = ("clam-2.5kg", "长街蛏子 2.5kg 装", 1, 6800, 2500)
T = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


def minute_rows(*spans: tuple[float, float]) -> list[dict[str, Any]]:
    """Per-minute storage rows from (first, last) storage times in minutes after T."""
    return [
        {"m": T + timedelta(minutes=int(lo)), "lo": T + timedelta(minutes=lo), "hi": T + timedelta(minutes=hi),
         "first_event": T + timedelta(minutes=lo) - timedelta(seconds=30)}
        for lo, hi in spans
    ]  # fmt: skip


def test_a_session_starts_after_the_last_gap_of_more_than_ten_minutes() -> None:
    ms = int(T.timestamp() * 1000)
    assert session_of([]) is None
    one = session_of(minute_rows((0.5, 0.9), (1.1, 1.5), (9.0, 9.2)))
    assert one is not None and one.start_ms == ms + 30_000 and one.first_event_ms == ms
    # 10:00 exactly between rows is still live (stored within the last 10 minutes); 10:01 is not
    assert session_of(minute_rows((0.0, 0.5), (10.5, 10.6))).start_ms == ms  # type: ignore[union-attr]
    again = session_of(minute_rows((0.0, 0.5), (10.6, 10.7), (11.0, 11.1)))
    assert again is not None and again.start_ms == ms + 636_000


class Recording:
    def __init__(self, fail: int = 0) -> None:
        self.messages: list[tuple[str, bytes | None, bytes]] = []
        self.fail = fail

    async def send_all_or_raise(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("broker away")
        self.messages += messages


def robot(scope: str) -> RobotConfig:
    return RobotConfig("r", "wecom", "https://x/?key=k", None, Scope.parse(scope), frozenset(RULES))


@pytest.fixture
async def long_silence(clickhouse: ClickHouse) -> ClickHouse:
    """Paid orders in minutes 0-4, stream stats to minute 100: silence fires at minute 20 of
    the channel's clock, 80 minutes before the clock, and never clears; pace_drop fires at
    minute 75 (the first boundary with an hour before the last 15 minutes) and clears at 80
    (the hour before holds no order any more)."""
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=110)
    at = [(base + timedelta(minutes=m, seconds=10)).isoformat() for m in range(101)]
    events = [order(f"o{m}", f"o{m}", "paid", at[m], "nh-d", [C25]) for m in range(5)]
    events += [stats(f"s{m}", at[m], "nh-d", 10, m) for m in range(0, 101, 5)]
    await store_events(clickhouse, events)
    return clickhouse


async def test_an_alert_older_than_the_hour_is_not_published(long_silence: ClickHouse) -> None:
    calls: list[str] = []

    async def alerts(channel: str, now: datetime) -> list[dict[str, Any]]:
        calls.append(channel)
        return await alerts_of(long_silence, channel, Thresholds(), None, now)

    pub = Recording()
    found = await Detector(DetectorConfig(topic="t"), [robot("all")], long_silence, pub, alerts).poll()
    assert [(t.channel_id, t.rule, t.edge) for t in found] == [
        ("nh-d", "live_started", "live"), ("nh-d", "pace_drop", "firing"), ("nh-d", "pace_drop", "cleared")
    ]  # not the silence: it fired 80 minutes ago on the channel's clock
    assert calls == ["nh-d"]
    assert [decode(v).transition.id for _, _, v in pub.messages] == [t.id for t in found]


async def test_a_channel_no_robot_covers_is_not_even_read(long_silence: ClickHouse) -> None:
    async def alerts(channel: str, now: datetime) -> list[dict[str, Any]]:
        raise AssertionError("not covered: not evaluated")

    pub = Recording()
    assert await Detector(DetectorConfig(), [robot("district:象山县")], long_silence, pub, alerts).poll() == []
    assert pub.messages == []


async def test_a_failed_round_is_found_again_whole(long_silence: ClickHouse) -> None:
    async def alerts(channel: str, now: datetime) -> list[dict[str, Any]]:
        return []

    pub = Recording(fail=1)
    det = Detector(DetectorConfig(), [robot("all")], long_silence, pub, alerts)
    with pytest.raises(RuntimeError):
        await det.poll()
    assert len(await det.poll()) == 1 and len(pub.messages) == 1
    assert await det.poll() == []  # published once, remembered


async def test_the_detector_runs_on_its_own_in_the_service(long_silence: ClickHouse) -> None:
    async def alerts(channel: str, now: datetime) -> list[dict[str, Any]]:
        return []

    pub = Recording(fail=1)  # its first round fails: the loop goes on
    service = Notifications(NotifyConfig(sender=None, detector=DetectorConfig(poll_s=0.05)), [robot("all")],
                            long_silence, pub, alerts)  # fmt: skip
    await service.start()
    try:
        await wait_for(lambda: _some(pub.messages), timeout=10, what="a published 开播")
    finally:
        await service.stop()
    assert service.metrics.detect_failures._value.get() == 1
    assert service.metrics.transitions.labels("live_started", "live")._value.get() == 1


async def _some(items: list[Any]) -> bool:
    return bool(items)
