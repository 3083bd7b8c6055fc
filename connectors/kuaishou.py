"""快手 (kuaishou): everything platform-specific, with the source of each fact.

Sources (PLATFORMS.md §2): ``zsmhub/ks-sdk`` ``message/message.go`` (the envelope ``eventId``
"可用于幂等去重", ``msgId``, ``bizId``, ``userId``, ``appKey``, ``event``, ``info`` as a JSON
string, ``createTime``/``updateTime`` in ms, ``test`` for heartbeats; reply ``{"result":1}``,
else up to 3 retries), ``message/message_decrypt.go`` (body = base64 of AES-CBC, key =
base64-decoded ``msgSecret``, all-zero IV, PKCS7), ``api/api_tool.go`` (``sign`` = base64
HMAC-SHA256 keyed by ``signSecret`` over the sorted ``k=v&…`` of ``access_token appkey method
param signMethod timestamp version`` plus ``&signSecret=…``; path = method with dots as
slashes), ``api/api_client.go`` (form-encoded, ``timestamp`` in ms, ``version`` 1,
``signMethod`` HMAC_SHA256, success is ``result`` 1), ``api/api_oauth.go`` (``/oauth2/
refresh_token`` with ``app_id``, ``app_secret``, ``grant_type=refresh_token``; tokens last
48 h), ``api/订单API-订单列表.go`` (``open.order.cursor.list``: ``queryType`` 2 = update time,
ms bounds, ≤ 7 days, ``pageSize`` ≤ 100, ``cursor``), ``api/售后API-获取售单列表.go``
(``open.seller.order.refund.pcursor.list``: ≤ 1 day, ``pcursor`` until "nomore", ``orderId``
filter, ``status`` 60 退款成功, ``refundFee``), ``constant.go`` (order statuses).

Single-source or not found, kept here to fix in one place: the zero IV (1 SDK); the unit of
``totalFee`` (fen assumed, an integer); the live-room fields (``carrierType`` 1 = 直播 and
``carrierId``: NOT FOUND in the SDK, assumed); the token error codes; a refund's success
time (``updateTime`` of a refund in status 60); ``open.order.detail``'s parameter ``oid``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from connectors.config import AppConfig, ShopConfig
from connectors.model import Notice, OrderLine, PlatformOrder, Refund, from_millis
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
)

log = logging.getLogger(__name__)
NAME = "kuaishou"
SUCCESS = b'{"result":1}'
EVENTS = {"kwaishop_order_addOrder": "created", "kwaishop_order_paySuccess": "paid",
          "kwaishop_order_orderFail": "cancelled", "kwaishop_aftersales_addRefund": "refunded",
          "kwaishop_aftersales_updateRefund": "refunded"}  # fmt: skip
PAGE_SIZE = 100
ORDER_WINDOW = timedelta(days=7)  # "时间范围不大于7天"
REFUND_WINDOW = timedelta(days=1)  # "与开始时间的时间范围不大于1天"
NO_MORE = "nomore"
REFUND_SUCCESS = 60
LIVE_CARRIER = 1  # assumed: carrierType 1 = 直播间 (NOT FOUND)
_KEPT = ("status", "createTime", "updateTime", "refundFee", "handlingWay")  # kept on the raw topic (no buyer data)
_TOKEN_RESULTS = {24, 28}  # assumed: access_token invalid / expired
TOKEN_MARGIN_S = 600.0


def _cipher(msg_secret: str) -> Cipher[modes.CBC]:
    key = base64.b64decode(msg_secret, validate=True)
    return Cipher(algorithms.AES(key), modes.CBC(bytes(16)))


def encrypt(plain: bytes, msg_secret: str) -> bytes:
    """The platform's side (tests, fakes): base64(AES-CBC(PKCS7(plain)))."""
    padder = padding.PKCS7(128).padder()
    enc = _cipher(msg_secret).encryptor()
    return base64.b64encode(enc.update(padder.update(plain) + padder.finalize()) + enc.finalize())


def decrypt(body: bytes, msg_secret: str) -> bytes:
    """Raises ValueError for anything not encrypted with ``msg_secret``."""
    try:
        raw = base64.b64decode(body.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError("body is not base64") from exc
    if not raw or len(raw) % 16:
        raise ValueError("ciphertext length is not a multiple of the block")
    dec = _cipher(msg_secret).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(raw) + dec.finalize()) + unpadder.finalize()


