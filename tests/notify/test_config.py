"""The notify file: good robots read into frozen values, every mistake one line naming file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.auth import Scope
from ground.config_errors import ConfigError
from notify.config import check_public_url, load_robots

GOOD: dict[str, Any] = {
    "robots": [
        {"name": "bureau", "kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t",
         "secret": "SECabc", "scope": "all", "rules": ["silence", "refund_spike", "pace_drop", "live_started",
                                                      "live_ended"]},
        {"name": "ninghai", "kind": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
         "scope": "district:宁海县", "rules": ["live_started"]},
        {"name": "changjie", "kind": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/x",
         "secret": "s", "scope": "township:宁海县/长街镇", "rules": ["silence", "live_ended"]},
    ]
}


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "notify.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_good_file_reads_into_frozen_robots(tmp_path: Path) -> None:
    bureau, ninghai, changjie = load_robots(write(tmp_path, GOOD))
    assert bureau.kind == "dingtalk" and bureau.secret == GOOD["robots"][0]["secret"] and bureau.scope == Scope()
    assert ninghai.secret is None and ninghai.scope == Scope("宁海县") and ninghai.rules == {"live_started"}
    assert changjie.scope == Scope("宁海县", "长街镇")
    with pytest.raises(AttributeError):
        bureau.name = "x"  # type: ignore[misc]
    assert "access_token" not in repr(bureau) and "SECabc" not in repr(bureau)  # credentials stay out of logs


def test_scope_and_rules_decide_what_a_robot_wants(tmp_path: Path) -> None:
    bureau, ninghai, changjie = load_robots(write(tmp_path, GOOD))
    assert bureau.wants("pace_drop", "", "")  # a channel with no place: the unscoped robot only
    assert ninghai.wants("live_started", "宁海县", "桃源街道") and not ninghai.wants("live_started", "象山县", "")
    assert not ninghai.wants("live_ended", "宁海县", "桃源街道")  # not among its rules
    assert changjie.wants("silence", "宁海县", "长街镇") and not changjie.wants("silence", "宁海县", "桃源街道")
    assert not changjie.wants("silence", "", "")


def robots_with(**change: Any) -> dict[str, Any]:
    robot = {**GOOD["robots"][0], **change}
    return {"robots": [{k: v for k, v in robot.items() if v is not None}]}


@pytest.mark.parametrize(
    ("doc", "field", "why"),
    [
        ("{not json", "not JSON", "line 1"),
        ({"robot": []}, "robots", "Field required"),
        (robots_with(kind="slack"), "robots[0].kind", "dingtalk, wecom, feishu"),
        (robots_with(scope="town:x"), "robots[0].scope", 'expected "all"'),
        (robots_with(rules=["silence", "fire"]), "robots[0].rules[1]", "live_started"),
        (robots_with(rules=[]), "robots[0].rules", "at least 1"),
        (robots_with(url="ftp://x"), "robots[0].url", "http(s)://"),
        (robots_with(url=None), "robots[0].url", "Field required"),
        (robots_with(secret=""), "robots[0].secret", "at least 1"),
        (robots_with(colour="red"), "robots[0].colour", "unknown field"),
        (robots_with(kind="wecom"), "robots[0].secret", "not signed"),
        ({"robots": [GOOD["robots"][1], GOOD["robots"][1]]}, "robots[1].name", "robots[0]"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_field(tmp_path: Path, doc: Any, field: str, why: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_robots(path)
    line = err.value.line
    assert len(line.splitlines()) == 1
    assert line.startswith(f"livesales: LIVESALES_NOTIFY_FILE={path}: ")
    assert field in line and why in line, line
    assert "SECabc" not in line  # a secret is never echoed


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_robots(tmp_path / "absent.json")


def test_an_empty_list_is_allowed(tmp_path: Path) -> None:
    assert load_robots(write(tmp_path, {"robots": []})) == ()


def test_public_url() -> None:
    assert check_public_url("https://sales.example.cn/") == "https://sales.example.cn"
    for bad in ("sales.example.cn", "https://x/?a=1", "ftp://x"):
        with pytest.raises(ConfigError, match="LIVESALES_PUBLIC_URL"):
            check_public_url(bad)
