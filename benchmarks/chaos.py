"""``livesales bench chaos``: exactly-once counting under the faults production brings.

The tests prove each fence case alone; an operator meets them together. This runs the
service as it is deployed, black-box: N ``livesales consume`` processes in one consumer
group over one ClickHouse HTTP endpoint, on the local broker (Tansu), and for each run
(its own seed, consumer group, topics and store):

1. produces ``--events`` order events at ``--produce-rate`` (orders of four channels with
   created/paid/refunded steps; 5% exact redeliveries, 5% webhook retries of a step under
   a new event_id, 20% with no key or a wrong one, which the service forwards through
   ``<topic>.routed``), keeping what it sent as the truth;
2. meanwhile, at times a seeded plan spreads over the production, SIGKILLs consumers
   (restarted ~1 s later), SIGTERMs them (restarted once they exited) and SIGSTOPs them
   for ``--stop-s``, past their session timeout, so the group moves their partitions
   while they still hold inserts; and the endpoint runs every data insert
   ``--slow-insert-s`` late (its ``/_faults``), as an overloaded server, a quorum or a
   Distributed insert does, so inserts are in flight whenever partitions move (for the
   first ``--slow-share`` of the production only, if less than 1);
3. waits (at most ``--settle-s``) until the group committed every offset of its topics,
   ``.routed`` ones included, clears the faults and counts ``order_steps`` per step:
   *doubled* rows (a step stored more than once), *missing* steps (sent, never stored)
   and *extra* ones (stored, never sent). Each must be 0; it also prints how many
   processes waited out (or killed) an earlier owner's insert: the write fence at work
   (processors/fence.py, docs/DESIGN.md).

The endpoint is tests/support/clickhouse_http.py (benchmarks/procs.py starts it), or the
``http(s)://`` server ``LIVESALES_CLICKHOUSE_DSN`` names (then without slow inserts).
Logs of a run that doubled or missed anything are kept; their path is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.chaos_slots import Slot
from benchmarks.common import scratch_dir
from benchmarks.procs import _until, http_clickhouse
from ground.settings import Settings
from ingest.routing import routed_topics
from ingest.topics import ensure_topics
from localbroker import LocalBroker
from processors.store import ClickHouse

PARTITIONS = 4
CHANNELS = (("nh-changjie", "douyin", "宁海县", "长街镇"), ("xs-shipu", "kuaishou", "象山县", "石浦镇"),
            ("bl-store", "pinduoduo", "北仑区", None), ("yz-live", "taobao", "鄞州区", None))  # fmt: skip
Step = tuple[str, str, str]  # (platform, order_id, status): what counts once (contract §3)
Message = tuple[bytes | None, bytes, Step]  # key, value, its step


@dataclass
class Chaos:
    consumers: int = 3
    events: int = 20_000
    rate: float = 500.0  # events/s
    kills: int = 3
    terms: int = 1
    stops: int = 1
    stop_s: float = 15.0
    slow_insert_s: float = 9.0  # 0: off
    slow_share: float = 1.0  # of the run (from the start of production) under slow inserts
    settle_s: float = 300.0
    env: dict[str, str] = field(default_factory=dict)  # more LIVESALES_* for the consume processes


@dataclass
class ChaosRun:
    seed: int
    events: int  # messages produced
    steps: int  # distinct order steps among them: the truth
    faults: Counter[str]  # done, by kind (kill, term, stop)
    planned: int
    doubled: int  # rows beyond a step's first
    doubled_steps: int  # steps stored more than once
    missing: int  # steps sent, never stored
    extra: int  # steps stored, never sent
    settled: bool  # every offset committed within --settle-s
    seconds: float
    processes: int  # consume processes started (restarts included)
    fence_waited: int  # of them, those that logged waiting for earlier owners' inserts
    fence_killed: int  # and those that killed some
    slow_inserts: int  # inserts the endpoint delayed
    odd: list[str] = field(default_factory=list)  # unexpected exits
    logs: Path | None = None  # kept when something was wrong or odd

    @property
    def wrong(self) -> bool:
        return bool(self.doubled or self.missing or self.extra or not self.settled)


def messages(seed: int, n: int) -> list[Message]:
    """``n`` order events in sending order: steps, 5% exact redeliveries, 5% webhook
    retries (same step, new event_id); 80% keyed by order_id, the rest by nothing or by
    a random key."""
    rnd = random.Random(seed)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)  # recent, as live
    n_dup = n // 20
    slotted: list[tuple[float, dict[str, Any]]] = []
    o = 0
    while len(slotted) < n - 2 * n_dup:
        cid, platform, district, township = CHANNELS[o % len(CHANNELS)]
        qty = rnd.randint(1, 3)
        steps = ["created"] + (["paid"] if rnd.random() < 0.9 else [])
        steps += ["refunded"] if len(steps) == 2 and rnd.random() < 0.1 else []
        for k, status in enumerate(steps):
            slot = o + k * rnd.randint(1, 200)  # an order's later steps come a little later
            slotted.append((slot, {
                "schema": "order.v1", "event_id": f"s{seed}-o{o}-{status}", "order_id": f"s{seed}-o{o}",
                "occurred_at": (start + timedelta(seconds=slot / 10)).isoformat(), "status": status,
                "channel_id": cid, "platform": platform, "merchant_id": f"m-{cid}",
                "region": {"district": district} | ({"township": township} if township else {}),
                "items": [{"sku": "clam-2.5kg", "name": "长街蛏子 2.5kg 装", "quantity": qty,
                           "unit_price_fen": 6800, "weight_g": 2500}],
                "amount_fen": qty * 6800,
            }))  # fmt: skip
        o += 1
    base = slotted[: n - 2 * n_dup]  # less the last order's surplus steps
    for k in range(2 * n_dup):  # a bit later: the same event again, or (odd k) a webhook retry under a new event_id
        at, ev = rnd.choice(base)
        base.append((at + rnd.uniform(1, n / 10), ev | {"event_id": f"{ev['event_id']}-r{k}"} if k % 2 else ev))
    out: list[Message] = []
    for _, ev in sorted(base, key=lambda s: s[0]):
        r = rnd.random()
        key = None if r < 0.1 else f"x{rnd.randrange(1 << 30)}" if r < 0.2 else ev["order_id"]
        value = json.dumps(ev, ensure_ascii=False).encode()
        out.append((key.encode() if key else None, value, (ev["platform"], ev["order_id"], ev["status"])))
    return out


@dataclass
class Fault:
    at: float  # seconds into the production
    kind: str  # kill, term, stop
    target: int  # consumer index


def plan(seed: int, cfg: Chaos, seconds: float) -> list[Fault]:
    """The faults, at seeded times within the production's 10%..90%, on seeded consumers."""
    rnd = random.Random(seed * 7919)
    kinds = ["kill"] * cfg.kills + ["term"] * cfg.terms + ["stop"] * cfg.stops
    faults = [Fault(rnd.uniform(0.1, 0.9) * seconds, k, rnd.randrange(cfg.consumers)) for k in kinds]
    return sorted(faults, key=lambda f: f.at)


