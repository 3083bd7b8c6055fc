"""``python -m localbroker.serving PER_PARTITION_PER_S SECONDS BATCH [RECORD_BYTES]``: does a
bare Tansu keep serving a consumer while its in-memory log grows?

The soak's question without the service: 4 partitions filled by Tansu's native producer
(``tansu perf``, BATCH records per batch, RECORD_BYTES each: no Python in the produce
path), one aiokafka consumer in a process of its own with the service's fetch settings,
committing as it goes. Every 15 s: records consumed, consumer rate, broker RSS and CPU
seconds, and how long the last ``getmany`` waited (1.00 s: its timeout, little or
nothing returned). Runs SECONDS of producing plus up to two minutes to catch up.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import subprocess
import sys
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from localbroker import LocalBroker, broker_binary

_PARTITIONS = 4
_EVERY_S = 15


def _consume(bootstrap: str, got: Synchronized[int], waited: Synchronized[float]) -> None:
    from aiokafka import AIOKafkaConsumer

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            "serving", bootstrap_servers=bootstrap, group_id="serving", enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20, fetch_max_bytes=32 << 20,
            fetch_max_wait_ms=50, isolation_level="read_committed",
        )  # fmt: skip
        await consumer.start()
        while True:
            t = time.monotonic()
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            waited.value = time.monotonic() - t
            got.value += sum(len(records) for records in batch.values())
            if batch:
                await consumer.commit()

    asyncio.run(run())


async def _create_topic(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("serving", num_partitions=_PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def main(per_partition: int, seconds: int, batch: int, record_bytes: int) -> None:
    with LocalBroker() as broker:
        asyncio.run(_create_topic(broker.bootstrap))
        got, waited = mp.Value("q", 0), mp.Value("d", 0.0)
        consumer = mp.Process(target=_consume, args=(broker.bootstrap, got, waited), daemon=True)
        consumer.start()
        producers = [
            subprocess.Popen(  # noqa: S603 - our own binary, fixed argv
                [broker_binary(), "perf", "--broker", f"tcp://{broker.bootstrap}", "serving", "produce",
                 "--partition", str(p), "--batch-size", str(batch), "--record-size", str(record_bytes),
                 "--per-second", str(per_partition), "--duration", f"{seconds}s"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for p in range(_PARTITIONS)
        ]  # fmt: skip
        t0 = time.monotonic()
        last_n, last_t = 0, t0
        print("elapsed_s consumed per_s broker_MiB broker_cpu_s getmany_s producing", flush=True)
        try:
            while time.monotonic() - t0 < seconds + min(120, seconds):
                time.sleep(_EVERY_S)
                now, n = time.monotonic(), got.value
                print(f"{now - t0:9.0f} {n:9,d} {(n - last_n) / (now - last_t):6,.0f} {_rss_mib(broker.pid):10,.0f}"
                      f" {_cpu_s(broker.pid):12.1f} {waited.value:9.2f} {sum(p.poll() is None for p in producers)}",
                      flush=True)  # fmt: skip
                last_n, last_t = n, now
        finally:
            for p in producers:
                p.terminate()
                p.wait(10)
            consumer.terminate()
            consumer.join(10)


if __name__ == "__main__":
    a = [int(x) for x in sys.argv[1:]]
    main(a[0], a[1], a[2], a[3] if len(a) > 3 else 450)
