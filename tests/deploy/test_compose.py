"""deploy/compose.yaml against the compose specification's JSON schema, and its wiring.

The schema is the copy vendored in check-jsonschema's wheel (no network needed).
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # resolves the << merges
    return doc


def _errors(doc: dict[str, Any]) -> list[str]:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    schema = json.loads(text)
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _errors(compose) == []


def test_the_schema_check_catches_a_wrong_file(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["serve-1"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert _errors(broken)


def _livesales(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if str(s.get("image", "")).startswith("livesales:")}


def test_two_consumers_two_apis_and_a_one_shot_migration(compose: dict[str, Any]) -> None:
    services = _livesales(compose)
    roles = {name: s["command"][0] for name, s in services.items()}
    assert sorted(roles.values()) == ["consume", "consume", "migrate", "serve", "serve"]
    published = [p for s in services.values() if s["command"] == ["serve"] for p in s["ports"]]
    assert published == ["8081:8080", "8082:8080"]
    for name, s in services.items():
        deps = s["depends_on"]
        assert deps["clickhouse"]["condition"] == "service_healthy"
        if roles[name] != "migrate":
            assert deps["migrate"]["condition"] == "service_completed_successfully"
            assert deps["kafka"]["condition"] == "service_healthy"
            assert "healthcheck" in s
            assert s["read_only"] is True and s["cap_drop"] == ["ALL"]


def test_infrastructure_is_healthchecked_with_named_volumes(compose: dict[str, Any]) -> None:
    for name in ("kafka", "clickhouse", "prometheus"):
        service = compose["services"][name]
        assert "healthcheck" in service, name
        assert ":" in service["image"] and not service["image"].endswith(":latest")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in compose["volumes"], volume
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_tokens_are_a_secret_of_the_api(compose: dict[str, Any]) -> None:
    assert "tokens" in compose["secrets"]
    for s in _livesales(compose).values():
        if s["command"] == ["serve"]:
            assert s["secrets"] == ["tokens"]
            assert s["environment"]["LIVESALES_API_TOKENS_FILE"] == "/run/secrets/tokens"
    example = json.loads((DEPLOY / "tokens.example.json").read_text())
    assert {t["scope"] for t in example["tokens"]} >= {"all"}


def test_prometheus_scrapes_every_process(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    expected = {
        f"{name}:{9108 if s['command'] == ['consume'] else 8080}"
        for name, s in _livesales(compose).items()
        if s["command"] != ["migrate"]
    }
    assert expected <= targets
