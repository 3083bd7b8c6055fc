"""Raw limit B, in a process of its own: chDB as it comes inserts the payloads.

Why apart from the runtime: chDB's allocator reads its settings once per process, when
chDB loads, and the runtime sets its own (``Tuning.chdb_dirty_decay_ms``: freed pages
go back sooner than chDB's). Measured in the runtime's process, the "bare" insert paid
for our choice too: 128k/s with 0 against 166–208k/s with chDB's own 5,000 in the same
session (docs/BENCHMARKS.md). So the limit is taken with chDB's defaults, none of ours.

``python -m benchmarks.bare_insert PAYLOADS STORE`` reads newline-separated JSON values,
inserts them 20,000 at a time as JSONEachRow into a flat table and prints, as JSON, the
seconds, the rows stored and the allocator settings it ran with.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

RAW_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_raw (event_id String, order_id String, occurred_at DateTime64(3),"
    " status String, channel_id String, platform String, merchant_id String, amount_fen UInt64,"
    " region Tuple(district String, township String),"
    " items Array(Tuple(sku String, name String, quantity UInt32, unit_price_fen UInt64, weight_g UInt32)))"
    " ENGINE = MergeTree ORDER BY (channel_id, occurred_at)"
)
BLOCK = 20_000


def main(payloads: str, store: str) -> dict[str, object]:
    import clickhouse_connect  # here: nothing of chDB loads before the process is set up

    client = clickhouse_connect.get_client(dsn=f"chdb://{store}")
    client.command(RAW_TABLE)
    values = Path(payloads).read_bytes().split(b"\n")
    started = time.perf_counter()
    for k in range(0, len(values), BLOCK):
        block = b"\n".join(values[k : k + BLOCK])
        client.raw_insert("bench_raw", None, block, settings={"input_format_skip_unknown_fields": 1}, fmt="JSONEachRow")
    seconds = time.perf_counter() - started
    rows = int(str(client.command("SELECT count() FROM bench_raw")))
    client.close()
    return {"seconds": seconds, "rows": rows, "je_malloc_conf": os.environ.get("JE_MALLOC_CONF")}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
