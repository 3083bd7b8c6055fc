"""``livesales bench connectors``: the 抖店 connector's push path and one reconciliation window.

Against the fake 抖店 (``localplatforms/douyin.py``: the real push format and ``event-sign``,
the real signed API calls and paging), a local broker and chDB, in processes as deployed:

1. **Push acceptance.** One ``livesales serve`` process (its API app mounts the push routes
   as the runtime does; LIVESALES_CONNECTORS_FILE names four shops) receives ``--pushes``
   signed pushes, one order message each, from ``--in-flight`` concurrent senders. The
   senders come from 16 loopback addresses: the receiver's token bucket is per source address
   (500/s), so one address alone would measure the bucket, not the receiver. Accepted
   pushes/s and each answer's latency as the platform sees it (p50/p99/max). Beside it, from
   the same run: the same senders against a bare aiohttp handler in a process of its own that
   reads each body and answers 200 (this box's HTTP limit), and a bare aiokafka producer
   awaiting each raw message's ack with as many in flight (the broker's limit for what a push
   waits on). Goal (issue 20): ≥ 2,000 pushes/s accepted, ack p99 ≤ 200 ms.
2. **The whole push path.** A ``livesales consume`` process (consumers, push worker,
   reconciliation) starts: its worker first drains the pushes of (1), fetching each order's
   detail from the fake and publishing its ``order.v1`` events; then as many pushes again are
   sent live, timed until every one was accepted, until the worker committed the last raw
   push (its events acknowledged on the orders topic) and until the consumers committed the
   last event (stored). The pushed orders were last updated two days ago, outside the first
   reconciliation window the consume process runs at once, so these figures are the push
   path's alone.
3. **Reconciliation.** A shop of ``--orders`` orders (default 100,000; 90% paid, a tenth of
   those refunded) updated over the last day, no pushes: one window of the real
   ``Reconciler`` in this process (after-sale list and order list paged as 抖店 requires,
   mapping, look-ups in chDB, publishing page by page), timed from reading the watermark
   until the new watermark row is written, which happens only once every page's events were
   acknowledged. Goal: ≤ 60 s. Beside it: the same pages fetched and nothing else, and the
   same number of events produced bare in pages of the same size.

The fake is :class:`FastDouyin`: ``FakeDouyin`` scans every order on every call, fine for
tests of hundreds but at 100,000 orders the fake would be what is measured; the reconciled
shop's runs in a process of its own, so its pages cost the platform's CPU, not ours. CPU
seconds of each process are printed with each phase: the box has two cores shared by all.
Topics, group and raw-push topic are this run's own. A quick run: ``--pushes 2000 --orders 10000``.

This module sets the run up and runs the phases in order; the fake and what it serves are in
``connector_fakes``, what the phases share (child processes, topic ends, group commits, CPU) in
``connector_harness``, phases 1 and 2 in ``connector_push``, phase 3 in ``connector_reconcile``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.common import scratch_dir
from benchmarks.connector_fakes import APP_KEY, APP_SECRET, PUSH_SHOPS, FastDouyin, connectors_json
from benchmarks.connector_harness import Serve, Setup, process
from benchmarks.connector_push import acceptance, whole_path
from benchmarks.connector_reconcile import reconciliation
from connectors.config import parse_connectors
from ground.settings import Settings
from ingest.topics import ensure_topics
from localbroker import LocalBroker, free_port

DEFAULT_PUSHES, DEFAULT_ORDERS, DEFAULT_IN_FLIGHT = 20_000, 100_000, 64


async def run(args: argparse.Namespace, broker: LocalBroker) -> None:
    """The three phases on ``broker`` (the benchmark's own, or a test's)."""
    pushes = getattr(args, "pushes", None) or DEFAULT_PUSHES
    orders = getattr(args, "orders", None) or DEFAULT_ORDERS
    in_flight = getattr(args, "in_flight", None) or DEFAULT_IN_FLIGHT
    tag = f"{time.time_ns():x}"
    settings = Settings(
        kafka_bootstrap=broker.bootstrap, consumer_group=f"bench-conn-{tag}", topic_orders=f"orders-{tag}",
        topic_onboarding=f"onboarding-{tag}", topic_stream_stats=f"stats-{tag}", topic_channels=f"channels-{tag}",
        topic_dlq=f"dlq-{tag}",
    )  # fmt: skip
    raw_topic = f"bench-pushes-{tag}"  # a serve process does not create it: a consume process does
    await ensure_topics(broker.bootstrap, [raw_topic], partitions=4)
    await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4,
                        routed_from=settings.topics)  # fmt: skip
    fake = FastDouyin(APP_KEY, APP_SECRET)
    url = await fake.start()
    try:
        with scratch_dir() as tmp:
            conf = connectors_json(url, PUSH_SHOPS)
            path = Path(tmp) / "connectors.json"
            path.write_text(json.dumps(conf, ensure_ascii=False), encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALES_")}
            env.update({
                "LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap, "LIVESALES_CONSUMER_GROUP": settings.consumer_group,
                "LIVESALES_TOPIC_ORDERS": settings.topic_orders,
                "LIVESALES_TOPIC_ONBOARDING": settings.topic_onboarding,
                "LIVESALES_TOPIC_STREAM_STATS": settings.topic_stream_stats, "LIVESALES_TOPIC_DLQ": settings.topic_dlq,
                "LIVESALES_TOPIC_CHANNELS": settings.topic_channels, "LIVESALES_CONNECTORS_FILE": str(path),
                "LIVESALES_TUNING": json.dumps({"connector_pushes_topic": raw_topic}),
            })  # fmt: skip
            setup = Setup(broker, settings, env, fake, parse_connectors(conf, "bench"), Path(tmp), pushes, in_flight,
                          raw_topic)  # fmt: skip
            port = free_port()
            serve_env = {**env, "LIVESALES_API_PORT": str(port), "LIVESALES_CLICKHOUSE_DSN": f"chdb://{tmp}/serve-ch"}
            async with process(["-m", "livesales.cli", "--log-level", "WARNING", "serve"], serve_env,
                               Path(tmp) / "serve.log", f"http://127.0.0.1:{port}/healthz") as proc:  # fmt: skip
                serve = Serve(f"http://127.0.0.1:{port}/connect/douyin", {"serve": proc.pid, "broker": broker.pid})
                on_raw = await acceptance(setup, serve)
                print()
                await whole_path(setup, serve, on_raw)
            print()
            await reconciliation(setup, orders)
    finally:
        await fake.stop()


async def bench_connectors(args: argparse.Namespace) -> None:
    with LocalBroker() as broker:
        await run(args, broker)
