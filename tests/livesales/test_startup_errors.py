"""Start-up errors: one line naming the env var, the file and the field; exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.auth import read_tokens_file
from ground.config_errors import ConfigError
from ground.settings import StrictEnvBool

GOOD = {"token": "tok-good-0001", "name": "bureau", "scope": "all", "ingest": False}


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def livesales(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALES_")}
    return subprocess.run(
        [sys.executable, "-m", "livesales.cli", *(args or ("run",))],
        env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ('{"tokens": [', "not JSON: Expecting value at line 1 column 13"),
        ({"tokens": []}, "tokens: empty list"),
        ({"tokens": [GOOD, GOOD | {"token": "tok-other-0001"}, GOOD | {"name": "again"}]},
         'tokens[2].token: same token as tokens[0]'),
        ({"tokens": [GOOD, GOOD | {"token": "tok-other-0001", "scope": "township:宁海县"}]},
         'tokens[1].scope: expected "all", "district:<区县>" or "township:<区县>/<乡镇>"'),
        ({"tokens": [GOOD | {"ingest": "yes"}]}, "tokens[0].ingest: expected true or false"),
        ({"tokens": [GOOD | {"ingest": 1}]}, "tokens[0].ingest: expected true or false"),
        ({"tokens": [{"name": "x"}]}, "tokens[0].token: Field required"),
        ({"tokenz": []}, "tokens: Field required"),
        ([GOOD], "(top level): Input should be a valid dictionary"),
    ],
)
def test_bad_tokens_file_names_file_and_field(tmp_path: Path, doc: Any, expected: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        read_tokens_file(path)
    line = info.value.line
    assert line.startswith(f"livesales: LIVESALES_API_TOKENS_FILE={path}: ")
    assert expected in line
    assert "\n" not in line
    assert "tok-good-0001" not in line  # a token is never echoed


def test_good_tokens_file_loads(tmp_path: Path) -> None:
    entries = read_tokens_file(write(tmp_path, {"tokens": [GOOD, GOOD | {"token": "tok-ingest-01", "ingest": True}]}))
    assert [e.ingest for e in entries] == [False, True]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.json: cannot read: No such file"):
        read_tokens_file(tmp_path / "nope.json")


def test_malformed_tokens_file_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{"tokens": [{"token": "abcdefgh", "name": "a", "scope": "all",}]}')
    proc = livesales({"LIVESALES_API_TOKENS_FILE": str(path), "LIVESALES_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
                     cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"livesales: LIVESALES_API_TOKENS_FILE={path}: not JSON: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LIVESALES_API_PORT": "abc"}, "livesales: LIVESALES_API_PORT=abc: Input should be a valid integer"),
        ({"LIVESALES_TUNING": '{"ready_stall_s": -1}'},
         "livesales: LIVESALES_TUNING.ready_stall_s=-1: Input should be greater than 0"),
        ({"LIVESALES_TUNING": '{"batch_size": 5}'}, "livesales: LIVESALES_TUNING.batch_size=5: Extra inputs are not permitted"),
        ({"LIVESALES_TUNING": "{"}, "livesales: LIVESALES_TUNING: not valid JSON"),
        ({"LIVESALES_LOG_FORMAT": "xml"}, "livesales: LIVESALES_LOG_FORMAT=xml: Input should be 'text' or 'json'"),
        ({"LIVESALES_TUNING": '{"chdb_dirty_decay_ms": -1}'},
         "livesales: LIVESALES_TUNING.chdb_dirty_decay_ms=-1: Input should be greater than or equal to 0"),
    ],
)
def test_bad_env_value_exits_2_with_one_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    proc = livesales(env, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(expected)


def test_env_bools_are_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    class WithSwitch(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="LIVESALES_")
        switch: StrictEnvBool = False

    for text, value in (("true", True), ("FALSE", False), ("1", True), ("0", False)):
        monkeypatch.setenv("LIVESALES_SWITCH", text)
        assert WithSwitch().switch is value
    for text in ("yes", "on", "y", "2", ""):
        monkeypatch.setenv("LIVESALES_SWITCH", text)
        with pytest.raises(ValueError, match="expected true or false"):
            WithSwitch()
