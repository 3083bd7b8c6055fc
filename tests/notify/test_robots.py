"""Payloads and signatures, checked by the fake robots as the real services check them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import aiohttp
import orjson
import pytest
from yarl import URL

from notify.messages import Message, MessageConfig, render
from notify.robots import build, dingtalk_sign, feishu_sign, outcome, post
from tests.notify.samples import robot, transition
from tests.support.fake_robots import FakeRobots

MSG = render(transition("firing"), MessageConfig("https://sales.example.cn"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeRobots]:
    async with FakeRobots(hang_s=5.0) as f:
        yield f


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as s:
        yield s


def test_dingtalk_signature_is_the_documented_one() -> None:
    secret, ts = "SEC0123456789", 1_700_000_000_000
    expected = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest())
    sign = dingtalk_sign(secret, ts)
    assert unquote_plus(sign) == expected.decode()
    assert "+" not in sign and "/" not in sign and "=" not in sign  # URL-encoded


def test_feishu_signature_uses_the_string_as_key_over_nothing() -> None:
    secret, ts = "s3cret", 1_700_000_000
    key = f"{ts}\n{secret}".encode()
    assert feishu_sign(secret, ts) == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def test_payloads_per_kind() -> None:
    now = 1_700_000_000.5
    d = build(robot("dingtalk", "https://h/robot/send?access_token=t", "sec"), MSG, now)
    assert d.url.startswith("https://h/robot/send?access_token=t&timestamp=1700000000500&sign=")
    body = orjson.loads(d.body)
    assert body["msgtype"] == "markdown" and body["markdown"]["title"] == MSG.title
    assert "#### 【告警】" in body["markdown"]["text"] and "[查看直播大屏](https://sales" in body["markdown"]["text"]
    w = orjson.loads(build(robot("wecom", "https://h/cgi-bin/webhook/send?key=k"), MSG, now).body)
    assert w["msgtype"] == "markdown" and "> **告警**：无成交" in w["markdown"]["content"]
    f = orjson.loads(build(robot("feishu", "https://h/hook/x", "sec"), MSG, now).body)
    assert f["timestamp"] == "1700000000" and f["sign"] == feishu_sign("sec", 1_700_000_000)
    post_ = f["content"]["post"]["zh_cn"]
    assert post_["title"] == MSG.title and post_["content"][-1] == [
        {"tag": "a", "text": "查看直播大屏", "href": MSG.link}
    ]
    unsigned = orjson.loads(build(robot("feishu", "https://h/hook/x"), MSG, now).body)
    assert "sign" not in unsigned and "timestamp" not in unsigned


def test_wecom_content_fits_its_4096_bytes() -> None:
    long = Message("【告警】标题", tuple(("详情", "很长" * 400) for _ in range(5)), "查看直播大屏", "https://x")
    content = orjson.loads(build(robot("wecom", "https://h/?key=k"), long, 0).body)["markdown"]["content"]
    assert len(content.encode()) <= 4096 and content.startswith("### 【告警】标题") and content.endswith("(https://x)")


def test_success_and_rate_limits_per_kind() -> None:
    assert outcome("dingtalk", 200, {"errcode": 0, "errmsg": "ok"}).ok
    assert outcome("wecom", 200, {"errcode": 0}).ok
    assert outcome("feishu", 200, {"code": 0, "msg": "success"}).ok
    assert outcome("feishu", 200, {"StatusCode": 0}).ok
    assert outcome("dingtalk", 200, {"errcode": 130101}).rate_limited
    assert outcome("wecom", 200, {"errcode": 45009}).rate_limited
    assert outcome("feishu", 200, {"code": 11232}).rate_limited
    assert outcome("feishu", 429, None).rate_limited
    bad = outcome("dingtalk", 200, {"errcode": 310000, "errmsg": "sign not match"})
    assert not bad.ok and not bad.rate_limited and "310000" in (bad.error or "")
    assert not outcome("wecom", 502, None).ok
    assert not outcome("dingtalk", 500, {"errcode": 0}).ok  # an error status is no success


@pytest.mark.parametrize(("kind", "secret"), [("dingtalk", "SECa+b/c="), ("dingtalk", None), ("wecom", None),
                                              ("feishu", "fs"), ("feishu", None)])  # fmt: skip
async def test_each_kind_is_accepted_by_its_fake(
    fake: FakeRobots, session: aiohttp.ClientSession, kind: str, secret: str | None
) -> None:
    url = fake.add("g", kind, secret)
    out = await post(session, robot(kind, url, secret), MSG, time.time())
    assert out.ok, (out, fake.refused)
    (got,) = fake.of("g")
    assert got.title.endswith(MSG.title) and "长街蛏子专场（nh-live）" in got.text and got.links == (MSG.link,)


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
async def test_a_wrong_secret_or_a_stale_timestamp_is_refused(
    fake: FakeRobots, session: aiohttp.ClientSession, kind: str
) -> None:
    url = fake.add("g", kind, "right")
    wrong = await post(session, robot(kind, url, "wrong"), MSG, time.time())
    stale = await post(session, robot(kind, url, "right"), MSG, time.time() - 2 * 3600)
    unsigned = await post(session, robot(kind, url, None), MSG, time.time())
    for out in (wrong, stale, unsigned):
        assert not out.ok and not out.rate_limited
    assert not fake.accepted and len(fake.refused) == 3


async def test_dingtalk_refuses_the_21st_message_in_a_minute(fake: FakeRobots, session: aiohttp.ClientSession) -> None:
    url = fake.add("g", "dingtalk")
    outs = [await post(session, robot("dingtalk", url), MSG, time.time()) for _ in range(21)]
    assert all(o.ok for o in outs[:20])
    assert outs[20].rate_limited and not outs[20].ok


@pytest.mark.parametrize("mode", ["5xx", "errcode", "ratelimit", "timeout", "reset"])
async def test_faults_are_outcomes_without_the_key(fake: FakeRobots, session: aiohttp.ClientSession, mode: str) -> None:
    url = fake.add("g", "wecom")
    fake.fail("g", mode)
    out = await post(session, robot("wecom", url), MSG, time.time())
    assert not out.ok and out.error
    assert fake.robots["g"].token not in out.error
    assert out.rate_limited == (mode == "ratelimit")
    assert (await post(session, robot("wecom", url), MSG, time.time())).ok  # the next one goes through


async def test_an_unreachable_robot(session: aiohttp.ClientSession) -> None:
    out = await post(session, robot("dingtalk", "http://127.0.0.1:9/robot/send?access_token=secret-token"), MSG, 0)
    assert not out.ok and "cannot connect" in (out.error or "") and "secret-token" not in (out.error or "")


async def test_a_dingtalk_sign_not_url_encoded_is_refused(fake: FakeRobots, session: aiohttp.ClientSession) -> None:
    """Why the sign is URL-encoded: a raw "+" of base64 arrives as a space."""
    shared = "SECplus"
    url = fake.add("g", "dingtalk", shared)
    ts = int(time.time() * 1000)
    while "+" not in unquote_plus(dingtalk_sign(shared, ts)):
        ts += 1
    raw = unquote_plus(dingtalk_sign(shared, ts))
    body = build(robot("dingtalk", url), MSG, 0).body
    target = URL(f"{url}&timestamp={ts}&sign={raw}", encoded=True)
    async with session.post(target, data=body, headers={"Content-Type": "application/json"}) as resp:
        assert (await resp.json())["errcode"] == 310000
    async with session.post(URL(f"{url}&timestamp={ts}&sign={dingtalk_sign(shared, ts)}", encoded=True), data=body,
                            headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
        assert (await resp.json())["errcode"] == 0
