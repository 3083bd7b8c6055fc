"""``livesales bench ingest``: end-to-end rate and freshness beside the raw limits.

Everything runs on this machine in one go, so the figures compare like with like:
1. N order events are put on a local broker (Tansu).
2. raw limit A: a bare aiokafka consumer reads them (no parsing, nothing stored).
3. ours: the real runtime (validate, dedupe, store, commit) from a fresh group, timed
   until every event is counted in ClickHouse.
4. raw limit B: chDB inserts the same payloads as JSONEachRow into a flat table, in a
   process of its own with chDB's defaults (benchmarks.bare_insert).
5. freshness: a separate process produces at a steady rate; we poll ClickHouse and time
   each event from its send to the first query that sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from benchmarks.common import event_time, loaded_broker, order_payload, ours, poisoned, raw_consume, raw_insert
from livesales.runtime import Runtime


def _steady_producer(bootstrap: str, topic: str, rate: int, seconds: int, out: str) -> None:
    """Child process: send ``rate`` events/s for ``seconds``, record each send time.

    Each 10 ms tick's events go out as one batch per partition, keyed by ``order_id`` and
    partitioned as the default partitioner would (``send_batch``, not ``send`` per event):
    the load generator shares the service's two cores, and building and sending event by
    event cost it ~0.35 of a core at 5,000/s, CPU the service then lacked. The events are
    built before the clock starts."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
        await producer.start()
        partitions = sorted(await producer.partitions_for(topic))
        choose = DefaultPartitioner()
        rnd = random.Random(1)
        per_tick = int(rate * 0.01)
        values = [order_payload(i, "fresh", rnd) for i in range(per_tick * int(seconds / 0.01))]  # before the clock
        sent: dict[str, float] = {}
        t0 = time.time()
        tick = 0.01
        i = 0
        for step in range(int(seconds / tick)):
            due = t0 + step * tick
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            batches: dict[int, BatchBuilder] = {}
            for _ in range(per_tick):
                key = f"fresh-o{i}".encode()
                partition = choose(key, partitions, partitions)
                value = values[i]
                batch = batches.setdefault(partition, producer.create_batch())
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                    await producer.send_batch(batch, topic, partition=partition)
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                sent[f"fresh-o{i}"] = time.time()
                i += 1
            for partition, batch in batches.items():
                await producer.send_batch(batch, topic, partition=partition)
        await producer.flush()
        await producer.stop()
        Path(out).write_text(json.dumps(sent))

    asyncio.run(run())


async def freshness(runtime: Runtime, rate: int, seconds: int) -> dict[str, float]:
    settings = runtime.settings
    out = tempfile.mktemp(suffix=".json")  # noqa: S306 - a child process writes it
    child = mp.get_context("spawn").Process(
        target=_steady_producer, args=(settings.kafka_bootstrap, settings.topic_orders, rate, seconds, out)
    )
    child.start()
    # The poll must not load the service it measures (at 50 polls a second a scan of
    # every fresh row's stored_at took ~0.3 of a core): it asks only for rows of inserts
    # newer than the last one seen, and only in the sort key's range where an unseen
    # event can be: the fresh channels, from the minute of the first event not yet seen
    # (event times grow with the event's number). The single writer stores one insert at
    # a time and each insert's rows share one ``stored_at``, so nothing is skipped; a row
    # that was would show as seen < events.
    visible: dict[str, float] = {}
    seen: set[int] = set()
    unseen = 0  # the lowest event number not seen yet
    since = datetime(2000, 1, 1, tzinfo=UTC)
    quiet_since = time.time()
    while child.is_alive() or len(visible) < rate * seconds:
        rows = await runtime.store.query(
            "SELECT order_id, stored_at FROM order_steps WHERE channel_id >= 'fresh-' AND channel_id < 'fresh.'"
            " AND minute >= toStartOfMinute({from:DateTime64(3)}) AND stored_at > {since:DateTime64(3)}",
            {"since": since, "from": event_time(unseen)},
        )
        now = time.time()
        for r in rows:
            visible.setdefault(r["order_id"], now)
            seen.add(int(r["order_id"].removeprefix("fresh-o")))
        while unseen in seen:
            seen.discard(unseen)
            unseen += 1
        if rows:
            since = max(r["stored_at"] for r in rows)
            quiet_since = now
        elif not child.is_alive() and now > quiet_since + 30:
            break
        await asyncio.sleep(0.02)
    child.join()
    sent: dict[str, float] = json.loads(Path(out).read_text())
    lat = sorted(visible[k] - t for k, t in sent.items() if k in visible)
    q = statistics.quantiles(lat, n=100)
    return {"events": len(sent), "seen": len(lat), "p50": q[49], "p99": q[98], "max": lat[-1]}


