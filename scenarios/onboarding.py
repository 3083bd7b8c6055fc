"""``export-onboarding``: Ningbo export firms moving to domestic platforms, Feb-May 2020.

Why this scenario: when export orders collapsed in spring 2020, Ningbo pushed its
export (外贸) firms to sell at home (出口转内销). Press reports give the figures it
reproduces: 4,295 firms onboarded to Pinduoduo, with about 120 million yuan of new
sales. Smaller numbers joined Taobao, Douyin, Kuaishou, NetEase Yanxuan and Vipshop.
It is history, not a live stream, so every event has ``at`` = 0 (load at once), in
``occurred_at`` order so that a firm's onboarding precedes its orders.

It exercises the onboarding and domestic-sales side of contract §3: a few firms are
not export-oriented (their sales are orders but not domestic sales), a few withdraw
(a separate event; they get no orders, so no counting rule has to guess what a
withdrawal undoes), and some events are re-sent under new ids or redelivered as is.
Order amounts are drawn, then one order is corrected so that Pinduoduo domestic sales
land on the reported total for every seed.
"""

from __future__ import annotations

import copy
import math
import random
from datetime import datetime, timedelta
from typing import Any

from scenarios.model import CST, ScheduledEvent, rfc3339

NAME = "export-onboarding"
START = datetime(2020, 2, 1, tzinfo=CST)
END = datetime(2020, 6, 1, tzinfo=CST)  # exclusive: events run through 2020-05-31
SPAN_S = int((END - START).total_seconds())

FIRMS_PER_PLATFORM = {
    "pinduoduo": 4295, "taobao": 380, "douyin": 260, "kuaishou": 190, "netease": 85, "vipshop": 60,
}  # fmt: skip
PDD_DOMESTIC_TARGET_FEN = 12_000_000_000  # about 120 million yuan
EXPORT_SHARE = 0.87
WITHDRAW_SHARE = 0.01
NO_SALES_SHARE = 0.08
ORDER_RETRY_SHARE = 0.005
ONBOARDING_RETRIES = 12
REDELIVERIES = 10

# district, firm-id code, name prefix (county-level cities keep their own name), weight
DISTRICTS: tuple[tuple[str, str, str, int], ...] = (
    ("北仑区", "bl", "宁波", 16), ("鄞州区", "yz", "宁波", 18), ("海曙区", "hs", "宁波", 10),
    ("江北区", "jb", "宁波", 7), ("镇海区", "zh", "宁波", 6), ("奉化区", "fh", "宁波", 6),
    ("余姚市", "yy", "余姚", 14), ("慈溪市", "cx", "慈溪", 15), ("宁海县", "nh", "宁海", 4),
    ("象山县", "xs", "象山", 4),
)  # fmt: skip
_WORD_A = "华盛恒隆鑫达永康瑞嘉宏博兴泰丰海天正德金凯美佳顺源信诚中邦立新远航明"
_WORD_B = "昌盛达丰泰源宇光辉成利通和安洋科晨祥锦润发达欣凯越辰"
# industry: sku code, item name, unit price (fen), grams per unit
INDUSTRIES: dict[str, tuple[tuple[str, str, int, int], ...]] = {
    "电器": (("elec-fan", "落地电风扇", 12900, 3200), ("elec-kettle", "电热水壶", 6900, 1200),
             ("elec-airfryer", "空气炸锅", 25900, 5000)),
    "厨具": (("kit-potset", "不锈钢锅具三件套", 15900, 4000), ("kit-flask", "真空保温杯", 3900, 400)),
    "家居用品": (("home-box", "折叠收纳箱", 2900, 1500), ("home-towel", "纯棉毛巾礼盒", 4900, 800)),
    "文具": (("stat-pens", "中性笔 12 支装", 1500, 300), ("stat-notebook", "笔记本套装", 2500, 600)),
    "服装": (("cloth-knit", "针织开衫", 8900, 350), ("cloth-down", "轻薄羽绒服", 29900, 1100)),
    "五金工具": (("hw-toolbox", "家用工具箱套装", 19900, 6000), ("hw-drill", "锂电电钻", 25900, 2500)),
    "灯具": (("lamp-desk", "LED 护眼台灯", 7900, 900), ("lamp-ceiling", "LED 吸顶灯", 15900, 2500)),
    "塑料制品": (("plas-boxes", "保鲜盒套装", 3900, 900),),
    "纺织": (("tex-bedding", "全棉四件套", 19900, 2200),),
    "汽车配件": (("auto-vacuum", "车载吸尘器", 9900, 1200),),
    "箱包": (("bag-trolley", "万向轮拉杆箱", 29900, 4000),),
    "玩具": (("toy-blocks", "益智积木", 8900, 1000),),
}  # fmt: skip
_INDUSTRY_NAMES = tuple(INDUSTRIES)
_PLATFORM_CODE = {"pinduoduo": "pdd", "taobao": "tb", "douyin": "dy", "kuaishou": "ks",
                  "netease": "wy", "vipshop": "vip"}  # fmt: skip