async def produce_at(bootstrap: str, topic: str, msgs: list[Message], rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        t0, futures = time.monotonic(), []
        for i, (key, value, _) in enumerate(msgs):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            futures.append(await producer.send(topic, value, key=key))
        await asyncio.wait_for(asyncio.gather(*futures), 120)
    finally:
        await producer.stop()


async def behind(settings: Settings) -> list[str]:
    """The partitions whose committed offset is short of the end ("orders:2 150/900"), the
    sources first and then, once they are all done, the ``.routed`` ones (a source offset is
    committed once its forward is acknowledged: tests/support/offsets.py); [] when settled."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group)
    await consumer.start()
    try:
        for topics in (settings.topics, routed_topics(settings.topics)):
            tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
            ends = await consumer.end_offsets(tps)
            short = [(tp, c) for tp in tps if (c := await consumer.committed(tp) or 0) < ends[tp]]
            if short:
                name = settings.consumer_group
                return [f"{tp.topic.replace(f'-{name}', '')}:{tp.partition} {c}/{ends[tp]}" for tp, c in short]
        return []
    finally:
        await consumer.stop()


async def set_faults(base: str, **faults: Any) -> dict[str, Any]:
    """Replace the endpoint's fault plan (tests/support/clickhouse_http.py ``Faults``); no args: none."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.put(f"{base}/_faults", json=faults) as r,
    ):
        r.raise_for_status()
        out: dict[str, Any] = await r.json()
        return out


