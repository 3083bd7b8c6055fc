"""The live hub end to end: a consumer's store wakes the viewers; a slow reader is dropped."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from api.context import METRICS
from ground.settings import Settings
from ingest.producer import Producer
from livesales.runtime import Runtime
from processors.batch import prepare
from processors.store import ClickHouse
from processors.writer import Writer
from tests.api.conftest import C25, TOKENS, Rec, auth, order
from tests.api.live_support import client_factory, hub_of, next_update, paid_reaches, sample
from tests.conftest import wait_for
from tests.support.settings import tuned

CHANNEL = "hub-live"


def paid(i: int, minute: int = 0) -> dict[str, Any]:
    return order(f"h-{i}", f"ho{i}", "paid", f"2020-02-29T{10 + minute // 60:02d}:{minute % 60:02d}:00+08:00",
                 CHANNEL, [C25])  # fmt: skip


async def test_a_stored_batch_wakes_its_viewers_without_waiting_for_the_poll(
    topics: Settings, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": list(TOKENS.values())}, ensure_ascii=False), encoding="utf-8")
    # The poll is an hour away: only the consumer's hook can deliver the second update.
    settings = tuned(topics, api_tokens_file=tokens, live_poll_ms=3_600_000)
    runtime = Runtime(settings)
    producer = Producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await runtime.start()
        base = f"http://127.0.0.1:{runtime.port}"
        await producer.send_all_or_raise([(settings.topic_orders, None, json.dumps(paid(1)).encode())])
        async with aiohttp.ClientSession(headers=auth("all")) as http:

            async def counted() -> bool:
                async with http.get(f"{base}/v1/channels/{CHANNEL}/summary") as r:
                    return r.status == 200

            await wait_for(counted, timeout=30, what="the first order stored")
            async with http.get(f"{base}/v1/channels/{CHANNEL}/live") as stream:
                assert (await next_update(stream))["summary"]["paid_orders"] == 1
                await producer.send_all_or_raise([(settings.topic_orders, None, json.dumps(paid(2)).encode())])
                assert await paid_reaches(stream, 2)
                assert runtime.metrics.registry.get_sample_value("livesales_live_polls_total") in (None, 0.0)
    finally:
        await producer.stop()
        await runtime.stop()


@pytest.mark.slow
async def test_three_hundred_viewers_of_one_channel_share_one_watcher_through_ingest(
    topics: Settings, tmp_path: Path
) -> None:
    """Issue 10's battery: 300 live screens of one channel while orders arrive via Kafka."""
    tokens = tmp_path / "tokens.json"
    many = [{"token": f"tok-viewer-{i:04d}", "name": f"viewer-{i}", "scope": "all"} for i in range(10)]
    tokens.write_text(json.dumps({"tokens": many}), encoding="utf-8")
    settings = tuned(topics, **{"api_tokens_file": tokens, "api_rate_per_s": 10_000.0})
    runtime = Runtime(settings)
    producer = Producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await runtime.start()
        base = f"http://127.0.0.1:{runtime.port}/v1/channels/{CHANNEL}"
        await producer.send_all_or_raise([(settings.topic_orders, None, json.dumps(paid(1)).encode())])
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            heads = [{"Authorization": f"Bearer {t['token']}"} for t in many]

            async def counted() -> bool:
                async with http.get(f"{base}/summary", headers=heads[0]) as r:
                    return r.status == 200

            await wait_for(counted, timeout=30, what="the first order stored")
            streams = await asyncio.gather(*(http.get(f"{base}/live", headers=heads[i % 10]) for i in range(300)))
            assert {r.status for r in streams} == {200}
            await asyncio.gather(*(next_update(r, timeout=30) for r in streams))
            assert runtime.live.watchers == 1 and runtime.live.streams == 300
            for k in range(2, 5):
                await producer.send_all_or_raise([(settings.topic_orders, None, json.dumps(paid(k)).encode())])

                async def reached(r: aiohttp.ClientResponse, want: int = k) -> None:
                    while (await next_update(r, timeout=30))["summary"]["paid_orders"] < want:
                        pass

                await asyncio.gather(*(reached(r) for r in streams))
            assert runtime.metrics.registry.get_sample_value("livesales_live_dropped_total") == 0
            for r in streams:
                r.close()
            await wait_for(lambda: _true(runtime.live.watchers == 0), timeout=10, what="the watcher stopped")
    finally:
        await producer.stop()
        await runtime.stop()


async def test_a_reader_that_cannot_keep_up_is_dropped_and_the_others_go_on(
    api_settings: Settings, clickhouse: ClickHouse
) -> None:
    # ~200 minutes make a frame of ~45 KB: a few unread ones fill a 4 KB socket buffer
    writer = Writer(clickhouse)
    await writer.open()
    events = [paid(i, minute=i) for i in range(200)]
    recs = [Rec("t", 0, i, json.dumps(e).encode()) for i, e in enumerate(events)]
    await writer.store(prepare(recs).rows.values())
    make = client_factory(api_settings, clickhouse)
    async with make(live_poll_ms=100, live_min_interval_ms=0, live_send_timeout_s=0.5,
                    live_send_buffer_bytes=4096) as client:  # fmt: skip
        hub, metrics = hub_of(client), client.server.app[METRICS]
        url = f"/v1/channels/{CHANNEL}/live"
        reader = await client.get(url, headers=auth("all"))
        assert (await next_update(reader))["summary"]["paid_orders"] == 200

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (client.server.host, client.server.port))
        slow_r, slow_w = await asyncio.open_connection(sock=sock)
        token = TOKENS["all"]["token"]
        slow_w.write(f"GET {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        await slow_w.drain()
        await wait_for(lambda: _true(hub.streams == 2), timeout=5, what="the slow reader's stream open")

        n = 200
        while not sample(metrics, "livesales_live_dropped_total"):
            assert n < 240, "the slow reader was never dropped"
            await writer.store(prepare([Rec("t", 0, n, json.dumps(paid(n, minute=n)).encode())]).rows.values())
            n += 1
            assert await paid_reaches(reader, n)  # the fast one keeps up
        assert hub.streams == 1
        # the slow one's connection was closed (reset, or EOF once its buffers are read)
        async def ended() -> bool:
            try:
                while await asyncio.wait_for(slow_r.read(65536), 5.0):
                    pass
            except ConnectionResetError:
                pass
            return True

        assert await ended()
        slow_w.close()
        await writer.store(prepare([Rec("t", 0, n, json.dumps(paid(n, minute=n)).encode())]).rows.values())
        assert await paid_reaches(reader, n + 1)
        reader.close()


async def _true(value: bool) -> bool:
    return value
