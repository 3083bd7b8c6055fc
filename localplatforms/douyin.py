"""A fake 抖店 open platform: the push sender and the API, in the formats connectors/douyin.py
cites (PLATFORMS.md §1), checked as strictly as the platform would.

Pushes: a JSON array of ``{tag, msg_id, data}`` (``data`` a JSON string, ``p_id`` a JSON
number beyond 2^53), headers ``app-id`` and ``event-sign`` = md5(app_key + body + secret).
API: ``POST /<a>/<b>?app_key&method&timestamp&v=2&sign&sign_method&access_token`` with the
``param_json`` as body; the HMAC-SHA256 ``sign`` and the shop's token are checked;
``token.create``/``token.refresh`` issue tokens that :meth:`expire_tokens` can age;
``order.searchList`` pages (``size`` ≤ 100, ``page`` from 0) by ``update_time``;
``afterSale.List`` by order or by update time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from localplatforms.platform import FakeOrder, FakePlatform, FakeRefund

TAGS = {"created": "100", "paid": "101", "cancelled": "106", "refunded": "206"}
MAX_WINDOW_S = 86_400


def _s(t: datetime | None) -> int:
    return int(t.timestamp()) if t else 0


def _id(order_id: str) -> int | str:
    return int(order_id) if order_id.isdigit() else order_id


class FakeDouyin(FakePlatform):
    def __init__(self, app_key: str = "dy-app", app_secret: str = "dy-secret", seed: int = 1) -> None:  # noqa: S107
        super().__init__(seed)
        self.app_key, self.app_secret = app_key, app_secret
        self.tokens: dict[str, tuple[str, float]] = {}  # access token -> (shop, expires at)
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> shop
        self.token_ttl_s = 3600
        self.bad_signs = 0

    # -- pushes -------------------------------------------------------------------------
    def push(self, order: FakeOrder, kind: str, refund: FakeRefund | None = None) -> None:
        data: dict[str, Any] = {"p_id": _id(order.order_id), "shop_id": int(order.shop_id), "s_ids": [1]}
        if kind == "created":
            data |= {"order_status": 1, "order_type": 0, "biz": 2, "create_time": _s(order.created_at)}
        elif kind == "paid":
            data |= {"order_status": 2, "pay_amount": order.value_fen, "pay_time": _s(order.paid_at), "pay_type": 1}
        elif kind == "cancelled":
            data |= {"cancel_reason": "买家取消", "cancel_time": _s(order.cancelled_at)}
        elif refund is not None:
            data |= {"aftersale_id": _id(refund.refund_id), "refund_amount": refund.amount_fen,
                     "success_time": _s(refund.success_at), "aftersale_status": 12}  # fmt: skip
        tag = TAGS[kind]
        msg_id = f"{order.order_id}::{tag}:{int(time.time())}:{secrets.token_hex(4)}"
        self.outbox.append({"tag": tag, "msg_id": msg_id, "data": json.dumps(data)})

    def signed(self, body: bytes) -> dict[str, str]:
        sign = hashlib.md5(self.app_key.encode() + body + self.app_secret.encode(), usedforsecurity=False).hexdigest()
        return {"app-id": self.app_key, "event-sign": sign, "Content-Type": "application/json"}

    async def send_pushes(self, url: str, batch: int = 1) -> int:
        """POST the outbox (faults applied) ``batch`` records at a time; how many POSTs got 200."""
        records = self.take_outbox()
        ok = 0
        async with aiohttp.ClientSession() as session:
            for i in range(0, len(records), batch):
                body = json.dumps(records[i : i + batch]).encode()
                ok += await self.post(session, url, body, self.signed(body)) == 200
        return ok

    @staticmethod
    def activation() -> bytes:
        return json.dumps([{"tag": "0", "msg_id": "0", "data": "2020-09-10T16:27:56.000+08:00"}]).encode()

    # -- API ----------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        self.tokens = {t: (shop, 0.0) for t, (shop, _) in self.tokens.items()}

    def entry(self, o: FakeOrder) -> dict[str, Any]:
        status = 4 if o.cancelled_at else (105 if o.paid_at else 1)
        skus = [
            {"order_id": f"{o.order_id}{i}", "sku_id": sku, "product_name": name, "item_num": q, "pay_amount": q * p,
             "room_id": _id(o.room_id or "0"), "theme_type": 1 if o.room_id else 0,
             "refund_status": 3 if o.refunds else 0}
            for i, (sku, name, q, p) in enumerate(o.items)
        ]  # fmt: skip
        return {"order_id": _id(o.order_id), "shop_id": int(o.shop_id), "order_status": status,
                "pay_amount": o.value_fen if o.paid_at else 0, "order_amount": o.value_fen,
                "create_time": _s(o.created_at), "pay_time": _s(o.paid_at), "update_time": _s(o.updated_at),
                "sku_order_list": skus}  # fmt: skip

    @staticmethod
    def aftersale(o: FakeOrder, r: FakeRefund) -> dict[str, Any]:
        return {"aftersale_info": {"aftersale_id": _id(r.refund_id), "refund_amount": r.amount_fen, "refund_status": 3,
                                   "success_time": _s(r.success_at), "update_time": _s(r.success_at)},
                "order_info": {"shop_order_id": _id(o.order_id)}}  # fmt: skip

    @staticmethod
    def _err(code: int, message: str) -> web.Response:
        return web.json_response({"err_no": code, "code": code, "message": message, "msg": message})

    @staticmethod
    def _ok(data: Any) -> web.Response:
        return web.json_response({"err_no": 0, "code": 10000, "message": "success", "msg": "success", "data": data})

    def _issue(self, shop: str) -> dict[str, Any]:
        token, refresh = secrets.token_hex(8), secrets.token_hex(8)
        self.tokens[token] = (shop, time.monotonic() + self.token_ttl_s)
        self.refresh_tokens[refresh] = shop
        return {"access_token": token, "refresh_token": refresh, "expires_in": self.token_ttl_s, "shop_id": shop}

    def routes(self) -> web.RouteTableDef:
        routes = web.RouteTableDef()

        @routes.post("/{a}/{b}")
        async def call(request: web.Request) -> web.Response:
            faulty = await self.guard()
            if faulty is not None:
                return faulty
            q = request.query
            body = (await request.read()).decode()
            method = f"{request.match_info['a']}.{request.match_info['b']}"
            self.calls[method] += 1
            text = (f"{self.app_secret}app_key{q.get('app_key')}method{q.get('method')}param_json{body}"
                    f"timestamp{q.get('timestamp')}v{q.get('v')}{self.app_secret}")  # fmt: skip
            want = hmac.new(self.app_secret.encode(), text.encode(), hashlib.sha256).hexdigest()
            if q.get("app_key") != self.app_key or q.get("method") != method or q.get("v") != "2" \
                    or not hmac.compare_digest(want, q.get("sign", "")):  # fmt: skip
                self.bad_signs += 1
                return self._err(40003, "签名错误")
            params = json.loads(body)
            if method == "token.create":
                return self._ok(self._issue(str(params["shop_id"])))
            if method == "token.refresh":
                shop = self.refresh_tokens.pop(params.get("refresh_token", ""), None)
                return self._ok(self._issue(shop)) if shop else self._err(30004, "refresh_token无效")
            shop, expires = self.tokens.get(q.get("access_token", ""), ("", 0.0))
            if not shop:
                return self._err(30001, "access_token无效")
            if time.monotonic() >= expires:
                return self._err(30002, "access_token已过期")
            return self._business(method, params, shop)

        return routes

    def updated_orders(self, shop: str, lo: int, hi: int) -> list[FakeOrder]:
        """The shop's orders updated in [lo, hi] (epoch seconds), by update time then id.
        A scan of every order: a subclass with an index answers big shops faster."""
        mine = (o for o in self.orders.values() if o.shop_id == shop and lo <= _s(o.updated_at) <= hi)
        return sorted(mine, key=lambda o: (o.updated_at, o.order_id))

    def updated_refunds(self, shop: str, lo: int, hi: int) -> list[tuple[FakeOrder, FakeRefund]]:
        """The shop's refunds updated in [lo, hi], in the orders' order."""
        return [(o, r) for o in self.orders.values() if o.shop_id == shop for r in o.refunds
                if lo <= _s(r.updated_at) <= hi]  # fmt: skip

    def _business(self, method: str, params: dict[str, Any], shop: str) -> web.Response:
        if method == "order.orderDetail":
            o = self.orders.get(str(params.get("shop_order_id")))
            if o is None or o.shop_id != shop:
                return self._err(40004, "订单不存在")
            return self._ok({"shop_order_detail": self.entry(o)})
        page, size = int(params.get("page", 0)), int(params.get("size", 10))
        if size > 100 or page < 0:
            return self._err(40001, "size 限制100以内")
        if method == "order.searchList":
            lo, hi = int(params["update_time_start"]), int(params["update_time_end"])
            if hi - lo > MAX_WINDOW_S:
                return self._err(40001, "时间范围过大")
            self.windows.append((method, shop, lo, hi))
            found = self.updated_orders(shop, lo, hi)
            rows = [self.entry(o) for o in found[page * size : (page + 1) * size]]
            return self._ok({"total": len(found), "page": page, "size": size, "shop_order_list": rows})
        if method == "afterSale.List":
            if "order_id" in params:
                o = self.orders.get(str(params["order_id"]))
                pairs = [(o, r) for r in o.refunds] if o is not None and o.shop_id == shop else []
            else:
                lo, hi = int(params["update_start_time"]), int(params["update_end_time"])
                if hi - lo > MAX_WINDOW_S:
                    return self._err(40001, "时间范围过大")
                self.windows.append((method, shop, lo, hi))
                pairs = self.updated_refunds(shop, lo, hi)
            items = [self.aftersale(o, r) for o, r in pairs[page * size : (page + 1) * size]]
            return self._ok({"items": items, "total": len(pairs), "has_more": (page + 1) * size < len(pairs)})
        return self._err(40002, "unknown method")
