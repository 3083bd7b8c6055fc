"""``livesales bench import``: a 5,000-row .xlsx of firms through ``POST /v1/onboarding/import``.

The bureau's spreadsheet on the real path: the API app over chDB, the producer on the local
broker; timed from the upload to the answer (read, checked against what is stored, published
and acknowledged), then the same file again (all duplicates). Goal (issue 21): ≤ 5 s.
Beside it, the raw limit of the same run: openpyxl reading the sheet and nothing else.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import aiohttp
import xlsxwriter
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.context import ApiConfig
from benchmarks.common import scratch_dir
from ground.metrics import Metrics
from ingest.producer import Producer
from ingest.topics import ensure_topics
from localbroker import LocalBroker
from processors.store import ClickHouse

TOKEN = "bench-import-token"  # noqa: S105 - a throwaway token for a loopback benchmark


def workbook(rows: int) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("入驻企业")
    for c, title in enumerate(["企业编号", "企业名称", "平台", "区县", "外贸企业", "状态", "日期"]):
        sheet.write(0, c, title)
    for r in range(1, rows + 1):
        for c, value in enumerate([f"BL{r:06d}", f"宁波外贸企业{r}", "拼多多", "北仑区", "是", "入驻", "2026-04-01"]):
            sheet.write(r, c, value)
    book.close()
    return out.getvalue()


async def bench_import(args: argparse.Namespace) -> None:
    from openpyxl import load_workbook

    rows = args.events or 5_000
    body = workbook(rows)
    started = time.perf_counter()
    book = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    sum(1 for _ in book.worksheets[0].iter_rows(values_only=True))
    book.close()
    raw_s = time.perf_counter() - started
    with LocalBroker() as broker, scratch_dir() as tmp:
        await ensure_topics(broker.bootstrap, ["livesales.onboarding"], partitions=4)
        tokens = Path(tmp) / "tokens.json"
        tokens.write_text(json.dumps({"tokens": [{"token": TOKEN, "name": "bench", "scope": "all", "ingest": True}]}))
        store = ClickHouse(f"chdb://{tmp}/ch")
        await store.open()
        producer = Producer(broker.bootstrap)
        await producer.start()
        server = TestServer(create_app(ApiConfig(tokens_file=tokens, rate_per_s=1000), store, Metrics(), producer,
                                       lambda: True))  # fmt: skip
        await server.start_server()
        try:
            url = str(server.make_url("/v1/onboarding/import"))
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                started = time.perf_counter()
                async with http.post(url, data=body) as resp:
                    answer = await resp.json()
                took = time.perf_counter() - started
                counts = f"accepted {answer['accepted']:,}, rejected {len(answer['rejected'])}"
                print(f"{'upload to answer':<26}{took:>8.2f} s  {counts}", flush=True)
        finally:
            await server.close()
            await producer.stop()
            await store.close()
    print(f"{'raw limit: openpyxl read':<26}{raw_s:>8.2f} s  ({rows:,} rows, {len(body) / 1e3:,.0f} kB)")