@dataclass(frozen=True)
class InputRun:
    """One input's figures, all from the same broker and store."""

    name: str
    events: int
    produce_s: float
    raw_consume_s: float
    ours_s: float
    raw_insert_s: float

    @property
    def ratio(self) -> float:
        return (self.events / self.ours_s) / min(self.events / self.raw_consume_s, self.events / self.raw_insert_s)


async def _one_input(n: int, keyed: bool, args: argparse.Namespace, fresh: bool) -> tuple[InputRun, dict[str, float]]:
    async with loaded_broker(n, keyed=keyed) as loaded:
        settings = loaded.settings
        t_raw = await raw_consume(settings.kafka_bootstrap, settings.topic_orders, n)
        t_ours, runtime = await ours(settings, n)
        try:
            t_ins = await raw_insert([p for p in loaded.payloads if p is not None])
            figures = await freshness(runtime, args.rate, args.freshness_seconds) if fresh else {}
        finally:
            await runtime.stop()
    name = "keyed by order_id" if keyed else "keyed another way (no key)"
    return InputRun(name, n, loaded.produce_seconds, t_raw, t_ours, t_ins), figures


async def bench_ingest(args: argparse.Namespace) -> None:
    """Both inputs of issue 22, each beside the raw limits of its own run: keyed by
    ``order_id`` (contract §1's recommendation) and not keyed (``--unkeyed``: that one
    only). Freshness is measured once, on the first run's store (``--freshness-seconds 0``:
    not at all). ``--repeat N``: N runs of each input, the inputs taking turns; each
    figure is then the median of its runs, and the ratio's line lists every run's too. Why:
    one run's ratio moves ±0.05 with the host's load (docs/BENCHMARKS.md), and runs that
    take turns meet the same load."""
    n = args.events or 400_000
    inputs = [False] if getattr(args, "unkeyed", False) else [True, False]
    runs: dict[bool, list[InputRun]] = {keyed: [] for keyed in inputs}
    fresh: dict[str, float] = {}
    for _ in range(max(1, args.repeat)):
        for keyed in inputs:
            first = keyed == inputs[0] and not fresh  # freshness: on the first input's first run
            run, figures = await _one_input(n, keyed, args, fresh=first and args.freshness_seconds > 0)
            runs[keyed].append(run)
            fresh = fresh or figures
    width = 30
    print()
    print(f"{'events/s':<44}" + "".join(f"{rs[0].name:>{width}}" for rs in runs.values()))
    lines: list[tuple[str, Callable[[InputRun], float], str]] = [
        ("producer (setup, acks=all)", lambda r: r.events / r.produce_s, ",.0f"),
        ("raw limit A: bare aiokafka consumer", lambda r: r.events / r.raw_consume_s, ",.0f"),
        ("raw limit B: chDB JSONEachRow insert", lambda r: r.events / r.raw_insert_s, ",.0f"),
        ("ours: consume+validate+dedupe+store+commit", lambda r: r.events / r.ours_s, ",.0f"),
        ("ours / slower raw limit", lambda r: r.ratio, ".2f"),
    ]
    for label, figure, fmt in lines:  # with --repeat: each the median of the input's runs
        cells = (format(statistics.median(figure(r) for r in rs), fmt) for rs in runs.values())
        print(f"{label:<44}" + "".join(f"{c:>{width}}" for c in cells))
    if args.repeat > 1:
        each = (" / ".join(f"{r.ratio:.2f}" for r in rs) for rs in runs.values())
        print(f"{'  each run (their medians above)':<44}" + "".join(f"{e:>{width}}" for e in each))
    if not fresh:
        return
    print()
    print(
        f"freshness at {args.rate:,}/s for {args.freshness_seconds}s: {fresh['seen']:,}/{fresh['events']:,} seen, "
        f"p50 {fresh['p50'] * 1000:.0f} ms, p99 {fresh['p99'] * 1000:.0f} ms, max {fresh['max'] * 1000:.0f} ms"
    )


