"""The live stream: updates without a reload, one shared watcher per view, caps, clean ends."""

from __future__ import annotations

import asyncio

import pytest

from api.context import METRICS
from ground.metrics import Metrics
from ground.settings import Settings
from processors.store import ClickHouse
from tests.api.conftest import C25, auth, order, store_events
from tests.api.live_support import Client, MakeClient, client_factory, hub_of, next_update, paid_reaches, sample
from tests.conftest import wait_for

URL = "/v1/channels/nh-live/live"


@pytest.fixture
def make_client(api_settings: Settings, loaded: ClickHouse) -> MakeClient:
    return client_factory(api_settings, loaded)


async def test_live_pushes_new_orders(client: Client, loaded: ClickHouse) -> None:
    resp = await client.get(URL, headers=auth("township"))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    first = await next_update(resp)
    assert first["summary"]["paid_orders"] == 4 and first["minutes"]["minutes"]
    await store_events(loaded, [order("a-o9-p", "o9", "paid", "2020-02-29T10:30:00+08:00", "nh-live", [C25])])
    second = await paid_reaches(resp, 5)
    assert second["summary"]["gmv_fen"] == 59600 + 6800
    assert any(m["minute"] == "2020-02-29T10:30:00+08:00" for m in second["minutes"]["minutes"])
    resp.close()


async def test_many_viewers_of_a_view_share_one_watcher(make_client: MakeClient, loaded: ClickHouse) -> None:
    async with make_client(live_poll_ms=200) as client:
        metrics, hub = client.server.app[METRICS], hub_of(client)
        streams = await asyncio.gather(*(client.get(URL, headers=auth("township")) for _ in range(30)))
        firsts = await asyncio.gather(*(next_update(r) for r in streams))
        assert all(f["summary"]["paid_orders"] == 4 for f in firsts)
        assert hub.watchers == 1 and hub.streams == 30
        polled = await wait_for(lambda: _sample(metrics, "livesales_live_polls_total"), timeout=5, what="a poll")
        # two more polls: whatever the first ones set off is done before the count is taken
        await wait_for(lambda: _polls_past(metrics, polled + 2), timeout=5, what="two more polls")
        polled = sample(metrics, "livesales_live_polls_total")
        computed = sample(metrics, "livesales_live_payloads_total")
        assert 1 <= computed <= 2  # not once per viewer (2: the poll after the first confirms it)

        await store_events(loaded, [order("a-o9-p", "o9", "paid", "2020-02-29T10:30:00+08:00", "nh-live", [C25])])
        # a computation in flight across the insert may first show a mixed state (one
        # more payload, one more frame); every viewer then gets the whole of it
        await asyncio.gather(*(paid_reaches(r, 5) for r in streams))
        assert sample(metrics, "livesales_live_payloads_total") - computed <= 3
        # no consumer here, so no writer woke them: the hub keeps polling the store. (The
        # frames may come from a computation an earlier poll set off, still in flight
        # across the insert, so the count may trail them: wait for it, do not assume it.)
        await wait_for(lambda: _polls_past(metrics, polled + 1), timeout=5, what="a poll after the insert")

        # another scope is another view: its own watcher, its own numbers
        other = await client.get(URL, headers=auth("all"))
        assert (await next_update(other))["summary"]["paid_orders"] == 5
        assert hub.watchers == 2
        for r in [*streams, other]:
            r.close()


async def test_closing_every_viewer_stops_the_watcher(make_client: MakeClient) -> None:
    async with make_client(live_poll_ms=100) as client:
        hub = hub_of(client)
        streams = [await client.get(URL, headers=auth("reader")) for _ in range(3)]
        for r in streams:
            await next_update(r)
        assert hub.watchers == 1
        streams[0].close()
        await wait_for(lambda: _is(hub.streams, 2), timeout=5, what="one stream left")
        assert hub.watchers == 1  # the others still watch
        for r in streams[1:]:
            r.close()
        await wait_for(lambda: _is(hub.streams, 0), timeout=5, what="streams closed")
        assert hub.watchers == 0


async def test_stream_caps_answer_429_per_token_and_503_per_process(make_client: MakeClient) -> None:
    async with make_client(live_max_streams_per_token=2, live_max_streams=3) as client:
        metrics = client.server.app[METRICS]
        mine = [await client.get(URL, headers=auth("township")) for _ in range(2)]
        assert [r.status for r in mine] == [200, 200]
        over = await client.get(URL, headers=auth("township"))
        assert over.status == 429
        assert (await over.json())["error"]["code"] == "too_many_streams"
        third = await client.get(URL, headers=auth("district"))  # another token: room left
        assert third.status == 200
        full = await client.get(URL, headers=auth("reader"))
        assert full.status == 503 and "Retry-After" in full.headers
        body = await full.json()
        assert body["error"]["code"] == "too_many_streams" and body["error"]["message"]
        assert sample(metrics, "livesales_live_refused_total", {"cap": "token"}) == 1
        assert sample(metrics, "livesales_live_refused_total", {"cap": "process"}) == 1
        for r in [*mine, third]:
            r.close()


async def test_unknown_or_out_of_scope_channel_is_404_and_holds_nothing(make_client: MakeClient) -> None:
    async with make_client() as client:
        hub = hub_of(client)
        for url, role in (("/v1/channels/nope/live", "all"), ("/v1/channels/xs-live/live", "township")):
            resp = await client.get(url, headers=auth(role))
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
        assert hub.streams == 0 and hub.watchers == 0
        bad = await client.get(URL + "?tz=bogus", headers=auth("all"))
        assert bad.status == 400 and hub.streams == 0


async def test_shutdown_ends_open_streams_and_refuses_new_ones(make_client: MakeClient) -> None:
    async with make_client() as client:
        resp = await client.get(URL, headers=auth("all"))
        await next_update(resp)
        await client.server.app.shutdown()  # what the runtime's stop does first
        await asyncio.wait_for(resp.content.read(), 5.0)  # the stream ends: EOF, not a hang
        again = await client.get(URL, headers=auth("all"))
        assert again.status == 503 and (await again.json())["error"]["code"] == "unavailable"
        assert hub_of(client).streams == 0


async def _is(value: int, want: int) -> bool:
    return value == want


async def _sample(metrics: Metrics, name: str) -> float:
    return sample(metrics, name)


async def _polls_past(metrics: Metrics, n: float) -> bool:
    return sample(metrics, "livesales_live_polls_total") >= n
