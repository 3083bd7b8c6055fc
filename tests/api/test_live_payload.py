"""The live payloads, computed for many channels at once, equal the channel pages' numbers."""

from __future__ import annotations

import pytest

from api.alerts import Thresholds
from api.auth import Scope
from api.live.payloads import live_payloads
from api.params import TimeParams
from api.queries import channels as q
from api.queries.alerts import alerts_of
from processors.store import ClickHouse
from tests.api.conftest import stats, store_events

CHANNELS = ["nh-live", "xs-live", "nh-other", "store-f1", "store-f2", "stats-only", "nope"]
SCOPES = [Scope(), Scope(district="宁海县"), Scope(district="宁海县", township="长街镇"), Scope(district="象山县")]


@pytest.mark.parametrize("tz", ["+08:00", "-05:30"])
async def test_batched_payloads_equal_summary_and_minutes_per_channel(loaded: ClickHouse, tz: str) -> None:
    await store_events(loaded, [stats("so-1", "2020-02-29T10:00:00+08:00", "stats-only", 5, 9)])
    tp = TimeParams(tz=tz)
    for scope in SCOPES:
        got = await live_payloads(loaded, CHANNELS, scope, tp, Thresholds())
        assert set(got) == set(CHANNELS)
        for c in CHANNELS:
            summary = await q.summary(loaded, c, scope, tp)
            if summary is None:
                assert got[c] is None, (scope, c)
                continue
            minutes = await q.minutes(loaded, c, scope, tp)
            alerts = await alerts_of(loaded, c, Thresholds(), tp)
            assert got[c] == {
                "summary": summary,
                "minutes": {"channel_id": c, "tz": tz, "minutes": minutes},
                "alerts": alerts,
            }, (scope, c)
    everything = await live_payloads(loaded, CHANNELS, Scope(), tp, Thresholds())
    assert sum(p is not None for p in everything.values()) == 6  # all but "nope": the test sees real data
    window = TimeParams.model_validate({"from_": "2020-02-29T10:00:00+08:00", "to": "2020-02-29T10:03:00+08:00"})
    got = await live_payloads(loaded, ["nh-live"], Scope(), window, Thresholds())
    assert got["nh-live"] is not None
    assert got["nh-live"]["minutes"]["minutes"] == await q.minutes(loaded, "nh-live", Scope(), window)
