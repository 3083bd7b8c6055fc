"""``bench inserts`` in small: each variant's line, with the files one insert adds counted
from the store (the channel views' parts among them)."""

from __future__ import annotations

import argparse
import re

import pytest

from benchmarks.inserts import bench_inserts


async def test_variants_print_their_cost_and_files(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(insert_rows="20", inserts=2, variants="as migrated,channel,full parts,skip indexes")
    await bench_inserts(args)
    out = capsys.readouterr().out
    found = list(re.finditer(r"^([^\d\n]+?)\s+20\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)\s+([\d.]+)", out, re.M))
    rows = {m[1].strip(): int(m[2]) for m in found}
    kib = {m[1].strip(): float(m[3]) for m in found}
    assert set(rows) >= {"as migrated", "without the channel views", "full parts (unpacked)"}, out
    # migration 17 dropped the two bloom_filter indexes; put back, they are written again
    assert kib["with the skip indexes"] > kib["as migrated"], out
    # order_steps' part with its projections, and one part per channel view fed by orders
    assert rows["as migrated"] > rows["without the channel views"] >= 7, out
    # migration 15: each small part (and each projection's) is one packed file, not ~10;
    # order_steps: the part, 8 projections (migration 16's two indexes among them), 2 views
    assert rows["as migrated"] <= 12 and 5 * rows["as migrated"] < rows["full parts (unpacked)"], out
    # one view fewer: its table's part is not written; the view as a projection: the same
    # number of files (a projection file in order_steps' part instead of the view's part)
    for view in ("channel_state_orders_mv", "channel_minutes_orders_mv"):
        assert rows[f"without {view}"] == rows["as migrated"] - 1, out
    assert rows["channel minutes as a projection"] == rows["as migrated"], out
