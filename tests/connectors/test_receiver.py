"""The push receiver's answers without a broker: success only once the producer acked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from connectors.config import parse_connectors
from connectors.metrics import ConnectorMetrics
from connectors.receiver import ReceiverConfig, push_routes
from connectors.status import StatusBook
from ingest.producer import ProduceError
from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder
from tests.connectors.harness import douyin_app, shop


class StubProducer:
    """Acks, refuses or hangs, as told."""

    def __init__(self) -> None:
        self.mode = "ack"
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send_all_or_raise(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        if self.mode == "refuse":
            raise ProduceError("broker away")
        if self.mode == "hang":
            await asyncio.sleep(10)
        self.sent += messages


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, StubProducer, StatusBook, FakeDouyin]]:
    fake = FakeDouyin()
    config = parse_connectors({"connectors": [douyin_app("http://unused", [shop("1001")])]}, "t")
    producer, book = StubProducer(), StatusBook("t")
    app = web.Application()
    app.add_routes(push_routes(ReceiverConfig(raw_topic="raw", ack_timeout_s=0.3, rate_per_s=5, burst=5), config,
                               producer, book, ConnectorMetrics()))  # type: ignore[arg-type]  # fmt: skip
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/connect/douyin", producer, book, fake  # type: ignore[union-attr]
    await runner.cleanup()


async def test_success_only_once_acked_else_503(receiver: tuple[str, StubProducer, StatusBook, FakeDouyin]) -> None:
    url, producer, book, fake = receiver
    fake.create(FakeOrder("6917000000000000001", "1001", datetime.now(UTC), [("s", "蛏子", 1, 1990)], "7001"))
    fake.create(FakeOrder("6917000000000000002", "9999", datetime.now(UTC), [("s", "蛏子", 1, 1990)], "7001"))
    body = json.dumps(fake.take_outbox()).encode()
    async with aiohttp.ClientSession() as http:
        for mode in ("refuse", "hang"):
            producer.mode = mode
            async with http.post(url, data=body, headers=fake.signed(body)) as r:
                assert r.status == 503 and b"success" not in await r.read()
        assert producer.sent == [] and book.take() == []
        producer.mode = "ack"
        async with http.post(url, data=body, headers=fake.signed(body)) as r:
            assert (r.status, await r.read()) == (200, b'{"code":0,"msg":"success"}')
        ((topic, key, value),) = producer.sent  # shop 9999 is not in the file: dropped
        assert (topic, key) == ("raw", b"douyin:1001") and b"6917000000000000001" in value
        statuses = []
        for _ in range(6):  # the burst of 5 a second is spent
            async with http.post(url, data=b"[]", headers=fake.signed(b"[]")) as r:
                statuses.append(r.status)
        assert statuses[-1] == 429



async def test_a_large_push_sent_in_pieces_is_read_whole(
    receiver: tuple[str, StubProducer, StatusBook, FakeDouyin],
) -> None:
    url, producer, _, fake = receiver
    for i in range(300):
        fake.create(FakeOrder(str(6917000000000000000 + i), "1001", datetime.now(UTC), [("s", "蛏子", 1, 1990)], "7001"))
    body = json.dumps(fake.take_outbox()).encode()
    assert len(body) > 50_000

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]
            await asyncio.sleep(0)

    async with aiohttp.ClientSession() as http, http.post(url, data=pieces(), headers=fake.signed(body)) as r:
        assert r.status == 200
    assert len(producer.sent) == 300
