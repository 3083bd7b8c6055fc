"""A fake 快手 open platform: the push sender and the API, in the formats
connectors/kuaishou.py cites (PLATFORMS.md §2), checked as strictly as the platform would.

Pushes: the envelope ``{eventId, msgId, bizId, userId, appKey, event, info, createTime,
updateTime, test}`` AES-CBC encrypted with ``msgSecret`` (zero IV, PKCS7) and base64'd.
API: form posts to ``/open/…`` with ``appkey access_token method param signMethod timestamp
version sign`` (base64 HMAC-SHA256 over the sorted pairs and ``&signSecret=``), checked;
``/oauth2/refresh_token`` rotates refresh tokens; ``open.order.cursor.list`` (≤ 7 days,
``pageSize`` ≤ 100, cursor until "nomore"), ``open.seller.order.refund.pcursor.list`` (≤ 1
day, pcursor), ``open.order.detail``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from connectors.kuaishou import encrypt
from localplatforms.platform import FakeOrder, FakePlatform, FakeRefund

EVENTS = {"created": "kwaishop_order_addOrder", "paid": "kwaishop_order_paySuccess",
          "cancelled": "kwaishop_order_orderFail", "refunded": "kwaishop_aftersales_updateRefund"}  # fmt: skip
DAY_MS = 86_400_000


def _ms(t: datetime | None) -> int:
    return int(t.timestamp() * 1000) if t else 0


def _id(v: str) -> int | str:
    return int(v) if v.isdigit() else v


class FakeKuaishou(FakePlatform):
    def __init__(
        self,
        app_key: str = "ks-app",
        app_secret: str = "ks-secret",  # noqa: S107 - the fake's own test secret
        sign_secret: str = "ks-sign",  # noqa: S107
        msg_secret: str | None = None,
        refresh_token: str = "ks-refresh",  # noqa: S107
        seed: int = 1,
    ) -> None:
        super().__init__(seed)
        self.app_key, self.app_secret, self.sign_secret = app_key, app_secret, sign_secret
        self.msg_secret = msg_secret or base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
        self.refresh_tokens = {refresh_token}  # valid refresh tokens (rotated on use)
        self.tokens: dict[str, float] = {}
        self.token_ttl_s = 172_800
        self.bad_signs = 0

    def push(self, order: FakeOrder, kind: str, refund: FakeRefund | None = None) -> None:
        info: dict[str, Any] = {"oid": _id(order.order_id), "sellerId": int(order.shop_id)}
        if kind == "created":
            info |= {"createTime": _ms(order.created_at), "buyerOpenId": "b"}
        elif kind == "paid":
            info |= {"status": 30, "updateTime": _ms(order.paid_at)}
        elif refund is not None:
            info = {"orderId": _id(order.order_id), "refundId": _id(refund.refund_id), "handlingWay": 10,
                    "status": 60, "updateTime": _ms(refund.success_at), "sellerId": int(order.shop_id)}  # fmt: skip
        now = int(time.time() * 1000)
        self.outbox.append({"eventId": uuid.uuid4().hex, "msgId": uuid.uuid4().hex, "bizId": _id(order.order_id),
                            "userId": int(order.shop_id), "openId": "o", "appKey": self.app_key,
                            "event": EVENTS[kind], "info": json.dumps(info), "createTime": now, "updateTime": now,
                            "test": False})  # fmt: skip

    def seal(self, envelope: dict[str, Any]) -> bytes:
        return encrypt(json.dumps(envelope).encode(), self.msg_secret)

    async def send_pushes(self, url: str) -> int:
        ok = 0
        async with aiohttp.ClientSession() as session:
            for envelope in self.take_outbox():
                ok += await self.post(session, url, self.seal(envelope), {"Content-Type": "text/plain"}) == 200
        return ok

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def detail(self, o: FakeOrder) -> dict[str, Any]:
        sku, name, q, p = o.items[0]  # "一个订单只会有一个商品"
        status = 80 if o.cancelled_at and not o.paid_at else (30 if o.paid_at else 10)
        return {"orderBaseInfo": {"oid": _id(o.order_id), "sellerId": int(o.shop_id), "status": status,
                                  "totalFee": q * p, "payTime": _ms(o.paid_at), "createTime": _ms(o.created_at),
                                  "updateTime": _ms(o.updated_at), "carrierType": 1 if o.room_id else 0,
                                  "carrierId": _id(o.room_id) if o.room_id else 0},
                "orderItemInfo": {"skuId": _id(sku), "itemTitle": name, "num": q, "price": p},
                "orderRefundList": [{"refundId": _id(r.refund_id), "refundStatus": 60, "handlingWay": 10}
                                    for r in o.refunds[-1:]]}  # fmt: skip

    @staticmethod
    def refund_info(o: FakeOrder, r: FakeRefund) -> dict[str, Any]:
        return {"refundId": _id(r.refund_id), "oid": _id(o.order_id), "refundFee": r.amount_fen, "status": 60,
                "updateTime": _ms(r.success_at), "sellerId": int(o.shop_id), "handlingWay": 10}  # fmt: skip

    @staticmethod
    def _err(result: int, msg: str) -> web.Response:
        return web.json_response({"result": result, "error_msg": msg, "code": str(result)})

    def routes(self) -> web.RouteTableDef:
        routes = web.RouteTableDef()

        @routes.get("/oauth2/refresh_token")
        async def refresh(request: web.Request) -> web.Response:
            faulty = await self.guard()
            if faulty is not None:
                return faulty
            q = request.query
            self.calls["oauth2.refresh_token"] += 1
            if q.get("app_id") != self.app_key or q.get("app_secret") != self.app_secret \
                    or q.get("refresh_token") not in self.refresh_tokens:  # fmt: skip
                return web.json_response({"result": 0, "error": "invalid_grant", "error_msg": "refresh_token无效"})
            self.refresh_tokens.discard(q["refresh_token"])
            token, new_refresh = secrets.token_hex(8), secrets.token_hex(8)
            self.refresh_tokens.add(new_refresh)
            self.tokens[token] = time.monotonic() + self.token_ttl_s
            return web.json_response({"result": 1, "access_token": token, "refresh_token": new_refresh,
                                      "expires_in": self.token_ttl_s})  # fmt: skip

        @routes.post("/open/{rest:.+}")
        async def call(request: web.Request) -> web.Response:
            faulty = await self.guard()
            if faulty is not None:
                return faulty
            form = {k: str(v) for k, v in (await request.post()).items()}
            method = "open." + request.match_info["rest"].replace("/", ".")
            self.calls[method] += 1
            given = form.pop("sign", "")
            text = "&".join(f"{k}={form[k]}" for k in sorted(form)) + f"&signSecret={self.sign_secret}"
            digest = hmac.new(self.sign_secret.encode(), text.encode(), hashlib.sha256).digest()
            want = base64.b64encode(digest).decode()
            if form.get("appkey") != self.app_key or form.get("method") != method \
                    or not hmac.compare_digest(want, given):  # fmt: skip
                self.bad_signs += 1
                return self._err(12, "签名错误")
            if time.monotonic() >= self.tokens.get(form.get("access_token", ""), 0.0):
                return self._err(28, "access_token过期")
            return self._business(method, json.loads(form.get("param") or "{}"))

        return routes

    def _business(self, method: str, p: dict[str, Any]) -> web.Response:
        def ok(data: Any) -> web.Response:
            return web.json_response({"result": 1, "data": data})

        if method == "open.order.detail":
            o = self.orders.get(str(p.get("oid")))
            return ok(self.detail(o)) if o else self._err(40, "订单不存在")
        size = int(p.get("pageSize", 10))
        if size > 100:
            return self._err(40, "pageSize 最大100")
        if method == "open.order.cursor.list":
            lo, hi = int(p["beginTime"]), int(p["endTime"])
            if hi - lo > 7 * DAY_MS or lo < _ms(datetime.now(UTC) - timedelta(days=90)):
                return self._err(40, "时间范围不大于7天，不能小于90天前")
            self.windows.append((method, "", lo, hi))
            found = sorted((o for o in self.orders.values() if lo <= _ms(o.updated_at) <= hi),
                           key=lambda o: (o.updated_at, o.order_id))  # fmt: skip
            start = int(p.get("cursor") or 0)
            page = found[start : start + size]
            cursor = str(start + size) if start + size < len(found) else "nomore"
            return ok({"cursor": cursor, "orderList": [self.detail(o) for o in page], "pageSize": size})
        if method == "open.seller.order.refund.pcursor.list":
            if "orderId" in p:
                pairs = [(o, r) for o in self.orders.values() if o.order_id == str(p["orderId"]) for r in o.refunds]
            else:
                lo, hi = int(p["beginTime"]), int(p["endTime"])
                if hi - lo > DAY_MS:
                    return self._err(40, "时间范围不大于1天")
                self.windows.append((method, "", lo, hi))
                pairs = [(o, r) for o in self.orders.values() for r in o.refunds if lo <= _ms(r.updated_at) <= hi]
            start = int(p.get("pcursor") or 0)
            refunds = pairs[start : start + size]
            cursor = str(start + size) if start + size < len(pairs) else "nomore"
            return ok({"pcursor": cursor, "refundOrderInfoList": [self.refund_info(o, r) for o, r in refunds]})
        return self._err(40, "unknown method")
