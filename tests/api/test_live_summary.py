"""``/summary`` of a watched channel: lent by the live hub, shared, never stale past its
bound, never across scopes (api.live.summaries)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.auth import Scope
from api.context import METRICS
from api.live.hub import LiveHub
from api.live.summaries import SUMMARIES, SummaryReads
from api.params import TimeParams
from api.queries import channels as q
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import live_config
from processors.store import ClickHouse
from tests.api.conftest import C25, TOKENS, order, store_events
from tests.api.live_support import MakeClient, client_factory, hub_of, next_update, sample
from tests.api.test_channels import channel
from tests.conftest import wait_for
from tests.support.settings import tuned

CHANGJIE = Scope(district="宁海县", township="长街镇")
TAOYUAN = {"token": "tok-taoyuan-0000", "name": "taoyuan", "scope": "township:宁海县/桃源街道", "ingest": False}
ROLES = {**{role: t["token"] for role, t in TOKENS.items()}, "taoyuan": TAOYUAN["token"]}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ROLES[role]}"}


@pytest.fixture
def make_client(api_settings: Settings, loaded: ClickHouse, tmp_path: Path) -> MakeClient:
    tokens = tmp_path / "tokens-live-summary.json"
    tokens.write_text(json.dumps({"tokens": [*TOKENS.values(), TAOYUAN]}, ensure_ascii=False), encoding="utf-8")
    # No poll within a test: a row stored here reaches a watcher only when it recomputes.
    return client_factory(tuned(api_settings, api_tokens_file=tokens, live_poll_ms=3_600_000),
                          loaded)  # fmt: skip


def answers(metrics: Metrics, source: str) -> float:
    return sample(metrics, "livesales_summary_answers_total", {"source": source})


def paid(n: int, channel: str = "nh-live") -> dict[str, Any]:
    return order(f"ls-{n}-p", f"ls{n}", "paid", f"2020-02-29T10:{30 + n:02d}:00+08:00", channel, [C25])


async def test_a_summary_lent_by_the_live_hub_equals_a_fresh_query(make_client: MakeClient, loaded: ClickHouse) -> None:
    async with make_client(api_max_age_ms=10_000) as client:
        metrics = client.server.app[METRICS]
        for tz in ("+08:00", "-05:30"):
            stream = await client.get("/v1/channels/nh-live/live", params={"tz": tz}, headers=auth("township"))
            assert (await next_update(stream))["summary"]["paid_orders"] >= 4
            lent = answers(metrics, "live_hub")
            resp = await client.get("/v1/channels/nh-live/summary", params={"tz": tz}, headers=auth("township"))
            assert resp.status == 200 and answers(metrics, "live_hub") == lent + 1
            fresh = await q.summary(loaded, "nh-live", CHANGJIE, TimeParams(tz=tz))
            assert fresh is not None
            body, want = await resp.json(), orjson.loads(orjson.dumps(fresh))
            assert body.keys() == want.keys()
            for name in want:
                assert body[name] == want[name], name
            assert body["last_paid_at"].endswith(tz)
            stream.close()
        await store_events(loaded, [paid(1)])  # after a store, the next payload is the fresh one again
        stream = await client.get("/v1/channels/nh-live/live", headers=auth("township"))
        assert (await next_update(stream))["summary"]["paid_orders"] == 5
        body = await (await client.get("/v1/channels/nh-live/summary", headers=auth("township"))).json()
        assert body == orjson.loads(orjson.dumps(await q.summary(loaded, "nh-live", CHANGJIE, TimeParams())))
        assert body["paid_orders"] == 5
        stream.close()


async def test_a_payload_older_than_the_bound_is_not_lent(make_client: MakeClient, loaded: ClickHouse) -> None:
    async with make_client(api_max_age_ms=200) as client:
        metrics = client.server.app[METRICS]
        stream = await client.get("/v1/channels/nh-live/live", headers=auth("township"))
        assert (await next_update(stream))["summary"]["paid_orders"] == 4
        await asyncio.sleep(0.3)  # the payload is now older than the bound
        await store_events(loaded, [paid(2)])  # no consumer, no poll: the watcher does not know
        resp = await client.get("/v1/channels/nh-live/summary", headers=auth("township"))
        assert (await resp.json())["paid_orders"] == 5
        assert answers(metrics, "live_hub") == 0 and answers(metrics, "query") == 1
        stream.close()


async def test_a_cached_summary_never_crosses_scopes(make_client: MakeClient) -> None:
    async with make_client(api_max_age_ms=10_000) as client:
        metrics = client.server.app[METRICS]
        streams = [await client.get(f"/v1/channels/{c}/live", headers=auth(role))
                   for c, role in (("nh-other", "all"), ("nh-live", "all"), ("nh-other", "taoyuan"))]  # fmt: skip
        for s in streams:
            await next_update(s)
        # Both an all-scope and a 桃源街道 watcher hold nh-other: 长街镇 still may not see it,
        # and 桃源街道 may not see the 长街镇 channel the all-scope watcher holds.
        assert (await client.get("/v1/channels/nh-other/summary", headers=auth("township"))).status == 404
        assert (await client.get("/v1/channels/nh-live/summary", headers=auth("taoyuan"))).status == 404
        assert answers(metrics, "live_hub") == 0
        # in scope: its own view's payload, or (no watcher of its scope) a query of its own
        own = await client.get("/v1/channels/nh-other/summary", headers=auth("taoyuan"))
        assert own.status == 200 and (await own.json())["township"] == "桃源街道"
        assert answers(metrics, "live_hub") == 1
        queried = answers(metrics, "query")
        district = await client.get("/v1/channels/nh-live/summary", headers=auth("district"))
        assert district.status == 200 and answers(metrics, "query") == queried + 1
        assert answers(metrics, "live_hub") == 1  # the all-scope watcher of nh-live lent nothing
        for s in streams:
            s.close()


async def test_a_quiet_payload_is_lent_until_a_registry_move_takes_the_channel_away(
    make_client: MakeClient, loaded: ClickHouse
) -> None:
    async with make_client(api_max_age_ms=300, live_poll_ms=100) as client:
        metrics = client.server.app[METRICS]
        stream = await client.get("/v1/channels/nh-live/live", headers=auth("township"))
        assert (await next_update(stream))["summary"]["paid_orders"] == 4
        fresh = orjson.loads(orjson.dumps(await q.summary(loaded, "nh-live", CHANGJIE, TimeParams())))

        async def lent_while_quiet() -> bool:
            # once the payload is older than the bound, only polls finding nothing new lend it
            before, asked = answers(metrics, "live_hub"), time.monotonic()
            resp = await client.get("/v1/channels/nh-live/summary", headers=auth("township"))
            assert resp.status == 200 and await resp.json() == fresh
            watcher = next(iter(hub_of(client)._watchers.values()))
            return answers(metrics, "live_hub") > before and asked - watcher.summary_from > 0.3

        await wait_for(lent_while_quiet, timeout=10, what="the quiet payload lent past the bound")
        # The registry moves the channel to 桃源街道 (no consumer here: only the poll can tell).
        await store_events(loaded, [channel("ls-move", "nh-live", "2020-02-29T12:00:00+08:00", "长街蛏子节",
                                            township="桃源街道")])  # fmt: skip
        await asyncio.sleep(0.35)  # past the bound: a fresh query's answer is owed now
        assert (await client.get("/v1/channels/nh-live/summary", headers=auth("township"))).status == 404
        moved = await client.get("/v1/channels/nh-live/summary", headers=auth("taoyuan"))
        assert moved.status == 200 and (await moved.json())["township"] == "桃源街道"
        stream.close()


@pytest.mark.parametrize("max_age_ms", [300, 0])
async def test_concurrent_identical_summaries_share_one_query(
    loaded: ClickHouse, api_settings: Settings, max_age_ms: int
) -> None:
    metrics = Metrics()
    reads = SummaryReads(loaded, LiveHub(loaded, live_config(api_settings), metrics), metrics, max_age_ms)
    got = await asyncio.gather(*(reads.summary("nh-live", CHANGJIE, TimeParams()) for _ in range(20)))
    assert all(g == got[0] for g in got) and got[0] is not None and got[0]["paid_orders"] == 4
    if max_age_ms:
        assert (answers(metrics, "query"), answers(metrics, "shared")) == (1, 19)
    else:  # the cache off: each asks
        assert (answers(metrics, "query"), answers(metrics, "shared")) == (20, 0)
    await store_events(loaded, [paid(3)])
    stored = time.monotonic()
    # within the bound the kept answer may be lent; past it, a fresh query's is owed
    await asyncio.sleep(max(0.0, stored + max_age_ms / 1000 - time.monotonic()) + 0.01)
    later = await reads.summary("nh-live", CHANGJIE, TimeParams())
    assert later is not None and later["paid_orders"] == 5
    assert answers(metrics, "query") == (2 if max_age_ms else 21)
    assert len(reads._views) == (1 if max_age_ms else 0)  # one view asked, kept while young; none when off


class Clock:
    """api.live.summaries's clock (its ``time.monotonic``), moved by the test alone."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_an_answer_past_a_quarter_of_the_bound_is_refreshed_ahead(
    loaded: ClickHouse, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    queries: list[str] = []  # every summary query started, by the test's request or ahead of one
    query = q.summary

    def counted(store: ClickHouse, channel_id: str, *args: Any, **kwargs: Any) -> Any:
        queries.append(channel_id)
        return query(store, channel_id, *args, **kwargs)

    monkeypatch.setattr(q, "summary", counted)
    metrics = Metrics()
    reads = SummaryReads(loaded, LiveHub(loaded, live_config(api_settings), metrics), metrics, 10_000, clock.monotonic)

    async def paid_orders() -> int:
        return int((await reads.summary("nh-live", CHANGJIE, TimeParams()) or {})["paid_orders"])

    assert await paid_orders() == 4 and len(queries) == 1
    await store_events(loaded, [paid(4)])
    clock.now += 2.4  # within a quarter of the bound: the kept answer is lent, and that is all
    assert await paid_orders() == 4 and len(queries) == 1
    clock.now += 0.2  # past a quarter: still within the bound, lent at once, and a refresh started
    assert await paid_orders() == 4 and len(queries) == 2
    assert (answers(metrics, "query"), answers(metrics, "shared")) == (1, 2)

    async def refreshed() -> bool:
        return await paid_orders() == 5

    await wait_for(refreshed, timeout=30, what="the refresh ahead")  # the clock stands still meanwhile
    assert queries == ["nh-live", "nh-live"]  # one refresh, however often asked while it ran
    assert answers(metrics, "query") == 1  # no request waited for a query


async def test_the_summary_route_goes_through_the_shared_reads(make_client: MakeClient) -> None:
    async with make_client() as client:
        assert isinstance(client.server.app[SUMMARIES], SummaryReads)
        resp = await client.get("/v1/channels/nope/summary", headers=auth("all"))
        assert resp.status == 404
        assert answers(client.server.app[METRICS], "query") == 1


async def test_summary_queries_wait_behind_no_other_storage_call(make_client: MakeClient, loaded: ClickHouse) -> None:
    async with make_client(api_max_age_ms=0) as client:
        # every thread of the shared storage pool busy (a long live round, an insert) ...
        release = threading.Event()
        busy = [asyncio.ensure_future(loaded.run_in_thread(release.wait, 30)) for _ in range(loaded._threads)]
        try:
            # ... and /summary still answers, on the API's own threads
            resp = await asyncio.wait_for(client.get("/v1/channels/nh-live/summary", headers=auth("township")), 20)
            assert resp.status == 200 and (await resp.json())["paid_orders"] == 4
            assert not any(b.done() for b in busy)
        finally:
            release.set()
            await asyncio.gather(*busy)
