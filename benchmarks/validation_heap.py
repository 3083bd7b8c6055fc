"""``livesales bench validation-heap``: is the validation child's memory set by its
biggest batch, or does it grow with the events it has seen?

The child (processors.checkpool) is driven as the consumer drives it, without a broker,
ClickHouse or a service around it: soak-style orders stamped now, in batches whose sizes
repeat ``--batches`` (default ``1000,700,20000,1200``: a live sale's small batches and,
every fourth, a full one, as a catch-up reads), for ``--rounds`` batches. Its RSS is
printed every 20 batches. A child whose heap follows its biggest batch jumps at the first
20,000 and then stays flat however many events follow; one that leaks keeps climbing.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime

from benchmarks.common import order_payload
from benchmarks.soak import _MIB, rss_bytes
from processors.checkpool import CheckPool


async def bench_validation_heap(args: argparse.Namespace) -> None:
    sizes = [int(n) for n in args.batches.split(",")]
    pool = CheckPool(1, 64 * 1024, heap_trim_s=30.0)  # the service's defaults
    await pool.start()
    try:
        pid = pool.pids()[0]
        print(f"validation child pid {pid}: {rss_bytes(pid) / _MIB:.1f} MiB after start; batches of {sizes}")
        rnd = random.Random(7)
        sent, t0 = 0, time.monotonic()
        for r in range(args.rounds):
            n = sizes[r % len(sizes)]
            now = datetime.now(UTC)
            await pool.check([order_payload(sent + k, "soak", rnd, at=now) for k in range(n)], now)
            sent += n
            if r % 20 == 19 or r == args.rounds - 1:
                print(f"{time.monotonic() - t0:7.1f} s  batch {r + 1:>5}  events {sent:>10,}"
                      f"  child RSS {rss_bytes(pid) / _MIB:6.1f} MiB", flush=True)  # fmt: skip
    finally:
        pool.close()