async def one_run(cfg: Chaos, seed: int, broker: LocalBroker, tmp: Path) -> ChaosRun:
    started = time.monotonic()
    tag = f"chaos-{seed}-{time.time_ns()}"
    logs = tmp / tag
    logs.mkdir()
    msgs = messages(seed, cfg.events)
    seconds = len(msgs) / cfg.rate
    faults = plan(seed, cfg, seconds)
    with http_clickhouse(logs / "ch") as (dsn, server_pid):
        if cfg.slow_insert_s > 0 and server_pid is None:
            raise RuntimeError("slow inserts need the test endpoint: unset LIVESALES_CLICKHOUSE_DSN or pass 0")
        base, _, _ = dsn.rpartition("/")
        admin = ClickHouse(dsn)
        await admin.open()
        await admin.run_in_thread(admin.client.command, f"CREATE DATABASE {tag.replace('-', '_')}")
        await admin.close()
        db_dsn = f"{base}/{tag.replace('-', '_')}"
        settings = Settings(
            kafka_bootstrap=broker.bootstrap, consumer_group=tag, topic_orders=f"orders-{tag}",
            topic_onboarding=f"onboarding-{tag}", topic_stream_stats=f"stats-{tag}", topic_channels=f"channels-{tag}",
            topic_dlq=f"dlq-{tag}", clickhouse_dsn=db_dsn,
        )  # fmt: skip
        topics = [*settings.topics, settings.topic_dlq]
        await ensure_topics(broker.bootstrap, topics, partitions=PARTITIONS, routed_from=settings.topics)
        store = ClickHouse(db_dsn)
        await store.open()  # migrates once, before the consumers race to
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALES_")}
        names = ("kafka_bootstrap", "consumer_group", "clickhouse_dsn", "topic_orders", "topic_onboarding",
                 "topic_stream_stats", "topic_channels", "topic_dlq")  # fmt: skip
        env.update({f"LIVESALES_{k.upper()}": str(getattr(settings, k)) for k in names} | cfg.env)
        slots = [Slot(i, env, logs) for i in range(cfg.consumers)]
        done: Counter[str] = Counter()
        odd: list[str] = []
        settled = False
        chaos: list[asyncio.Task[None]] = []
        try:
            for s in slots:
                s.start()
            await _until(lambda: _all_ready(slots), 180, "every consumer ready and assigned")
            t0 = time.monotonic()

            async def run_fault(f: Fault) -> None:
                await asyncio.sleep(max(0.0, t0 + f.at - time.monotonic()))
                async with slots[f.target].lock:
                    await slots[f.target].fault(f.kind, cfg.stop_s, odd)
                    done[f.kind] += 1

            async def slow_window_ends() -> None:
                await asyncio.sleep(cfg.slow_share * seconds)
                await set_faults(base)

            if cfg.slow_insert_s > 0:  # only data inserts read input(); claims and look-ups stay fast
                await set_faults(base, match="FROM input(", delay_s=cfg.slow_insert_s, seed=seed)
                if cfg.slow_share < 1:
                    chaos.append(asyncio.create_task(slow_window_ends()))
            chaos += [asyncio.create_task(run_fault(f)) for f in faults]
            await asyncio.wait_for(produce_at(broker.bootstrap, settings.topic_orders, msgs, cfg.rate), seconds + 180)
            await asyncio.wait_for(asyncio.gather(*chaos), cfg.stop_s + 300)
            deadline = time.monotonic() + cfg.settle_s
            while (late := await behind(settings)) and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
            settled = not late
            if late:  # what an operator would look at: the lag, and each process's /readyz
                odd.append(f"committed/end offsets: {', '.join(late)}")
                odd += [f"c{s.index} /readyz: {await s.readyz()}" for s in slots]
            counts = (await set_faults(base))["counts"] if server_pid else {}
            rows = await store.query(
                "SELECT platform, order_id, status, count() AS n FROM order_steps GROUP BY platform, order_id, status"
            )
        finally:
            for t in chaos:
                t.cancel()
            for s in slots:
                if s.proc is not None and s.proc.poll() is not None:  # not one of ours: those are restarted
                    odd.append(f"c{s.index} had exited on its own with {s.proc.returncode} ({s.started[-1].name})")
            codes = [s.stop() for s in slots]
            odd += [f"c{s.index} exited {c} on the final SIGTERM" for s, c in zip(slots, codes, strict=True) if c]
            await store.close()
    shutil.rmtree(logs / "ch", ignore_errors=True)  # the store; the logs stay until the benchmark ends
    truth = {m[2] for m in msgs}
    stored = {(r["platform"], r["order_id"], r["status"]): int(r["n"]) for r in rows}
    logs_all = [log for s in slots for log in s.started]
    texts = [log.read_text(errors="replace") for log in logs_all]
    result = ChaosRun(
        seed=seed, events=len(msgs), steps=len(truth), faults=done, planned=len(faults),
        doubled=sum(n - 1 for n in stored.values() if n > 1), doubled_steps=sum(n > 1 for n in stored.values()),
        missing=len(truth - stored.keys()), extra=len(stored.keys() - truth), settled=settled,
        seconds=time.monotonic() - started, processes=len(logs_all),
        fence_waited=sum(_fence(t, "waiting for") for t in texts),
        fence_killed=sum(_fence(t, "killed") for t in texts),
        slow_inserts=int(counts.get("delayed", 0)), odd=odd,
    )  # fmt: skip
    if result.wrong or odd:
        result.logs = Path(tempfile.mkdtemp(prefix=f"{tag}-logs-"))
        for log in logs_all:
            shutil.copy(log, result.logs / log.name)
    return result


