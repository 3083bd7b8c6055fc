"""Two processes' worth of writer state over one store (each its own dedupe filters), as
separate ``livesales consume`` processes have; chDB admits one process per data path, so
they share this process's handle."""

from __future__ import annotations

import pytest

from processors.store import ClickHouse
from processors.writer import Writer


@pytest.fixture
async def two_writers(clickhouse: ClickHouse) -> tuple[Writer, Writer]:
    a, b = Writer(clickhouse), Writer(clickhouse)
    await a.open()
    await b.open()  # B loads on the empty store, before A stores anything
    return a, b