class _Firm:
    """A firm as the generator sees it (mutable while building, unlike the events)."""

    __slots__ = ("district", "export", "firm_id", "industry", "joined", "name", "platform", "withdrawn")

    def __init__(self, firm_id: str, name: str, platform: str, district: str, industry: str,
                 export: bool, joined: int) -> None:  # fmt: skip
        self.firm_id, self.name, self.platform, self.district = firm_id, name, platform, district
        self.industry, self.export, self.joined = industry, export, joined
        self.withdrawn: int | None = None


def _firms(rnd: random.Random) -> list[_Firm]:
    """Every firm once, one platform each, joining mostly in March and April."""
    names: set[str] = set()
    firms: list[_Firm] = []
    weights = [d[3] for d in DISTRICTS]
    for platform, count in FIRMS_PER_PLATFORM.items():
        for _ in range(count):
            district, code, prefix, _w = rnd.choices(DISTRICTS, weights=weights)[0]
            industry = rnd.choice(_INDUSTRY_NAMES)
            name = ""
            while not name or name in names:
                name = f"{prefix}{rnd.choice(_WORD_A)}{rnd.choice(_WORD_B)}{industry}有限公司"
            names.add(name)
            day = min(120, int(rnd.triangular(0, 121, 55)))
            joined = day * 86400 + rnd.randint(8 * 3600 + 1800, 18 * 3600)
            firm_id = f"nb-{code}-{len(firms) + 1:05d}"
            export = rnd.random() < EXPORT_SHARE
            firms.append(_Firm(firm_id, name, platform, district, industry, export, joined))
    for platform in FIRMS_PER_PLATFORM:
        early = [f for f in firms if f.platform == platform and f.joined < SPAN_S - 30 * 86400]
        for firm in rnd.sample(early, math.ceil(len(early) * WITHDRAW_SHARE)):
            firm.withdrawn = rnd.randint(firm.joined + 7 * 86400, SPAN_S - 86400)
    return firms


def _onboarding_event(n: int, firm: _Firm, status: str, t: int) -> dict[str, Any]:
    return {
        "schema": "onboarding.v1", "event_id": f"nb-onb-{n:06d}",
        "occurred_at": rfc3339(START + timedelta(seconds=t)), "firm_id": firm.firm_id,
        "firm_name": firm.name, "platform": firm.platform, "district": firm.district,
        "export_oriented": firm.export, "status": status,
    }  # fmt: skip


def _items(rnd: random.Random, industry: str, amount: float) -> list[dict[str, Any]]:
    """Bulk lines (one, sometimes two) of the firm's goods worth about ``amount`` fen."""
    goods = INDUSTRIES[industry]
    first = int(rnd.random() * len(goods))
    lines = [goods[first]]
    if len(goods) > 1 and rnd.random() < 0.3:
        lines.append(goods[(first + 1) % len(goods)])
    share = amount / len(lines)
    return [
        {"sku": sku, "name": name, "quantity": min(100_000, max(1, round(share / price))),
         "unit_price_fen": price, "weight_g": grams}
        for sku, name, price, grams in lines
    ]  # fmt: skip


def _amount(items: list[dict[str, Any]]) -> int:
    return sum(i["quantity"] * i["unit_price_fen"] for i in items)


