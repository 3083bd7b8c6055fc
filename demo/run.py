"""``livesales demo``: a live sale unfolding on screen, with nothing installed but us.

Starts a local Kafka-protocol broker (Tansu, in memory) and the embedded ClickHouse
under ``--data-dir``, runs consumers and API in this one process, loads the onboarding
history at once and replays the festival day paced (default: its six hours in six
minutes): the razor-clam festival, the star, and smaller live rooms of other 宁海
townships (scenarios.ninghai), so that 区域概览 ranks several townships. It prints the
dashboard URL and a token per role. Ctrl-C stops it all.
The data dir is wiped at start: the broker forgets its topics when it stops, and a
replay over old data would be deduplicated to nothing new on screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import signal
import sys
from pathlib import Path

from aiokafka import AIOKafkaProducer

from demo.progress import ClearLine, Progress
from demo.robot import PrintingRobot, write_notify_file
from demo.shop import CHANNEL_ID as SHOP_CHANNEL
from demo.shop import DemoShop, write_connectors_file
from demo.shop import registry_event as shop_registry
from ground.settings import Settings, Tuning
from ground.stopping import Stopped
from livesales.runtime import Runtime
from localbroker import LocalBroker, free_port
from scenarios import festival, generate, ninghai
from scenarios.replay import replay, topic_map

ROLES = {
    "bureau": {"name": "宁波市商务局", "scope": "all", "ingest": True},  # imports its firm lists
    "township": {"name": "长街镇", "scope": "township:宁海县/长街镇", "ingest": False},
    "ingest": {"name": "平台 webhook", "scope": "all", "ingest": True},
}


def write_tokens(path: Path) -> dict[str, str]:
    tokens = {role: secrets.token_urlsafe(18) for role in ROLES}
    doc = {"tokens": [{"token": tokens[r], **spec} for r, spec in ROLES.items()]}
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return tokens


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def run_demo(speed: float, seed: int, data_dir: str, port: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    root = Path(data_dir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    tokens = write_tokens(root / "tokens.json")
    # the caller passes --port, else LIVESALES_API_PORT (livesales.cli); 0 = any free port
    api_port = port if port is not None else (8080 if _port_free(8080) else free_port())
    robot = PrintingRobot()
    robot_url = await robot.start()
    shop = DemoShop()
    platform_url = await shop.start()
    with LocalBroker(log_path=root / "broker.log") as broker:
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            clickhouse_dsn=f"chdb://{root / 'clickhouse'}",
            api_port=api_port,
            api_tokens_file=root / "tokens.json",
            notify_file=write_notify_file(root / "notify.json", robot_url),
            connectors_file=write_connectors_file(root / "connectors.json", platform_url),
            reconcile_interval_s=30,
            public_url=f"http://127.0.0.1:{api_port}",
            tuning=Tuning(batch_wait_ms=50, notify_poll_s=2.0),
        )
        runtime = Runtime(settings, stop=stop)
        try:
            await runtime.start()
        except Stopped:
            await runtime.stop()
            await robot.stop()
            await shop.stop()
            return
        url = f"http://{settings.api_host}:{runtime.port}/"
        print(f"\nlivesales demo is up: {url}", flush=True)
        print(f"  直播大屏 (township cadre, 长街镇 only): token {tokens['township']}")
        print(f"  商务局 (commerce bureau, everything):  token {tokens['bureau']}")
        print(f"  ingest webhook token (POST /v1/events): {tokens['ingest']}")
        print(f"  live page ({festival.SALE_TITLE}, {festival.HOST}): {url}live.html?channel={festival.CHANNEL_ID}")
        rooms = "、".join(f"{r.title}（{r.township}）" for r in ninghai.ROOMS)
        print(f"  the same day elsewhere in 宁海县 (bureau token): {rooms}")
        day = festival.START.date().isoformat()  # 区域概览 opens on today: the link picks the festival's day
        print(f"  区域概览 of the festival day: {url}regions.html?level=township&from={day}&to={day}")
        print(f"  the 长街镇 work group's robot prints its messages here (notify file: {root / 'notify.json'})")
        print(f"  tokens file: {root / 'tokens.json'}   broker: {broker.bootstrap}\n", flush=True)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            topics = topic_map(settings)
            history = generate("export-onboarding", seed)
            n = await replay(history, producer, topics, speed=0, stop=stop)
            print(f"onboarding history: {n:,} events loaded", flush=True)
            await producer.send_and_wait(topics["channels"], json.dumps(shop_registry(), ensure_ascii=False).encode(),
                                         key=SHOP_CHANNEL.encode())  # fmt: skip
            shop.sell(f"http://127.0.0.1:{runtime.port}/connect/douyin")
            events = generate(ninghai.NAME, seed)
            progress = Progress(speed, sys.stdout)
            if progress.tty:  # log lines clear the progress line instead of running into it
                for handler in logging.getLogger().handlers:
                    handler.addFilter(ClearLine(sys.stdout))
            task = asyncio.create_task(replay(events, producer, topics, speed, progress, stop))
            await stop.wait()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            print("\nstopping ...", flush=True)
            await shop.stop()
            await producer.stop()
            await runtime.stop()
            await robot.stop()
