"""The one table of what users read instead of slugs: platform, dimension and measure names.

Users read Chinese (抖音, not ``douyin``); JSON keys stay slugs so programs keep working,
and everything a person sees (dashboard, chart legends, CSV/Excel headers) maps through
here. ``GET /v1/labels`` serves the same table, so the dashboard never keeps a copy that
could drift from the exports.
"""

from __future__ import annotations

from typing import Any

PLATFORMS: dict[str, str] = {
    "douyin": "抖音",
    "kuaishou": "快手",
    "taobao": "淘宝",
    "pinduoduo": "拼多多",
    "jd": "京东",
    "netease": "网易",
    "vipshop": "唯品会",
    "wechat": "微信视频号",
}

DIMENSIONS: dict[str, str] = {
    "platform": "平台",
    "channel_id": "渠道/直播间",
    "district": "区县",
    "township": "乡镇",
    "merchant_id": "商家",
    "firm_id": "企业",
    "export_oriented": "是否外贸",
    "day": "日",
    "week": "周",
    "month": "月",
}

MEASURES: dict[str, str] = {
    "paid_orders": "支付订单数",
    "gmv_fen": "成交额（元）",
    "units": "件数",
    "weight_g": "重量（千克）",
    "created_orders": "下单数",
    "refunded_orders": "退款订单数",
    "refund_fen": "退款额（元）",
    "net_gmv_fen": "净成交额（元）",
    "firms_onboarded": "入驻企业数",
    "firms_withdrawn": "退出企业数",
    "firms_net": "净入驻企业数",
    "firms_with_sales": "有销售的企业数",
    "live_sessions": "直播场次",
    "live_gmv_fen": "直播销售额（元）",
    "live_products": "直播商品数",
    "active_hosts": "活跃主播数",
}

# The summary's figures as the live screen and the 战报 name them (contract v1.2 §6).
# avg_order_fen is 笔单价 (GMV per paid order), never 客单价: that is per buyer, and no
# event carries buyers.
FIGURES: dict[str, str] = {
    "gmv_fen": "成交额（元）",
    "paid_orders": "支付订单",
    "units": "件数",
    "weight_g": "重量（kg）",
    "views_total": "点击量",
    "viewers_peak": "在线峰值",
    "viewers_avg": "平均在线",
    "gpm_fen": "千次观看成交 GPM（元）",
    "avg_order_fen": "笔单价（元）",
    "seconds_per_order": "成交节奏",
    "refunded_orders": "退款订单",
    "refund_rate": "退款率",
    "refund_fen": "退款（元）",
    "net_gmv_fen": "净成交额（元）",
}

DATASETS: dict[str, str] = {
    "orders": "订单", "onboarding": "企业入驻", "domestic_sales": "出口转内销", "live_monitor": "直播电商监测",
}

RULES: dict[str, str] = {"silence": "无成交", "refund_spike": "退款激增", "pace_drop": "成交放缓"}

STATUSES: dict[str, str] = {"live": "直播中", "scheduled": "未开始", "ended": "已结束"}

BOOLEANS: dict[str, str] = {"true": "是", "false": "否"}

TOTAL = "合计"

# Measures shown in a unit other than the stored one: name -> divisor (fen -> yuan, g -> kg).
SCALED: dict[str, int] = {"gmv_fen": 100, "refund_fen": 100, "net_gmv_fen": 100, "weight_g": 1000}


def platform_name(slug: str) -> str:
    """The display name; an unknown slug shows as itself."""
    return PLATFORMS.get(slug, slug)


def dimension_name(name: str) -> str:
    return DIMENSIONS.get(name, name)


def measure_name(name: str) -> str:
    return MEASURES.get(name, name)


def key_label(dim: str, value: Any, names: dict[str, str] | None = None) -> str:
    """How one dimension value reads to a person: platform names, 是/否, firm names."""
    if isinstance(value, bool):
        return BOOLEANS["true" if value else "false"]
    text = str(value)
    if dim == "platform":
        return platform_name(text)
    if names and text in names:
        return names[text]
    return text


def as_json() -> dict[str, Any]:
    """The table as ``GET /v1/labels`` serves it."""
    return {
        "platforms": dict(PLATFORMS),
        "dimensions": dict(DIMENSIONS),
        "measures": dict(MEASURES),
        "figures": dict(FIGURES),
        "datasets": dict(DATASETS),
        "rules": dict(RULES),
        "statuses": dict(STATUSES),
        "booleans": dict(BOOLEANS),
        "total": TOTAL,
        "scaled": dict(SCALED),
    }
