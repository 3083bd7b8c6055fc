"""Check a shop against its platform's order list: which steps the platform's orders imply
that the service has not counted (docs/CONNECTORS.md, "Checking a shop").

``python -m connectors.check --file connectors.json --dsn chdb:///… --platform douyin --shop
1001 --hours 24`` prints the window, the orders and steps the platform lists, and every
missing event id; exit 1 when any is missing. It only reads: nothing is published (the next
reconciliation would publish what is missing), so it is safe against a live service.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.apis import Apis
from connectors.config import AppConfig, ShopConfig, load_connectors
from connectors.events import RegistryRooms, RoomDirectory, order_steps
from connectors.state import ConnectorState
from ground.config_errors import ConfigError
from processors.store import ClickHouse


@dataclass(frozen=True)
class CheckReport:
    start: datetime
    end: datetime
    orders: int
    steps: int
    missing: tuple[str, ...]  # event ids the platform implies and the service has not stored


async def check_shop(
    state: ConnectorState, apis: Apis, app: AppConfig, shop: ShopConfig, rooms: RoomDirectory,
    start: datetime, end: datetime,
) -> CheckReport:  # fmt: skip
    orders = steps = 0
    missing: list[str] = []
    async for page in apis.get(app).updated(shop, start, end):
        orders += len(page)
        ids = [s.event_id for o in page for s in (await order_steps(o, app, shop, rooms))[0]]
        steps += len(ids)
        counted = await state.counted(ids)
        missing += [i for i in ids if i not in counted]
    return CheckReport(start, end, orders, steps, tuple(missing))


async def _main(args: argparse.Namespace) -> int:
    config = load_connectors(args.file)
    found = config.find(args.platform, args.shop)
    if found is None:
        raise ConfigError(f"--shop {args.shop}", f"no {args.platform} shop {args.shop} in {args.file}")
    store = ClickHouse(args.dsn)
    await store.open()
    apis = Apis(config)
    await apis.start()
    try:
        end = datetime.now(UTC) - timedelta(minutes=args.lag_minutes)
        report = await check_shop(ConnectorState(store), apis, *found, RegistryRooms(store),
                                  end - timedelta(hours=args.hours), end)  # fmt: skip
    finally:
        await apis.close()
        await store.close()
    print(f"{args.platform} shop {args.shop} [{report.start.isoformat()}, {report.end.isoformat()}): "
          f"{report.orders} orders, {report.steps} steps, {len(report.missing)} not counted")  # fmt: skip
    for event_id in report.missing:
        print(f"  missing {event_id}")
    return 1 if report.missing else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m connectors.check", description=__doc__.splitlines()[0])
    p.add_argument("--file", required=True, help="the connectors file (LIVESALES_CONNECTORS_FILE)")
    p.add_argument("--dsn", required=True, help="the ClickHouse DSN the service stores to")
    p.add_argument("--platform", required=True, choices=["douyin", "kuaishou"])
    p.add_argument("--shop", required=True)
    p.add_argument("--hours", type=float, default=24.0, help="window length, ending --lag-minutes before now")
    p.add_argument("--lag-minutes", type=float, default=5.0)
    args = p.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except ConfigError as exc:
        print(exc.line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