def _orders(rnd: random.Random, firms: list[_Firm]) -> list[tuple[int, _Firm, list[dict[str, Any]]]]:
    """(second, firm, items) of every store order; Pinduoduo export sales hit the target."""
    plan: list[tuple[int, _Firm, float, bool]] = []  # second, firm, weight or fen, is-target
    for firm in firms:
        if firm.withdrawn is not None or rnd.random() < NO_SALES_SHARE:
            continue
        target = firm.platform == "pinduoduo" and firm.export
        n = min(60, max(1, round(rnd.lognormvariate(1.3 if target else 1.0, 0.8))))
        scale = rnd.lognormvariate(0, 0.6)
        for _ in range(n):
            t = firm.joined + 3600 + int(rnd.random() * (SPAN_S - 3600 - firm.joined))
            size = scale * rnd.lognormvariate(0, 0.9)
            plan.append((t, firm, size if target else 300_000 * size, target))
    weight_sum = sum(size for _, _, size, target in plan if target)
    orders = []
    for t, firm, size, target in plan:
        fen = PDD_DOMESTIC_TARGET_FEN * size / weight_sum if target else size
        orders.append((t, firm, _items(rnd, firm.industry, fen)))
    # Rounding quantities moves the total a little; correct it on the largest order.
    targeted = [(_amount(o[2]), o[2]) for o, p in zip(orders, plan, strict=True) if p[3]]
    biggest = max(targeted, key=lambda a: a[0])[1][0]
    diff = PDD_DOMESTIC_TARGET_FEN - sum(a for a, _ in targeted)
    step = round(diff / biggest["unit_price_fen"])
    biggest["quantity"] = min(100_000, max(1, biggest["quantity"] + step))
    return orders


def _order_event(n: int, t: int, firm: _Firm, items: list[dict[str, Any]]) -> dict[str, Any]:
    when = (START + timedelta(seconds=t)).isoformat()  # START is whole seconds at +08:00
    order_id = f"{_PLATFORM_CODE[firm.platform]}-{when[2:10].replace('-', '')}-{n:07d}"
    return {
        "schema": "order.v1", "event_id": f"nb-ord-{n:07d}", "occurred_at": when,
        "order_id": order_id, "status": "paid",
        "channel_id": f"store-{firm.firm_id}", "platform": firm.platform, "merchant_id": firm.firm_id,
        "region": {"district": firm.district}, "items": items, "amount_fen": _amount(items),
    }  # fmt: skip


def generate(seed: int = 2020) -> list[ScheduledEvent]:
    """Onboarding history and store orders, all ``at`` = 0, in ``occurred_at`` order."""
    rnd = random.Random(seed)
    firms = _firms(rnd)
    timed: list[tuple[int, ScheduledEvent]] = []
    steps = [(f, "onboarded", f.joined) for f in firms]
    steps += [(f, "withdrawn", f.withdrawn) for f in firms if f.withdrawn is not None]
    for n, (firm, status, t) in enumerate(steps, start=1):
        event = _onboarding_event(n, firm, status, t)
        timed.append((t, ScheduledEvent(0.0, "onboarding", firm.firm_id, event)))
    onboarding = list(timed)
    orders = _orders(rnd, firms)
    orders.sort(key=lambda o: o[0])
    paid = []
    for k, (t, firm, items) in enumerate(orders, start=1):
        ev = _order_event(k, t, firm, items)
        paid.append((t, ScheduledEvent(0.0, "orders", ev["order_id"], ev)))
    timed += paid

    # Noise: platform webhooks re-sending a step under a fresh id, and plain redeliveries.
    for t, original in rnd.sample(paid, round(len(paid) * ORDER_RETRY_SHARE)):
        event = copy.deepcopy(original.event) | {"event_id": original.event["event_id"] + "-r"}
        timed.append((t + rnd.randint(1, 600), ScheduledEvent(0.0, "orders", original.key, event)))
    for t, original in rnd.sample(onboarding, ONBOARDING_RETRIES):
        event = copy.deepcopy(original.event) | {"event_id": original.event["event_id"] + "-r"}
        timed.append((t + rnd.randint(1, 600), ScheduledEvent(0.0, "onboarding", original.key, event)))
    for t, original in rnd.sample(timed, REDELIVERIES):
        again = ScheduledEvent(0.0, original.topic_kind, original.key, copy.deepcopy(original.event))
        timed.append((t + rnd.randint(1, 600), again))
    timed.sort(key=lambda p: p[0])
    return [s for _, s in timed]
