"""The settings stay few, described, and as the README shows them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ground.settings import REMOVED, Settings, Tuning, removed_in, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_at_most_35_settings_each_described() -> None:
    assert len(Settings.model_fields) <= 35
    for name, field in [*Settings.model_fields.items(), *Tuning.model_fields.items()]:
        assert field.description, f"{name} needs Field(description=...)"


def test_the_readme_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- settings:begin -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert found, "README.md lost its settings markers"
    assert found[1] == settings_table(), "README is stale: paste `python -m ground.settings` between the markers"


def test_a_removed_setting_still_set_is_named_in_one_line() -> None:
    line = removed_in({"LIVESALES_BATCH_MAX_RECORDS": "5", "LIVESALES_HEALTH_HOST": "127.0.0.2", "PATH": "/bin"})
    assert line is not None and "\n" not in line
    assert "LIVESALES_BATCH_MAX_RECORDS (internal: LIVESALES_TUNING)" in line
    assert "LIVESALES_HEALTH_HOST (LIVESALES_API_HOST)" in line
    assert removed_in({"LIVESALES_API_PORT": "1"}) is None


def test_no_removed_name_is_a_setting_again() -> None:
    assert not set(REMOVED) & set(Settings.model_fields)


def test_tuning_comes_from_one_json_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVESALES_TUNING", '{"batch_max_records": 7}')
    assert Settings().tuning.batch_max_records == 7
    assert Settings().tuning.batch_wait_ms == Tuning().batch_wait_ms


def test_heartbeat_is_a_sixth_of_the_session() -> None:
    assert Settings(kafka_session_timeout_ms=6000).kafka_heartbeat_interval_ms == 1000
    assert Settings(kafka_session_timeout_ms=30000).kafka_heartbeat_interval_ms == 5000
