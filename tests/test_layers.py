"""The import contract: layers run one way and no module takes part in a circle.

Every import counts, also those inside functions and under TYPE_CHECKING: a lazy import
is still a dependency, only a hidden one. Layers, from the top (docs/ARCHITECTURE.md):
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A module may import its own layer and those below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("livesales.cli",),
    ("benchmarks", "demo", "scenarios", "localbroker", "localplatforms"),  # tools the CLI runs
    ("livesales",),  # the runtime: the composition root, wiring, readiness
    ("api", "connectors", "notify"),
    ("ingest",),
    ("processors",),
    ("schemas",),
    ("ground",),
)
PACKAGES = {p for layer in LAYERS for p in layer if "." not in p}


def layer_of(module: str) -> int:
    best = -1, 0
    for rank, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = rank, len(prefix)
    return best[0]


def modules() -> Iterator[tuple[str, Path]]:
    for package in sorted(PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path


def imports_of(module: str, path: Path) -> set[str]:
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return {m for m in found if m.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    mods = dict(modules())
    return {m: {t for t in imports_of(m, p) if t in mods and t != m} for m, p in mods.items()}


def test_every_package_has_a_layer() -> None:
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"}
    assert tops <= PACKAGES, f"give {sorted(tops - PACKAGES)} a layer in LAYERS"


def test_no_import_runs_back_up() -> None:
    upward = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        for t in sorted(targets)
        if layer_of(t) < layer_of(m)
    ]
    assert not upward, "\n".join(upward)


def test_no_module_is_in_a_circle() -> None:
    g = graph()
    seen: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[str] = []

    def visit(m: str) -> None:  # depth-first; a back edge closes a circle
        seen.add(m)
        stack.append(m)
        on_stack.add(m)
        for t in sorted(g[m]):
            if t in on_stack:
                circles.append(" -> ".join([*stack[stack.index(t):], t]))
            elif t not in seen:
                visit(t)
        stack.pop()
        on_stack.discard(m)

    for m in sorted(g):
        if m not in seen:
            visit(m)
    assert not circles, "\n".join(circles)


def test_no_component_reads_the_whole_settings() -> None:
    """Components take a config of their own (livesales/wiring.py builds them)."""
    readers = [
        m for m, targets in graph().items()
        if "ground.settings" in targets and layer_of(m) > layer_of("livesales")
    ]
    assert not readers, readers


def test_the_contract_sees_a_violation() -> None:
    """The checks above would fail on an upward import: the ranks are read right."""
    assert layer_of("ingest.consumer") > layer_of("api.app") > layer_of("livesales.runtime")
    assert layer_of("livesales.cli") < layer_of("benchmarks.ingest") < layer_of("livesales.wiring")
    assert layer_of("ground.settings") == len(LAYERS) - 1
