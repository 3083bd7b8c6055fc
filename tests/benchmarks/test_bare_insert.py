"""Raw limit B runs apart, with chDB's own allocator settings, and stores every payload."""

from __future__ import annotations

import random

import pytest

from benchmarks.common import bare_run, order_payload


async def test_the_bare_insert_stores_all_without_our_allocator_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JE_MALLOC_CONF", "dirty_decay_ms:0")  # what the runtime sets in its process
    rnd = random.Random(1)
    answer = await bare_run([order_payload(i, "bare", rnd) for i in range(3_000)])
    assert answer["rows"] == 3_000
    assert answer["seconds"] > 0
    assert answer["je_malloc_conf"] is None


async def test_a_bare_insert_that_fails_says_so() -> None:
    with pytest.raises(RuntimeError, match="bare_insert exited"):
        await bare_run([b'{"event_id": "x", "occurred_at": "not a time"}'])