def api_sign(params: Mapping[str, str], sign_secret: str) -> str:
    text = "&".join(f"{k}={params[k]}" for k in sorted(params)) + f"&signSecret={sign_secret}"
    return base64.b64encode(hmac.new(sign_secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def method_path(method: str) -> str:
    return "/" + method.replace(".", "/")


def parse_order(d: Mapping[str, Any], shop_id: str) -> PlatformOrder:
    """An ``orderList`` entry (or ``open.order.detail``'s data); one item per order (README)."""
    base = d.get("orderBaseInfo") or {}
    item = d.get("orderItemInfo") or {}
    lines: tuple[OrderLine, ...] = ()
    if item:
        sku = ident(item.get("skuId") or item.get("itemId"))
        name = str(item.get("itemTitle") or "商品")
        lines = (OrderLine(sku, name, int(item.get("num") or 1), fen(item.get("price", 0))),)
    room = None
    if int(base.get("carrierType") or 0) == LIVE_CARRIER and base.get("carrierId") not in (None, "", 0):
        room = ident(base["carrierId"])
    pay = int(base.get("payTime") or 0)
    return PlatformOrder(
        order_id=ident(base["oid"]), shop_id=str(base.get("sellerId") or shop_id),
        created_at=from_millis(base["createTime"]), order_fen=fen(base.get("totalFee", 0)), lines=lines,
        room_id=room, paid_at=from_millis(pay) if pay else None, paid_fen=fen(base.get("totalFee", 0)) if pay else 0,
        updated_at=from_millis(base["updateTime"]) if base.get("updateTime") else None,
    )  # fmt: skip


def parse_refund(r: Mapping[str, Any]) -> tuple[str, Refund] | None:
    if int(r.get("status") or 0) != REFUND_SUCCESS:
        return None
    return ident(r["oid"]), Refund(ident(r["refundId"]), from_millis(r["updateTime"]), fen(r.get("refundFee", 0)))


def _refund_items(data: Mapping[str, Any]) -> list[Any]:
    return list(data.get("refundOrderInfoList") or data.get("dataList") or [])


def _notice(envelope: Mapping[str, Any], kind: str, now: datetime) -> Notice | None:
    """The envelope's Notice, None without an order or seller; raises when unreadable."""
    info = envelope.get("info")
    info = loads(info) if isinstance(info, str) else (info or {})
    if not isinstance(info, dict):
        raise ValueError("info is not a JSON object")
    order_id = info.get("oid") or info.get("orderId") or (envelope.get("bizId") if kind != "refunded" else None)
    shop_id = envelope.get("userId") or info.get("sellerId")
    if order_id in (None, "") or shop_id in (None, ""):
        return None
    refund = info.get("refundId")
    return Notice(platform=NAME, shop_id=ident(shop_id), order_id=ident(order_id), kind=kind,
                  message_id=str(envelope.get("eventId") or envelope.get("msgId") or ""), received_at=now,
                  refund_id=None if refund in (None, "") else ident(refund),
                  data={k: str(info[k]) for k in _KEPT if k in info})  # fmt: skip


class Kuaishou:
    """The :class:`connectors.platform.Platform` of 快手."""

    name = NAME
    success_body = SUCCESS

    def verify(self, apps: Sequence[AppConfig], headers: Mapping[str, str], body: bytes, now: datetime) -> PushBatch:
        envelope: Any = None
        app: AppConfig | None = None
        for candidate in apps:
            secret = candidate.msg_secret.get_secret_value() if candidate.msg_secret else ""
            try:
                envelope = loads(decrypt(body, secret))
            except (ValueError, binascii.Error):
                continue
            if isinstance(envelope, dict) and str(envelope.get("appKey") or candidate.app_key) == candidate.app_key:
                app = candidate
                break
        if app is None or not isinstance(envelope, dict):
            raise PushRejected(NAME, apps[0].app_key if len(apps) == 1 else None, "push does not decrypt")
        if envelope.get("test"):
            return PushBatch(app, (), activation=True)
        kind = EVENTS.get(str(envelope.get("event")))
        if kind is None:
            return PushBatch(app, ())
        try:
            notice = _notice(envelope, kind, now)
        except (ValueError, TypeError, KeyError) as exc:  # decrypted but unreadable: nothing to count
            log.warning("快手 push %s skipped: %s", str(envelope.get("eventId"))[:80], exc)
            return PushBatch(app, ())
        if notice is None:
            return PushBatch(app, ())
        return PushBatch(app, (notice,))

    def api(self, app: AppConfig, session: aiohttp.ClientSession, timeout_s: float) -> KuaishouApi:
        return KuaishouApi(app, session, timeout_s)


class KuaishouApi:
    """One 快手 app's API: signed form calls, each shop's token refreshed here from the
    refresh token of its authorisation (the newest one kept in memory)."""

    def __init__(self, app: AppConfig, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self.app, self.session, self.timeout_s = app, session, timeout_s
        self._tokens: dict[str, TokenBox] = {}

    async def _token(self, shop: ShopConfig, force: bool = False) -> str:
        box = self._tokens.setdefault(shop.shop_id, TokenBox())
        async with box.lock:
            if not force and (valid := box.valid(TOKEN_MARGIN_S)):
                return valid
            refresh = box.token.refresh_token if box.token and box.token.refresh_token else None
            if refresh is None:
                refresh = shop.refresh_token.get_secret_value() if shop.refresh_token else ""
            query = {"app_id": self.app.app_key, "app_secret": self.app.app_secret.get_secret_value(),
                     "grant_type": "refresh_token", "refresh_token": refresh}  # fmt: skip
            answer = await call_json(self.session, "GET", self.app.api_base.rstrip("/") + "/oauth2/refresh_token",
                                     "oauth2.refresh_token", self.timeout_s, params=query)  # fmt: skip
            if not isinstance(answer, dict) or int(answer.get("result") or 0) != 1:
                raise PlatformRefused("oauth2.refresh_token: refused")
            box.token = Token(str(answer["access_token"]), str(answer.get("refresh_token") or refresh),
                              asyncio.get_running_loop().time() + float(answer.get("expires_in") or 0))  # fmt: skip
            return box.token.access_token

    async def _raw(self, method: str, param: Mapping[str, Any], token: str) -> Any:
        params = {"appkey": self.app.app_key, "access_token": token, "method": method, "signMethod": "HMAC_SHA256",
                  "timestamp": str(int(time.time() * 1000)), "version": "1",
                  "param": json.dumps(param, separators=(",", ":"), ensure_ascii=False)}  # fmt: skip
        secret = self.app.sign_secret.get_secret_value() if self.app.sign_secret else ""
        params["sign"] = api_sign(params, secret)
        answer = await call_json(self.session, "POST", self.app.api_base.rstrip("/") + method_path(method), method,
                                 self.timeout_s, data=params)  # fmt: skip
        if not isinstance(answer, dict):
            raise PlatformRefused(f"{method}: answer is not an object")
        result = int(answer.get("result") or 0)
        if result == 1:
            return answer.get("data") or {}
        if result in _TOKEN_RESULTS:
            raise TokenExpired(f"{method}: access token refused ({result})")
        if str(answer.get("code") or "").startswith("5"):
            raise PlatformUnavailable(f"{method}: platform error {answer.get('code')}")
        raise PlatformRefused(f"{method}: result {result}: {str(answer.get('error_msg') or '')[:100]}")

    async def call(self, shop: ShopConfig, method: str, param: Mapping[str, Any]) -> Any:
        try:
            return await self._raw(method, param, await self._token(shop))
        except TokenExpired:
            return await self._raw(method, param, await self._token(shop, force=True))

    async def _refund_pages(self, shop: ShopConfig, param: dict[str, Any]) -> AsyncIterator[list[Any]]:
        cursor = ""
        while True:
            data = await self.call(shop, "open.seller.order.refund.pcursor.list",
                                   {**param, "type": 9, "pageSize": PAGE_SIZE, "pcursor": cursor})  # fmt: skip
            items = _refund_items(data)
            if items:
                yield items
            cursor = str(data.get("pcursor") or NO_MORE)
            if cursor == NO_MORE or not items:
                return

    async def order(self, shop: ShopConfig, notice: Notice) -> PlatformOrder | None:
        data = await self.call(shop, "open.order.detail", {"oid": _id_param(notice.order_id)})
        if not data or not data.get("orderBaseInfo"):
            return None
        order = parse_order(data, shop.shop_id)
        if notice.kind != "refunded" and not data.get("orderRefundList"):
            return order  # "订单退款信息，返回最新的一个": none, so no refund to list
        refunds = [r async for page in self._refund_pages(shop, {"orderId": _id_param(order.order_id)})
                   for _, r in filter(None, map(parse_refund, page))]  # fmt: skip
        return _with_refunds(order, refunds)

    async def updated(self, shop: ShopConfig, start: datetime, end: datetime) -> AsyncIterator[list[PlatformOrder]]:
        """Refunds that succeeded in the window (day by day), then orders updated in it (by
        cursor, 7 days at most a call), then the refunded orders the list did not hold."""
        refunds: dict[str, list[Refund]] = {}
        lo = start
        while lo < end:
            hi = min(end, lo + REFUND_WINDOW)
            window = {"beginTime": _ms(lo), "endTime": _ms(hi), "queryType": 2, "sort": 2}
            async for page in self._refund_pages(shop, window):
                for order_id, r in filter(None, map(parse_refund, page)):
                    refunds.setdefault(order_id, []).append(r)
            lo = hi
        lo = start
        while lo < end:
            hi = min(end, lo + ORDER_WINDOW)
            cursor = ""
            while True:
                data = await self.call(shop, "open.order.cursor.list",
                                       {"queryType": 2, "beginTime": _ms(lo), "endTime": _ms(hi), "cpsType": 0,
                                        "pageSize": PAGE_SIZE, "sort": 1, "cursor": cursor})  # fmt: skip
                items = data.get("orderList") or []
                if items:
                    orders = [parse_order(d, shop.shop_id) for d in items]
                    yield [_with_refunds(o, refunds.pop(o.order_id, ())) for o in orders]
                cursor = str(data.get("cursor") or NO_MORE)
                if cursor == NO_MORE or not items:
                    break
            lo = hi
        for order_id in list(refunds):
            found = await self.order(shop, Notice(NAME, shop.shop_id, order_id, "refunded", "", datetime.now(UTC)))
            if found is not None:
                yield [found]


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _id_param(order_id: str) -> int | str:
    """快手 ids are int64 in the API's JSON: sent as a JSON integer (exact in Python)."""
    return int(order_id) if order_id.isdigit() else order_id


def _with_refunds(order: PlatformOrder, refunds: Sequence[Refund]) -> PlatformOrder:
    merged = {r.refund_id: r for r in (*order.refunds, *refunds)}
    return replace(order, refunds=tuple(merged[k] for k in sorted(merged)))
