"""Logs: JSON lines on request; a malformed request is a 400 and one quiet, rate-limited line;
the broker's refusal of the idempotent producer is one INFO line, not an ERROR."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
from pathlib import Path

import pytest

from ingest.producer import Producer
from localbroker import LocalBroker
from tests.livesales.procs import Livesales, free_port

SENDER_BYTES = "zz-sender-bytes-7f3a"
BAD_REQUESTS = [
    f"GET / HTTP/1.1\r\nHost: x\r\n{SENDER_BYTES}\x01: y\r\n\r\n".encode(),  # bad header name
    f"GET /{SENDER_BYTES} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".encode(),  # bad header value
    f"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {SENDER_BYTES}\r\n\r\n".encode(),
]


def send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_json_logs_and_quiet_malformed_requests(tmp_path: Path) -> None:
    port = free_port()
    app = Livesales(tmp_path, {"LIVESALES_LOG_FORMAT": "json", "LIVESALES_API_PORT": str(port),
                               "LIVESALES_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})  # fmt: skip
    try:
        app.wait_log("API listening")
        for data in BAD_REQUESTS:
            answer = send_raw(port, data)
            assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:200]
        app.wait_log("broker unavailable")
        app.signal(signal.SIGTERM)
        assert app.wait(15) == 0
    finally:
        app.kill()
    lines = app.text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(set(r) >= {"ts", "level", "logger", "msg"} for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]) for r in records)
    malformed = [r for r in records if r["logger"] == "aiohttp.server"]
    assert len(malformed) == 1, malformed  # rate-limited: one line for three requests
    assert malformed[0]["msg"].startswith("malformed HTTP request from 127.0.0.1: ")
    assert "exc" not in malformed[0]
    assert SENDER_BYTES not in app.text()


async def test_idempotence_refusal_is_one_info_line(broker: LocalBroker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    producer = Producer(broker.bootstrap)
    await producer.start()
    await producer.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    refused = [r for r in caplog.records if "idempotent producer refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.INFO
