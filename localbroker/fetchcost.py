"""``python -m localbroker.fetchcost [records] [batch ...]``: what one fetch costs a bare Tansu
as a partition's stored record batches grow.

Why it exists: the 5,000 events/s memory soak's broker stopped serving records at ~18
minutes. Tansu's in-memory engine keeps each produced batch as one object and lists the
partition's objects on every fetch, so a fetch costs time in proportion to the batches
stored, not to the records asked for. This fills one partition with ``records`` records
(100 bytes each) in batches of each ``batch`` size, using Tansu's own native producer
(``tansu perf``: the filling costs no Python), and times single fetches from near the
start with 1 KiB and 1 MiB asked. Compare the batch sizes: same records, ~``batch``×
fewer objects.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from localbroker import LocalBroker, broker_binary

_FILL_S = 20


async def fetch_seconds(bootstrap: str, topic: str, max_bytes: int) -> tuple[float, int]:
    """Best of two single fetches from offset 100: (seconds, records returned)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, max_partition_fetch_bytes=max_bytes,
                                fetch_max_bytes=max_bytes, request_timeout_ms=120_000)  # fmt: skip
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    best, n = float("inf"), 0
    try:
        for _ in range(2):
            consumer.seek(tp, 100)
            t = time.monotonic()
            got = await consumer.getmany(timeout_ms=120_000)
            best, n = min(best, time.monotonic() - t), sum(len(v) for v in got.values())
    finally:
        await consumer.stop()
    return best, n


async def measure(records: int, batch: int) -> None:
    with LocalBroker() as broker:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("cost", num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        started = time.monotonic()
        subprocess.run(  # noqa: S603 - our own binary, fixed argv
            [broker_binary(), "perf", "--broker", f"tcp://{broker.bootstrap}", "cost", "produce", "--partition", "0",
             "--batch-size", str(batch), "--record-size", "100", "--per-second", str(records // _FILL_S),
             "--duration", f"{_FILL_S}s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        filled = time.monotonic() - started
        small, _ = await fetch_seconds(broker.bootstrap, "cost", 1 << 10)
        large, n = await fetch_seconds(broker.bootstrap, "cost", 1 << 20)
        print(f"~{records:,} records in batches of {batch} (~{records // batch:,} objects, filled in {filled:.0f} s):"
              f" fetch of 1 KiB {small * 1000:,.0f} ms, of 1 MiB {large * 1000:,.0f} ms ({n:,} records)",
              flush=True)  # fmt: skip


async def main(argv: list[str]) -> None:
    records = int(argv[0]) if argv else 40_000
    for batch in [int(b) for b in argv[1:]] or [1, 10]:
        await measure(records, batch)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