async def bench_poison(args: argparse.Namespace) -> None:
    """The same run clean and with ``--poison`` of the messages bad (benchmarks.poison),
    alternated ``--repeat`` times: messages handled (stored, or dead-lettered with their
    code) per second, and per CPU second of the service (its process and the validation
    child). The CPU figure is the one to compare on a loaded machine, where wall-clock
    rates swing with the neighbours' load; both ratios are printed."""
    from benchmarks.stages import cpu_by_process

    n = args.events or 200_000
    rates: dict[float, list[float]] = {0.0: [], args.poison: []}
    cpu_rates: dict[float, list[float]] = {0.0: [], args.poison: []}
    for _ in range(max(1, args.repeat)):
        for share in (0.0, args.poison):
            bad = len(poisoned(n, share))
            async with loaded_broker(n, share) as loaded:
                size = sum(len(p or b"") for p in loaded.payloads)
                pid = loaded.broker.pid
                before: dict[str, float] = {}
                t, runtime = await ours(loaded.settings, n - bad, bad, functools.partial(_snapshot, before, pid))
                after = cpu_by_process(pid)
                codes = {s.labels["code"]: int(s.value) for m in runtime.metrics.dead_letters.collect()
                         for s in m.samples if s.name.endswith("_total")}  # fmt: skip
                await runtime.stop()
            cpu = sum(v - before.get(k, 0.0) for k, v in after.items() if k != "broker")
            rates[share].append(n / t)
            cpu_rates[share].append(n / cpu)
            print(f"poison {share:.0%}: {n:,} messages ({bad:,} bad, {size / 1e6:,.0f} MB) in {t:.2f}s"
                  f" = {n / t:,.0f}/s, {n / cpu:,.0f} per service CPU second ({cpu / n * 1e6:.1f} µs each);"
                  f" dead letters {codes}", flush=True)  # fmt: skip
            if sum(codes.values()) != bad:  # each bad message dead-lettered once: else the figure is void
                print(f"  WRONG: {sum(codes.values()):,} dead letters for {bad:,} bad messages", flush=True)
    med = statistics.median
    clean, bad_rate = med(rates[0.0]), med(rates[args.poison])
    clean_cpu, bad_cpu = med(cpu_rates[0.0]), med(cpu_rates[args.poison])
    print()
    print(f"{'median of ' + str(len(rates[0.0])):<24}{'clean':>12}{f'poison {args.poison:.0%}':>12}{'ratio':>8}")
    print(f"{'messages/s':<24}{clean:>12,.0f}{bad_rate:>12,.0f}{bad_rate / clean:>8.2f}")
    print(f"{'per service CPU second':<24}{clean_cpu:>12,.0f}{bad_cpu:>12,.0f}{bad_cpu / clean_cpu:>8.2f}")
    print(f"{'service CPU µs/message':<24}{1e6 / clean_cpu:>12.1f}{1e6 / bad_cpu:>12.1f}")


def _snapshot(into: dict[str, float], broker_pid: int) -> None:
    from benchmarks.stages import cpu_by_process

    into.update(cpu_by_process(broker_pid))
