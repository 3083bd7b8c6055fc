"""The connectors' pure parts: money, signatures and encryption, push parsing, mapping, config."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import connectors.douyin as douyin_module
import connectors.kuaishou as kuaishou_module
from connectors.config import load_connectors, parse_connectors
from connectors.douyin import Douyin, api_sign, parse_order, push_sign
from connectors.events import StaticRooms, event_id, order_steps
from connectors.kuaishou import Kuaishou, decrypt, encrypt
from connectors.model import Notice, OrderLine, PlatformOrder, Refund
from connectors.money import MoneyError, fen, fen_to_yuan, ident, loads, yuan_to_fen
from connectors.platform import PushRejected
from connectors.receiver import RateLimit
from ground.config_errors import ConfigError

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BIG = "6917532451239876543"  # > 2^53: a float would round it


def app_dict(**over: Any) -> dict[str, Any]:
    base = {"platform": "douyin", "app_key": "k", "app_secret": "s", "api_base": "http://x",
            "shops": [{"shop_id": "1", "merchant_id": "m1", "region": {"district": "宁海县"}}]}  # fmt: skip
    return base | over


APP = parse_connectors({"connectors": [app_dict()]}, "t").connectors[0]


# -- money ------------------------------------------------------------------------------
@pytest.mark.parametrize(("yuan", "want"), [
    ("0.07", 7), ("12.3", 1230), ("12", 1200), ("19.99", 1999), ("0.29", 29), ("1.15", 115), ("0", 0),
    (" 8.10 ", 810), (Decimal("12.300"), 1230), (Decimal("0.1"), 10), (5, 500), ("10000000000", 10**12),
])  # fmt: skip
def test_yuan_strings_convert_to_fen_exactly(yuan: Any, want: int) -> None:
    assert yuan_to_fen(yuan) == want


@pytest.mark.parametrize("bad", ["1.234", "-1", "1e3", "", "12.", ".5", "NaN", "一元", True, "10000000000.01",
                                 Decimal("1.005")])  # fmt: skip
def test_what_is_not_exact_money_is_refused(bad: Any) -> None:
    with pytest.raises(MoneyError):
        yuan_to_fen(bad)


def test_fen_accepts_integers_and_digit_strings_only() -> None:
    assert fen(1990) == 1990 and fen("1990") == 1990 and fen(Decimal("12")) == 12
    for bad in (12.5, Decimal("0.5"), -1, "1.5", True, 10**12 + 1, None):
        with pytest.raises(MoneyError):
            fen(bad)
    assert fen_to_yuan(1230) == "12.30" and fen_to_yuan(7) == "0.07"


def test_big_ids_and_fractions_never_pass_through_floats() -> None:
    parsed = loads(f'{{"p_id": {BIG}, "amount": 0.1}}')
    assert ident(parsed["p_id"]) == BIG
    assert parsed["amount"] == Decimal("0.1")
    with pytest.raises(ValueError):
        ident(6.9e18)


# -- 抖店 pushes and API signing ------------------------------------------------------------
def douyin_body(*records: dict[str, Any]) -> bytes:
    return json.dumps(list(records)).encode()


def signed(body: bytes, secret: str = "s") -> dict[str, str]:  # noqa: S107 - the test app's secret
    return {"app-id": "k", "event-sign": hashlib.md5(b"k" + body + secret.encode(), usedforsecurity=False).hexdigest()}


def test_douyin_event_sign_is_md5_of_key_body_secret() -> None:
    body = b'[{"tag":"100"}]'
    assert push_sign("k", body, "s") == hashlib.md5(b"k" + body + b"s", usedforsecurity=False).hexdigest()


def test_douyin_push_is_checked_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(douyin_module.hmac, "compare_digest", spy)
    body = douyin_body({"tag": "0", "msg_id": "0", "data": "2020-09-10T16:27:56+08:00"})
    assert Douyin().verify((APP,), signed(body), body, NOW).activation
    assert len(seen) == 1


@pytest.mark.parametrize("headers", [{}, {"app-id": "k"}, {"app-id": "k", "event-sign": "0" * 32},
                                     {"app-id": "other", "event-sign": "x"}])  # fmt: skip
def test_a_bad_or_missing_douyin_signature_is_rejected(headers: dict[str, str]) -> None:
    body = douyin_body({"tag": "0", "msg_id": "0", "data": "x"})
    with pytest.raises(PushRejected):
        Douyin().verify((APP,), headers, body, NOW)
    with pytest.raises(PushRejected):  # signed with another secret
        Douyin().verify((APP,), signed(body, "wrong"), body, NOW)


def test_douyin_tags_become_notices_with_exact_ids() -> None:
    records = [
        {"tag": "100", "msg_id": "a", "data": f'{{"p_id":{BIG},"shop_id":1,"create_time":1}}'},
        {"tag": "101", "msg_id": "b", "data": f'{{"p_id":{BIG},"shop_id":1,"pay_amount":1990}}'},
        {"tag": "106", "msg_id": "c", "data": f'{{"p_id":{BIG},"shop_id":1}}'},
        {"tag": "206", "msg_id": "d", "data": f'{{"p_id":{BIG},"shop_id":1,"aftersale_id":7000000000000000001}}'},
        {"tag": "102", "msg_id": "e", "data": f'{{"p_id":{BIG},"shop_id":1}}'},  # shipped: not counted
    ]
    body = douyin_body(*records)
    batch = Douyin().verify((APP,), signed(body), body, NOW)
    assert [(n.kind, n.order_id, n.message_id) for n in batch.notices] == [
        ("created", BIG, "a"), ("paid", BIG, "b"), ("cancelled", BIG, "c"), ("refunded", BIG, "d")]
    assert batch.notices[3].refund_id == "7000000000000000001"
    again = Notice.decode(batch.notices[3].encode())
    assert again == batch.notices[3]


def test_douyin_api_sign_is_hmac_sha256_over_the_documented_string() -> None:
    pj = '{"page":0,"size":100}'
    text = f"sapp_keykmethodorder.searchListparam_json{pj}timestamp2026-05-01 20:00:00v2s"
    assert api_sign("k", "s", "order.searchList", pj, "2026-05-01 20:00:00") == hmac.new(
        b"s", text.encode(), hashlib.sha256).hexdigest()


# -- 快手 pushes and API signing ------------------------------------------------------------
KS_KEY = base64.b64encode(bytes(range(32))).decode()
KS_APP = parse_connectors({"connectors": [app_dict(platform="kuaishou", sign_secret="g", msg_secret=KS_KEY,  # noqa: S106
    shops=[{"shop_id": "1", "merchant_id": "m", "region": {"district": "d"}, "refresh_token": "r"}])]}, "t"
).connectors[0]  # fmt: skip


def test_kuaishou_body_decrypts_with_a_zero_iv_and_pkcs7() -> None:
    plain = b'{"eventId":"e1"}'
    sealed = encrypt(plain, KS_KEY)
    assert decrypt(sealed, KS_KEY) == plain
    key = base64.b64decode(KS_KEY)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    raw = base64.b64decode(sealed)
    dec = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    padded = dec.update(raw) + dec.finalize()
    assert padded[: len(plain)] == plain and set(padded[len(plain) :]) == {16 - len(plain) % 16}


def test_kuaishou_push_envelope_and_test_message() -> None:
    env = {"eventId": "e1", "bizId": int(BIG), "userId": 1, "appKey": "k", "event": "kwaishop_order_paySuccess",
           "info": json.dumps({"oid": int(BIG), "sellerId": 1, "status": 30}), "test": False}  # fmt: skip
    batch = Kuaishou().verify((KS_APP,), {}, encrypt(json.dumps(env).encode(), KS_KEY), NOW)
    (notice,) = batch.notices
    assert (notice.kind, notice.order_id, notice.shop_id, notice.message_id) == ("paid", BIG, "1", "e1")
    heartbeat = Kuaishou().verify((KS_APP,), {}, encrypt(b'{"test":true}', KS_KEY), NOW)
    assert heartbeat.activation and not heartbeat.notices


@pytest.mark.parametrize("body", [b"", b"not base64!", base64.b64encode(b"0123456789abcdef"),
                                  encrypt(b"{}", base64.b64encode(bytes(32)).decode())])  # fmt: skip
def test_a_kuaishou_push_that_does_not_decrypt_is_rejected(body: bytes) -> None:
    with pytest.raises(PushRejected):
        Kuaishou().verify((KS_APP,), {}, body, NOW)


def test_kuaishou_api_sign_is_base64_hmac_over_sorted_pairs() -> None:
    params = {"method": "open.order.cursor.list", "appkey": "k", "access_token": "t", "param": "{}",
              "signMethod": "HMAC_SHA256", "timestamp": "1", "version": "1"}  # fmt: skip
    text = "access_token=t&appkey=k&method=open.order.cursor.list&param={}&signMethod=HMAC_SHA256&timestamp=1" \
           "&version=1&signSecret=g"  # fmt: skip
    want = base64.b64encode(hmac.new(b"g", text.encode(), hashlib.sha256).digest()).decode()
    assert kuaishou_module.api_sign(params, "g") == want


# -- mapping ----------------------------------------------------------------------------
ORDER = PlatformOrder(
    order_id=BIG, shop_id="1", created_at=NOW, order_fen=3980, room_id="r1",
    lines=(OrderLine("sku1", "蛏子", 2, 1990),), paid_at=NOW + timedelta(minutes=1), paid_fen=3980,
    refunds=(Refund("rf1", NOW + timedelta(hours=1), 1990), Refund("rf2", NOW + timedelta(hours=2), 990)),
)  # fmt: skip


async def test_an_order_becomes_created_paid_and_one_refunded_per_refund() -> None:
    steps, problems = await order_steps(ORDER, APP, APP.shops[0], StaticRooms({("douyin", "r1"): "ch"}), NOW)
    assert not problems
    events = [json.loads(s.value) for s in steps]
    assert [e["event_id"] for e in events] == [f"douyin:{BIG}:created", f"douyin:{BIG}:paid",
                                               f"douyin:{BIG}:refunded:rf1", f"douyin:{BIG}:refunded:rf2"]
    assert [(e["status"], e["amount_fen"], e["occurred_at"]) for e in events] == [
        ("created", 3980, "2026-05-01T12:00:00.000Z"), ("paid", 3980, "2026-05-01T12:01:00.000Z"),
        ("refunded", 1990, "2026-05-01T13:00:00.000Z"), ("refunded", 990, "2026-05-01T14:00:00.000Z")]
    assert events[2]["refund_id"] == "rf1" and "refund_id" not in events[1]
    assert {e["channel_id"] for e in events} == {"ch"}
    assert events[0]["order_id"] == BIG and events[0]["merchant_id"] == "m1"
    assert events[0]["region"] == {"district": "宁海县"}
    assert event_id("douyin", BIG, "paid") == f"douyin:{BIG}:paid"


async def test_rooms_unregistered_and_orders_outside_live() -> None:
    rooms = StaticRooms()
    steps, _ = await order_steps(ORDER, APP, APP.shops[0], rooms, NOW)
    assert {json.loads(s.value)["channel_id"] for s in steps} == {"douyin-room-r1"}
    off_live = replace(ORDER, room_id=None)
    assert (await order_steps(off_live, APP, APP.shops[0], rooms, NOW))[0] == []  # live_only (default)
    shop = APP.shops[0].model_copy(update={"live_only": False})
    steps, _ = await order_steps(off_live, APP, shop, rooms, NOW)
    assert {json.loads(s.value)["channel_id"] for s in steps} == {"douyin-shop-1"}


async def test_an_event_the_service_would_refuse_is_not_published() -> None:
    future = replace(ORDER, refunds=(), paid_at=None, created_at=NOW + timedelta(days=3))
    steps, problems = await order_steps(future, APP, APP.shops[0], StaticRooms(), NOW)
    assert steps == [] and problems and "timestamp_out_of_range" in problems[0]


def test_a_douyin_list_entry_maps_with_its_live_room() -> None:
    entry = loads(f'{{"order_id": {BIG}, "shop_id": 1, "order_status": 105, "pay_amount": 3980, "order_amount": 3980,'
                  ' "create_time": 1714564800, "pay_time": 1714564860, "update_time": 1714564900,'
                  ' "sku_order_list": [{"order_id": 1, "sku_id": 55, "product_name": "蛏子", "item_num": 2,'
                  ' "pay_amount": 3980, "room_id": 7001, "theme_type": 1}]}')  # fmt: skip
    o = parse_order(entry, "1")
    assert (o.order_id, o.room_id, o.paid_fen, o.lines) == (BIG, "7001", 3980, (OrderLine("55", "蛏子", 2, 1990),))
    unpaid = parse_order({**entry, "order_status": 1, "pay_time": 0}, "1")
    assert unpaid.paid_at is None and unpaid.paid_fen == 0


# -- config -----------------------------------------------------------------------------
def test_the_connectors_file_takes_secrets_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DY_SECRET", "from-env")
    path = tmp_path / "c.json"
    app = app_dict()
    del app["app_secret"]
    path.write_text(json.dumps({"connectors": [app | {"app_secret_env": "DY_SECRET"}]}))
    config = load_connectors(path)
    assert config.connectors[0].app_secret.get_secret_value() == "from-env"
    assert "from-env" not in repr(config) and config.connectors[0].shops[0].live_only is True


@pytest.mark.parametrize(("content", "names"), [
    ("{", "not valid JSON"),
    ("[]", "expected a JSON object"),
    (json.dumps({"connectors": [app_dict(platform="jd")]}), "connectors[0].platform"),
    (json.dumps({"connectors": [app_dict(shops=[{"shop_id": "1", "merchant_id": "m"}])]}),
     "connectors[0].shops[0].region"),
    (json.dumps({"connectors": [app_dict(shops=[{"shop_id": "1", "merchant_id": "m", "region": {"district": "d"},
                                                 "live_onyl": False}])]}), "connectors[0].shops[0].live_onyl"),
    (json.dumps({"connectors": [app_dict(app_secret_env="NOT_SET_ANYWHERE")]}),  # noqa: S106
     "app_secret or app_secret_env"),
    (json.dumps({"connectors": [app_dict(platform="kuaishou")]}), "sign_secret"),
    (json.dumps({"connectors": [app_dict(api_base="ftp://x")]}), "connectors[0].api_base"),
])  # fmt: skip
def test_a_bad_connectors_file_is_one_line_naming_file_and_field(tmp_path: Path, content: str, names: str) -> None:
    path = tmp_path / "connectors.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_connectors(path)
    line = info.value.line
    assert "\n" not in line and str(path) in line and names in line, line


def test_a_missing_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"LIVESALES_CONNECTORS_FILE=/nowhere/c\.json: cannot read"):
        load_connectors("/nowhere/c.json")


def test_rate_limit_per_source_refills() -> None:
    limit = RateLimit(rate=1.0, burst=2.0, max_sources=2)
    assert limit.allow("a", 0.0) and limit.allow("a", 0.0) and not limit.allow("a", 0.0)
    assert limit.allow("b", 0.0)  # another address has its own bucket
    assert limit.allow("a", 1.5)  # refilled


def test_an_unexpected_error_is_reported_without_its_text() -> None:
    from connectors.platform import unexpected

    try:
        raise RuntimeError("POST https://openapi?access_token=t0ken&sign=abc failed")
    except RuntimeError as exc:
        said = unexpected(exc)
    assert said.startswith("RuntimeError at test_units.py:") and "t0ken" not in said


def test_a_signed_but_unreadable_record_is_skipped_not_a_500() -> None:
    body = douyin_body({"tag": "101", "msg_id": "bad", "data": "{not json"},
                       {"tag": "101", "msg_id": "noid", "data": '{"shop_id":1}'},
                       {"tag": "101", "msg_id": "ok", "data": f'{{"p_id":{BIG},"shop_id":1}}'}, "junk")
    batch = Douyin().verify((APP,), signed(body), body, NOW)
    assert [n.message_id for n in batch.notices] == ["ok"]
    env = {"eventId": "e", "userId": 1, "appKey": "k", "event": "kwaishop_order_paySuccess", "info": "{nope"}
    assert Kuaishou().verify((KS_APP,), {}, encrypt(json.dumps(env).encode(), KS_KEY), NOW).notices == ()


def test_the_check_tool_says_a_bad_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connectors.check import main

    path = tmp_path / "c.json"
    path.write_text("{")
    assert main(["--file", str(path), "--dsn", "chdb:///nowhere", "--platform", "douyin", "--shop", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"LIVESALES_CONNECTORS_FILE={path}: not valid JSON" in err