async def _all_ready(slots: list[Slot]) -> bool:
    return all(await asyncio.gather(*(s.ready() for s in slots)))


def _fence(text: str, what: str) -> bool:
    """Whether a process's log has a fence line (processors/fence.py) saying ``what``."""
    return any("earlier owners" in ln and what in ln for ln in text.splitlines())


def line(r: ChaosRun) -> str:
    faults = ", ".join(f"{r.faults[k]} {k}" for k in ("kill", "term", "stop")) or "none"
    out = (f"seed {r.seed}: {r.events:,} events ({r.steps:,} steps), faults {faults} ({sum(r.faults.values())}"
           f"/{r.planned}), doubled {r.doubled} rows ({r.doubled_steps} steps), missing {r.missing} steps,"
           f" extra {r.extra}, {r.seconds:.0f} s; fence: {r.fence_waited} of {r.processes} processes waited for"
           f" earlier owners, {r.fence_killed} killed some; {r.slow_inserts} slow inserts")  # fmt: skip
    out += "" if r.settled else "; NOT SETTLED (offsets left uncommitted)"
    out += "".join(f"; {o}" for o in r.odd)
    return out + (f"; logs kept in {r.logs}" if r.logs else "")


async def bench_chaos(args: argparse.Namespace) -> None:
    cfg = Chaos(
        consumers=args.consumers, events=args.events or 20_000, rate=args.produce_rate, kills=args.kills,
        terms=args.terms, stops=args.stops, stop_s=args.stop_s, slow_insert_s=args.slow_insert_s,
        slow_share=args.slow_share, settle_s=args.settle_s,
    )  # fmt: skip
    for name in ("aiokafka", "processors.store"):  # the offset checks' and the migrations' chatter
        logging.getLogger(name).setLevel(logging.WARNING)
    runs: list[ChaosRun] = []
    with LocalBroker() as broker, scratch_dir() as tmp:
        for k in range(args.runs):
            print(f"run {k + 1}/{args.runs}: {cfg.consumers} consumers, {cfg.events:,} events at {cfg.rate:g}/s ...",
                  flush=True)  # fmt: skip
            runs.append(await one_run(cfg, args.seed + k, broker, Path(tmp)))
            print(line(runs[-1]), flush=True)
    print()
    print(f"{len(runs)} run(s): doubled {sum(r.doubled for r in runs)} rows, missing {sum(r.missing for r in runs)}"
          f" steps, extra {sum(r.extra for r in runs)}; {sum(r.wrong for r in runs)} run(s) wrong; faults done"
          f" {sum(sum(r.faults.values()) for r in runs)}/{sum(r.planned for r in runs)}")  # fmt: skip
    print(f"command: livesales bench chaos --runs {args.runs} --seed {args.seed} --consumers {cfg.consumers}"
          f" --events {cfg.events} --produce-rate {cfg.rate:g} --kills {cfg.kills} --terms {cfg.terms}"
          f" --stops {cfg.stops} --stop-s {cfg.stop_s:g} --slow-insert-s {cfg.slow_insert_s:g}"
          f" --slow-share {cfg.slow_share:g} --settle-s {cfg.settle_s:g}")  # fmt: skip
