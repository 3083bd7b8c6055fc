"""POST /v1/onboarding/import (contract v1.2 §6): the bureau's spreadsheet of firms, on the
real broker and chDB; a second upload of the same file adds nothing."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import xlsxwriter
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from ground.metrics import Metrics
from ground.settings import Settings
from ingest.producer import Producer
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth, store_events
from tests.ingest.test_pipeline import read_topic

Client = TestClient[Any, Any]
HEADER = ["企业编号", "企业名称", "平台", "区县", "外贸企业", "状态", "日期"]


@pytest.fixture
async def client(api_settings: Settings, topics: Settings, clickhouse: ClickHouse) -> AsyncIterator[Client]:
    producer = Producer(api_settings.kafka_bootstrap)
    await producer.start()
    app = create_app(api_config(api_settings), clickhouse, Metrics(), producer, lambda: True)
    async with TestClient(TestServer(app)) as c:
        yield c
    await producer.stop()


def xlsx(rows: list[list[Any]]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("企业")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.close()
    return out.getvalue()


def csv_bytes(rows: list[list[Any]]) -> bytes:
    return ("\ufeff" + "\n".join(",".join(str(c) for c in row) for row in rows)).encode()


async def upload(client: Client, body: bytes, role: str = "all") -> tuple[int, Any]:
    resp = await client.post("/v1/onboarding/import", data=body, headers=auth(role))
    return resp.status, await resp.json()


async def test_a_csv_with_chinese_headers_becomes_onboarding_events(client: Client, api_settings: Settings) -> None:
    rows = [HEADER,
            ["F001", "宁波蛏子合作社", "拼多多", "宁海县", "是", "入驻", "2026-05-01"],
            ["F002", "象山海产", "douyin", "象山县", "否", "onboarded", "2026-05-02T09:30:00+08:00"],
            ["F003", "坏数据", "某宝", "象山县", "是", "入驻", "2026-05-02"],
            ["F004", "坏日期", "快手", "象山县", "是", "入驻", "05/02/2026"],
            ["F001", "宁波蛏子合作社", "拼多多", "宁海县", "是", "入驻", "2026-05-01"]]  # fmt: skip
    status, body = await upload(client, csv_bytes(rows))
    assert status == 200, body
    assert body["accepted"] == 2 and body["duplicates"] == 1
    assert [(r["row"], r["column"], r["code"]) for r in body["rejected"]] == [
        (4, "平台", "unknown_platform"), (5, "日期", "bad_date")]  # fmt: skip
    events = [json.loads(r.value) for r in await read_topic(api_settings, api_settings.topic_onboarding, 2)]
    first = next(e for e in events if e["firm_id"] == "F001")
    assert first["platform"] == "pinduoduo" and first["export_oriented"] is True and first["status"] == "onboarded"
    assert first["occurred_at"] == "2026-05-01T00:00:00+08:00" and first["event_id"].startswith("import-")


async def test_the_same_file_twice_adds_nothing(client: Client, clickhouse: ClickHouse, api_settings: Settings) -> None:
    rows = [["firm_id", "firm_name", "platform", "district", "export_oriented", "status", "occurred_at"]]
    rows += [[f"X{i:04d}", f"企业{i}", "拼多多", "北仑区", 1, "入驻", "2026-04-01"] for i in range(50)]
    status, first = await upload(client, xlsx(rows))
    assert status == 200 and first["accepted"] == 50 and first["duplicates"] == 0, first
    # what the consumers would store: the same events, so the second upload finds them counted
    published = await read_topic(api_settings, api_settings.topic_onboarding, 50)
    await store_events(clickhouse, [json.loads(r.value) for r in published])
    status, second = await upload(client, xlsx(rows))
    assert status == 200 and second == {"accepted": 0, "duplicates": 50, "rejected": []}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "不是电子表格"),
        (b"PK\x03\x04 not really a zip", "无法读取"),
        (csv_bytes([["企业编号", "电话"], ["F1", "123"]]), "不认识的列「电话」"),
        (csv_bytes([["企业编号", "企业名称"], ["F1", "x"]]), "缺少列"),
        (b"", "文件为空"),
    ],
)
async def test_a_file_that_cannot_be_imported_publishes_nothing(
    client: Client, api_settings: Settings, body: bytes, says: str
) -> None:
    status, answer = await upload(client, body)
    assert status == 400 and answer["error"]["code"] == "bad_file" and says in answer["error"]["message"], answer
    good = csv_bytes([HEADER, ["F7", "一家企业", "抖音", "宁海县", "是", "入驻", "2026-05-01"]])
    assert (await upload(client, good))[1]["accepted"] == 1
    published = await read_topic(api_settings, api_settings.topic_onboarding, 1)
    assert [json.loads(r.value)["firm_id"] for r in published] == ["F7"]  # the refused file put nothing there


async def test_who_may_import(client: Client) -> None:
    rows = csv_bytes([HEADER, ["F9", "外区企业", "抖音", "象山县", "是", "入驻", "2026-05-01"]])
    status, _ = await upload(client, rows, role="reader")  # no "ingest": true
    assert status == 403
