"""抖店 (douyin): everything platform-specific, with the source of each fact.

Sources (PLATFORMS.md §1 quotes them): the official Java SDK's ``DoudianOpMsgRequest``
(push shape, ``checkSign``); ``zsmhub/doudian-sdk`` ``message/doudian_message.go`` and
``message/doudian_sign.go`` (``event-sign`` = lowercase ``md5(app_key + body + app_secret)``),
``utils/sign_util.go`` (API ``sign`` = hex HMAC-SHA256, key ``app_secret``, over ``app_secret +
"app_key"k "method"m "param_json"j "timestamp"t "v2" + app_secret``), ``message/*.go`` (tags),
``api/order_searchList`` (list fields, ``size`` ≤ 100, ``page`` from 0, ``order_by``);
``minibear2021/doudian`` ``doudian/core.py`` (header ``app-id``; ``token.create`` with
``grant_type=authorization_self`` and ``shop_id`` for a self-use app, ``token.refresh`` with
``refresh_token``; ``param_json`` sorted and compact; ``timestamp`` ``YYYY-MM-DD HH:MM:SS``
GMT+8; answers with ``err_no`` 0 and ``data``); its README (activation ``tag`` "0" answered
``{"code":0,"msg":"success"}`` within 5 s).

Single-source or not found, so kept in one place here to fix when a real shop disagrees:
the token error codes (``_TOKEN_CODES``), the server-side error range, the after-sale list's
parameter and field names (``update_start_time``/``update_end_time``, ``items[].aftersale_info``
with ``refund_status`` 3 = 退款成功 and ``success_time``), the order list's longest window (one
day used here), and 101 vs 110 for "paid" (PLATFORMS.md notes the conflict; both are taken
as a hint to fetch the order, which is the truth either way).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp

from connectors.config import AppConfig, ShopConfig
from connectors.model import Notice, OrderLine, PlatformOrder, Refund, from_seconds
from connectors.money import fen, ident, loads
from connectors.platform import (
    PlatformRefused,
    PlatformUnavailable,
    PushBatch,
    PushRejected,
    Token,
    TokenBox,
    TokenExpired,
    call_json,
)  # fmt: skip

log = logging.getLogger(__name__)
NAME = "douyin"
SUCCESS = b'{"code":0,"msg":"success"}'
ACTIVATION_TAG = "0"
# tag → neutral step (zsmhub/doudian-sdk message/*.go; 110 per the SKIT sample's conflict)
TAGS = {"100": "created", "101": "paid", "110": "paid", "106": "cancelled", "206": "refunded"}
PAGE_SIZE = 100  # "单页大小，限制100以内"
MAX_WINDOW = timedelta(days=1)  # not documented: a day per call keeps each window's pages few
REFUND_SUCCESS = 3  # refund_status 3 退款成功 (order_searchList sku_order_list)
UNPAID = 1  # order_status 1 待支付
_TOKEN_CODES = {30001, 30002}  # access_token invalid / expired (not confirmed)
_CST = timezone(timedelta(hours=8))
TOKEN_MARGIN_S = 300.0


def push_sign(app_key: str, body: bytes, app_secret: str) -> str:
    """``event-sign``: lowercase hex MD5 of ``app_key + raw body + app_secret``."""
    return hashlib.md5(app_key.encode() + body + app_secret.encode(), usedforsecurity=False).hexdigest()


def param_json(params: Mapping[str, Any]) -> str:
    """Business parameters as the signature covers them: keys sorted, no spaces."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def api_sign(app_key: str, app_secret: str, method: str, params_json: str, timestamp: str) -> str:
    text = f"{app_secret}app_key{app_key}method{method}param_json{params_json}timestamp{timestamp}v2{app_secret}"
    return hmac.new(app_secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def method_path(method: str) -> str:
    """``order.searchList`` → ``/order/searchList``."""
    return "/" + method.replace(".", "/")


def parse_order(d: Mapping[str, Any], shop_id: str) -> PlatformOrder:
    """One ``shop_order_list`` entry (or ``shop_order_detail``); refunds attached later."""
    lines, room = [], None
    for sku in d.get("sku_order_list") or ():
        num = int(sku.get("item_num") or 1)
        lines.append(OrderLine(sku=ident(sku.get("sku_id") or sku.get("order_id")),
                               name=str(sku.get("product_name") or "商品"), quantity=num,
                               unit_price_fen=fen(sku.get("pay_amount", 0)) // max(num, 1)))  # fmt: skip
        r = sku.get("room_id")
        if room is None and r not in (None, "", 0, "0"):
            room = ident(r)
    paid = d.get("pay_time") not in (None, "", 0, "0") and int(d.get("order_status") or 0) != UNPAID
    return PlatformOrder(
        order_id=ident(d["order_id"]), shop_id=str(d.get("shop_id") or shop_id),
        created_at=from_seconds(d["create_time"]), order_fen=fen(d.get("order_amount", d.get("pay_amount", 0))),
        lines=tuple(lines), room_id=room, paid_at=from_seconds(d["pay_time"]) if paid else None,
        paid_fen=fen(d.get("pay_amount", 0)) if paid else 0,
        updated_at=from_seconds(d["update_time"]) if d.get("update_time") else None,
    )  # fmt: skip


def refund_hint(d: Mapping[str, Any]) -> bool:
    """Whether any sku order shows an after-sale (``refund_status`` 1/3/4 or an
    ``after_sale_info`` status): only then are the order's after-sales listed."""
    for sku in d.get("sku_order_list") or ():
        info = sku.get("after_sale_info") or {}
        if int(sku.get("refund_status") or 0) or int(info.get("after_sale_status") or 0):
            return True
    return False


def parse_refund(item: Mapping[str, Any]) -> tuple[str, Refund] | None:
    """An after-sale list item → (order id, refund) when the refund succeeded, else None."""
    info = item.get("aftersale_info") or {}
    if int(info.get("refund_status") or 0) != REFUND_SUCCESS:
        return None
    order_id = (item.get("order_info") or {}).get("shop_order_id") or info.get("order_id")
    at = info.get("success_time") or info.get("update_time")
    return ident(order_id), Refund(ident(info["aftersale_id"]), from_seconds(at), fen(info.get("refund_amount", 0)))


class Douyin:
    """The :class:`connectors.platform.Platform` of 抖店."""

    name = NAME
    success_body = SUCCESS

    def verify(self, apps: Sequence[AppConfig], headers: Mapping[str, str], body: bytes, now: datetime) -> PushBatch:
        app_id = headers.get("app-id")
        app = next((a for a in apps if a.app_key == app_id), None) if app_id else (apps[0] if len(apps) == 1 else None)
        if app is None:
            raise PushRejected(NAME, None, "no app-id header naming a configured app")
        given = headers.get("event-sign", "")
        expected = push_sign(app.app_key, body, app.app_secret.get_secret_value())
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise PushRejected(NAME, app.app_key, "event-sign does not match")
        try:
            records = loads(body)
        except ValueError:
            records = None
        if not isinstance(records, list):
            raise PushRejected(NAME, app.app_key, "signed body is not a JSON array")  # signed garbage: still refused
        notices: list[Notice] = []
        activation = False
        for rec in records:
            tag = str(rec.get("tag")) if isinstance(rec, dict) else ""
            if tag == ACTIVATION_TAG:
                activation = True
                continue
            kind = TAGS.get(tag)
            if kind is None:
                continue  # a tag we do not count (shipping, address, …)
            try:
                notices.append(_notice(rec, kind, now))
            except (ValueError, TypeError, KeyError) as exc:  # signed but unreadable: nothing to count from it
                log.warning("抖店 push record %s (tag %s) skipped: %s", str(rec.get("msg_id"))[:80], tag, exc)
        return PushBatch(app, tuple(notices), activation)

    def api(self, app: AppConfig, session: aiohttp.ClientSession, timeout_s: float) -> DouyinApi:
        return DouyinApi(app, session, timeout_s)


class DouyinApi:
    """One 抖店 app's API: signed calls, each shop's token created and refreshed here."""

    def __init__(self, app: AppConfig, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self.app, self.session, self.timeout_s = app, session, timeout_s
        self._tokens: dict[str, TokenBox] = {}

    async def _raw(self, method: str, params: Mapping[str, Any], access_token: str | None) -> Any:
        secret = self.app.app_secret.get_secret_value()
        pj = param_json(params)
        ts = datetime.now(_CST).strftime("%Y-%m-%d %H:%M:%S")
        query = {"app_key": self.app.app_key, "method": method, "timestamp": ts, "v": "2",
                 "sign": api_sign(self.app.app_key, secret, method, pj, ts), "sign_method": "hmac-sha256"}  # fmt: skip
        if access_token is not None:
            query["access_token"] = access_token
        answer = await call_json(self.session, "POST", self.app.api_base.rstrip("/") + method_path(method), method,
                                 self.timeout_s, params=query, data=pj.encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
        if not isinstance(answer, dict):
            raise PlatformRefused(f"{method}: answer is not an object")
        code = int(answer.get("err_no", answer.get("code", 0)) or 0)
        if code in (0, 10000):
            return answer.get("data") or {}
        if code in _TOKEN_CODES:
            raise TokenExpired(f"{method}: access token refused ({code})")
        if 50000 <= code < 60000:
            raise PlatformUnavailable(f"{method}: platform error {code}")
        raise PlatformRefused(f"{method}: error {code}: {str(answer.get('message') or answer.get('msg'))[:100]}")

    async def _token(self, shop: ShopConfig, force: bool = False) -> str:
        box = self._tokens.setdefault(shop.shop_id, TokenBox())
        async with box.lock:
            if not force and (valid := box.valid(TOKEN_MARGIN_S)):
                return valid
            old = box.token
            data: Any = None
            if old is not None and old.refresh_token:
                try:
                    data = await self._raw("token.refresh",
                                           {"grant_type": "refresh_token", "refresh_token": old.refresh_token}, None)
                except PlatformRefused:
                    data = None  # a refresh token past its life: create afresh
            if data is None:
                data = await self._raw("token.create",
                                       {"code": "", "grant_type": "authorization_self", "shop_id": shop.shop_id}, None)
            box.token = Token(str(data["access_token"]), str(data.get("refresh_token") or "") or None,
                              asyncio.get_running_loop().time() + float(data.get("expires_in") or 0))  # fmt: skip
            return box.token.access_token

    async def call(self, shop: ShopConfig, method: str, params: Mapping[str, Any]) -> Any:
        """A signed business call with the shop's token; refreshed once if refused."""
        try:
            return await self._raw(method, params, await self._token(shop))
        except TokenExpired:
            return await self._raw(method, params, await self._token(shop, force=True))

    async def refunds_of(self, shop: ShopConfig, order_id: str) -> tuple[Refund, ...]:
        out: list[Refund] = []
        page = 0
        while True:
            data = await self.call(shop, "afterSale.List", {"order_id": order_id, "page": page, "size": PAGE_SIZE})
            items = data.get("items") or []
            out += [r for _, r in filter(None, map(parse_refund, items))]
            if not data.get("has_more") or not items:
                return tuple(out)
            page += 1

    async def order(self, shop: ShopConfig, notice: Notice) -> PlatformOrder | None:
        data = await self.call(shop, "order.orderDetail", {"shop_order_id": notice.order_id})
        detail = data.get("shop_order_detail")
        if not detail:
            return None
        order = parse_order(detail, shop.shop_id)
        if notice.kind != "refunded" and not refund_hint(detail):
            return order  # no after-sale on it: one call instead of two (refunds come with tag 206 anyway)
        return _with_refunds(order, await self.refunds_of(shop, order.order_id))

    async def _pages(self, shop: ShopConfig, method: str, params: dict[str, Any], key: str) -> AsyncIterator[Any]:
        page = 0
        while True:
            data = await self.call(shop, method, {**params, "page": page, "size": PAGE_SIZE})
            items = data.get(key) or []
            if items:
                yield items
            total = int(data.get("total") or 0)
            more = data.get("has_more")
            if not items or (more is False) or (more is None and (page + 1) * PAGE_SIZE >= total):
                return
            page += 1

    async def updated(self, shop: ShopConfig, start: datetime, end: datetime) -> AsyncIterator[list[PlatformOrder]]:
        """Orders updated in [start, end): the order list by ``update_time`` ascending, page by
        page, then the orders whose refund succeeded in the window but that the list did not
        hold (their detail fetched), each with its successful refunds."""
        lo = start
        while lo < end:
            hi = min(end, lo + MAX_WINDOW)
            window = {"update_start_time": int(lo.timestamp()), "update_end_time": int(hi.timestamp())}
            refunds: dict[str, list[Refund]] = {}
            async for items in self._pages(shop, "afterSale.List", window, "items"):
                for order_id, r in filter(None, map(parse_refund, items)):
                    refunds.setdefault(order_id, []).append(r)
            params = {"update_time_start": int(lo.timestamp()), "update_time_end": int(hi.timestamp()),
                      "order_by": "update_time", "order_asc": True}  # fmt: skip
            async for items in self._pages(shop, "order.searchList", params, "shop_order_list"):
                orders = [parse_order(d, shop.shop_id) for d in items]
                yield [_with_refunds(o, tuple(refunds.pop(o.order_id, ()))) for o in orders]
            for order_id in list(refunds):
                found = await self.order(shop, Notice(NAME, shop.shop_id, order_id, "refunded", "",
                                                      datetime.now(UTC)))  # fmt: skip
                if found is not None:
                    yield [found]
            lo = hi


# The push fields kept on the raw topic for the record (ids and times, never buyer data).
_KEPT = ("order_status", "pay_amount", "pay_time", "create_time", "cancel_time", "refund_amount", "success_time",
         "aftersale_status", "update_time")  # fmt: skip


def _notice(rec: Mapping[str, Any], kind: str, now: datetime) -> Notice:
    """One counted record's Notice; raises ValueError/KeyError/TypeError when unreadable."""
    data = rec.get("data")
    data = loads(data) if isinstance(data, str) else data
    if not isinstance(data, dict):
        raise ValueError("data is not a JSON object")
    refund = data.get("aftersale_id")
    return Notice(platform=NAME, shop_id=ident(data["shop_id"]), order_id=ident(data["p_id"]), kind=kind,
                  message_id=str(rec.get("msg_id") or ""), received_at=now,
                  refund_id=None if refund in (None, "") else ident(refund), data=_flat(data))  # fmt: skip


def _flat(data: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(data[k]) for k in _KEPT if k in data and not isinstance(data[k], list | dict)}


def _with_refunds(order: PlatformOrder, refunds: Sequence[Refund]) -> PlatformOrder:
    merged = {r.refund_id: r for r in (*order.refunds, *refunds)}
    return replace(order, refunds=tuple(merged[k] for k in sorted(merged)))
