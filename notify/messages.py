"""What a robot says, in Chinese: the headline, the figures and the link to the live page.

A message is built from the delivery alone (notify.transitions), never from a fresh read,
so a post retried an hour later says what was true when the transition happened, and two
senders build the same text. The structure (headline, label/value lines, link) is kept
apart from any robot's markup: notify.robots renders it as Markdown or Feishu rich text.

Amounts are fen in the store and 元 here, converted exactly (integer arithmetic, never a
float); times are the moment on the channel's clock, shown in the configured offset
(+08:00, 北京时间, by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

from notify.transitions import Transition

CHINA = timezone(timedelta(hours=8))
# api.labels' tables (notify may not import api.* but api.queries and api.auth; a test
# checks these equal the dashboard's, so the names cannot drift apart).
PLATFORMS: dict[str, str] = {
    "douyin": "抖音", "kuaishou": "快手", "taobao": "淘宝", "pinduoduo": "拼多多", "jd": "京东",
    "netease": "网易", "vipshop": "唯品会", "wechat": "微信视频号",
}  # fmt: skip
RULES: dict[str, str] = {"silence": "无成交", "refund_spike": "退款激增", "pace_drop": "成交放缓"}
TAGS = {"firing": "【告警】", "cleared": "【恢复】", "live": "【开播】", "ended": "【下播】"}


@dataclass(frozen=True)
class MessageConfig:
    public_url: str  # LIVESALES_PUBLIC_URL, without a trailing slash (notify.config.check_public_url)
    tz: timezone = CHINA


@dataclass(frozen=True)
class Message:
    title: str  # the headline, plain text (DingTalk's notification title, Feishu's post title)
    lines: tuple[tuple[str, str], ...]  # (label, value), in order
    link_text: str
    link: str


def yuan(fen: int) -> str:
    """Fen as 元 with two decimals and thousands separators, exactly: 1234567 → 12,345.67 元."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d} 元"


def kilograms(grams: int) -> str:
    """Grams as 千克, exactly, without trailing zeros: 2500 → 2.5 千克."""
    whole, rest = divmod(grams, 1000)
    frac = f"{rest:03d}".rstrip("0")
    return f"{whole:,}{'.' + frac if frac else ''} 千克"


def clock_text(ms: int, tz: timezone) -> str:
    at = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)
    offset = at.strftime("%z")
    zone = "北京时间" if tz.utcoffset(None) == timedelta(hours=8) else f"UTC{offset[:3]}:{offset[3:]}"
    return f"{at:%Y-%m-%d %H:%M:%S}（{zone}）"


def duration_text(ms: int) -> str:
    minutes = max(0, ms) // 60_000
    hours, minutes = divmod(minutes, 60)
    return f"{hours} 小时 {minutes} 分钟" if hours else f"{minutes} 分钟"


def live_link(public_url: str, channel_id: str) -> str:
    """The dashboard's live page of a channel (api/web: ``live.html?channel=<id>``)."""
    return f"{public_url}/live.html?channel={quote(channel_id, safe='')}"


def _name(t: Transition) -> str:
    return t.place.title or t.channel_id


def _where(t: Transition) -> str:
    p = t.place
    region = " ".join(x for x in (p.district, p.township) if x) or "未登记"
    return f"{region} · {PLATFORMS.get(p.platform, p.platform)}"


def render(t: Transition, cfg: MessageConfig) -> Message:
    """The message of one transition (see the module's docstring)."""
    f = t.figures
    channel = f"{_name(t)}（{t.channel_id}）" if t.place.title else t.channel_id
    lines: list[tuple[str, str]] = [("直播间", channel)]
    if t.place.host:
        lines.append(("主播", t.place.host))
    lines.append(("地区", _where(t)))
    sales = f"支付 {f.paid_orders:,} 单 · 成交 {yuan(f.gmv_fen)}"
    if t.edge in ("firing", "cleared"):
        rule = RULES.get(t.rule, t.rule)
        title = f"{TAGS[t.edge]}{_name(t)}：{rule}{'已恢复' if t.edge == 'cleared' else ''}"
        lines.append(("告警", rule))
        if t.text:
            lines.append(("详情", t.text))
        lines.append(("恢复时间" if t.edge == "cleared" else "发生时间", clock_text(t.at_ms, cfg.tz)))
        lines.append(("累计", sales))
    elif t.edge == "live":
        title = f"{TAGS['live']}{_name(t)} 开始直播"
        lines.append(("开播时间", clock_text(t.at_ms, cfg.tz)))
        lines.append(("目前", sales))
    else:
        title = f"{TAGS['ended']}{_name(t)} 直播结束"
        lines.append(("下播时间", clock_text(t.at_ms, cfg.tz)))
        if f.first_ms is not None and f.last_ms is not None:
            lines.append(("直播时长", duration_text(f.last_ms - f.first_ms)))
        lines.append(("支付订单", f"{f.paid_orders:,} 单"))
        lines.append(("成交额", yuan(f.gmv_fen)))
        lines.append(("退款额", yuan(f.refund_fen)))
        lines.append(("净成交额", yuan(f.gmv_fen - f.refund_fen)))
        if f.weight_g:
            lines.append(("成交重量", kilograms(f.weight_g)))
        if f.viewers_peak is not None:
            lines.append(("最高在线", f"{f.viewers_peak:,} 人"))
        if f.views_total is not None:
            lines.append(("累计观看", f"{f.views_total:,} 次"))
    return Message(title, tuple(lines), "查看直播大屏", live_link(cfg.public_url, t.channel_id))
