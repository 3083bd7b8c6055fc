"""Fixtures of the process-level tests: a ClickHouse server over HTTP (tests.support's
chDB-backed one, as its own process) and the test's own look at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from processors.store import ClickHouse
from tests.support.process import ClickHouseHTTPProcess


@pytest.fixture
def chhttp(tmp_path: Path) -> Iterator[ClickHouseHTTPProcess]:
    with ClickHouseHTTPProcess(tmp_path / "chdata", log_path=tmp_path / "chhttp.log") as ch:
        yield ch


@pytest.fixture
async def store(chhttp: ClickHouseHTTPProcess) -> AsyncIterator[ClickHouse]:
    """The test's own look at the shared store, through the same HTTP endpoint."""
    ch = ClickHouse(chhttp.dsn)
    await ch.open()
    yield ch
    await ch.close()
