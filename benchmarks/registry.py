"""``livesales bench <name>``: each benchmark by name, imported only when it runs.

One entry per benchmark (module, function); shared helpers live in benchmarks.common,
the current figures and the command of each in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Awaitable, Callable
from typing import cast

BENCHMARKS: dict[str, tuple[str, str]] = {
    "ingest": ("benchmarks.ingest", "bench_ingest"),  # with --poison: bench_poison
    "api": ("benchmarks.api", "bench_api"),
    "stages": ("benchmarks.stages", "bench_stages"),
    "analytics": ("benchmarks.analytics", "bench_analytics"),
    "live": ("benchmarks.live", "bench_live"),
    "procs": ("benchmarks.procs", "bench_procs"),
    "recovery": ("benchmarks.recovery", "bench_recovery"),
    "startup": ("benchmarks.startup", "bench_startup"),
    "refresh": ("benchmarks.refresh", "bench_refresh"),
    "soak": ("benchmarks.soak", "bench_soak"),
    "channels": ("benchmarks.channels", "bench_channels"),
    "merges": ("benchmarks.merges", "bench_merges"),
    "validation-heap": ("benchmarks.validation_heap", "bench_validation_heap"),
    "chaos": ("benchmarks.chaos", "bench_chaos"),
    "fence": ("benchmarks.fence", "bench_fence"),
    "import": ("benchmarks.onboarding_import", "bench_import"),
    "connectors": ("benchmarks.connectors", "bench_connectors"),
    "live-monitor": ("benchmarks.live_monitor", "bench_live_monitor"),
    "inserts": ("benchmarks.inserts", "bench_inserts"),
    "bigstore": ("benchmarks.bigstore", "bench_bigstore"),
}


async def run_bench(args: argparse.Namespace) -> None:
    module, function = BENCHMARKS[args.which]
    if args.which == "ingest" and args.poison > 0:
        function = "bench_poison"
    bench = cast(Callable[[argparse.Namespace], Awaitable[None]], getattr(importlib.import_module(module), function))
    await bench(args)
