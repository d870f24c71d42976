"""The import graph of the core and the first-party plugins, read with ``ast`` (every import,
those inside functions included, since a cycle hidden in a function-level import is a cycle
all the same): no cycle anywhere, the core never imports a plugin package, and the core's
modules import only their own layer or the layers below it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_PACKAGES = sorted(p.name for p in (REPO / "plugins").iterdir()
                         if (p / "__init__.py").is_file())

# The core's layers, lowest first: a module may import its own layer and those below it.
# Each entry is a module or a package (which then covers its submodules).
LAYERS = [
    ("contract", ["jmedbench", "jmedbench.errors", "jmedbench.labels", "jmedbench.specs",
                  "jmedbench.hookspecs", "jmedbench.data", "jmedbench.strategy",
                  "jmedbench.stats", "jmedbench.volumes", "jmedbench.weights",
                  "jmedbench.cancellous", "jmedbench.vertebrae", "jmedbench.grid",
                  "jmedbench.subjects"]),
    ("services", ["jmedbench.registry", "jmedbench.config", "jmedbench.store",
                  "jmedbench.store_migrations", "jmedbench.claims",
                  "jmedbench.provenance", "jmedbench.columns", "jmedbench.density",
                  "jmedbench.realism", "jmedbench.runs"]),
    ("leaderboard", ["jmedbench.leaderboard"]),
    ("engine", ["jmedbench.engine"]),
    ("applications", ["jmedbench.reports", "jmedbench.testing"]),
    ("cli", ["jmedbench.cli", "jmedbench.__main__"]),
]


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for ``jmedbench`` and every plugin package."""
    roots = [REPO / "jmedbench"] + [REPO / "plugins" / name for name in PLUGIN_PACKAGES]
    out = {}
    for root in roots:
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = module_files()


def _known(name: str) -> str | None:
    """The project module an import of ``name`` loads (``a.b.func`` -> ``a.b``), or None for
    anything outside the project."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported_names(module: str) -> set[str]:
    """Every dotted name ``module`` imports, anywhere in its file (``from a import b`` gives
    ``a.b``; relative imports made absolute)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def imports_of(module: str) -> set[str]:
    """Project modules that ``module`` imports."""
    found = {_known(name) for name in imported_names(module)}
    return {m for m in found if m and m != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    best = None  # the most specific entry that covers the module
    for rank, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                if best is None or len(member) > len(best[1]):
                    best = (rank, member)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to the picture "
                             f"in docs/architecture.md")
    return best[0]


def test_the_walk_sees_the_whole_project():
    assert {"jmedbench.engine.run", "jmedbench.engine.robustness", "jmedbench_jittor.backend",
            "jmedbench_jittor.speed", "jmedbench.testing"} <= set(MODULES)
    # a function-level import is an edge like any other
    assert "jmedbench_jittor.speed" in GRAPH["jmedbench_jittor.backend"]


def test_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert cycles(GRAPH) == []


def test_the_core_imports_no_plugin_package():
    """Neither a first-party plugin nor any other ``jmedbench_*`` package (third-party plugins
    are named that way too): the core finds plugins through entry points only."""
    offending = {}
    for module in MODULES:
        if module.split(".")[0] != "jmedbench":
            continue
        plugins = sorted(n for n in imported_names(module)
                         if n.split(".")[0] in PLUGIN_PACKAGES
                         or n.split(".")[0].startswith("jmedbench_"))
        if plugins:
            offending[module] = plugins
    assert offending == {}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "jmedbench"))
def test_core_modules_import_only_their_layer_or_below(module):
    upward = sorted(t for t in GRAPH[module] if layer_of(t) > layer_of(module))
    assert upward == [], (f"{module} ({LAYERS[layer_of(module)][0]}) imports a higher layer: "
                          + ", ".join(f"{t} ({LAYERS[layer_of(t)][0]})" for t in upward))
