"""The fast tier's marking (tests/conftest.py): what it names exists, and what it marks."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import SPAWNING, services_of

ROOT = Path(__file__).resolve().parents[1]


def test_every_spawning_entry_names_a_folder_a_file_or_a_test_that_exists() -> None:
    """A renamed file or test would otherwise slip into `make check` unmarked."""
    for where in SPAWNING:
        file, _, test = where.partition("::")
        path = ROOT / file
        assert path.is_dir() if file.endswith("/") else path.is_file(), where
        if test:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
            assert test in defined, where


def test_services_come_from_the_fixture_closure_and_the_place() -> None:
    assert services_of("tests/api/test_x.py::test_y", ["tmp_path", "clickhouse", "settings", "broker"])
    assert not services_of("tests/api/test_x.py::test_y[a-1]", ["tmp_path", "monkeypatch"])
    assert services_of("tests/livesales/test_x.py::test_y", [])
    assert services_of("tests/processors/test_checkpool.py::test_y", [])
    cluster = "tests/schemas/test_cluster.py::test_every_cluster_statement_parses_in_clickhouse"
    assert services_of(cluster, []) and services_of(cluster + "[p]", [])
    assert not services_of(cluster + "_not", []) and not services_of("tests/schemas/test_cluster.py::test_z", [])
