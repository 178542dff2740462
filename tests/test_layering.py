"""The shape of the code: imports point one way, and no module imports itself back.

Layers (docs/architecture.md, "Layering"), lowest first::

    kernel (nskernel)  <-  tasks, methods, metrics (bench.metrics)  <-  harness (bench)  <-  front (CLI, report)

A module may import its own layer and the layers below it, except that tasks, methods
and metrics never import one another. Every import statement counts, including those
inside functions and under ``TYPE_CHECKING``: a deferred import still ties the modules
together. Third-party imports are not checked here (the kernel's torch-free import is,
below).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nskernel", "tasks", "methods", "bench")

#: layer -> the layers it may import (its own included)
ALLOWED: dict[str, set[str]] = {
    "kernel": {"kernel"},
    "tasks": {"kernel", "tasks"},
    "methods": {"kernel", "methods"},
    "metrics": {"kernel", "metrics"},
    "harness": {"kernel", "tasks", "methods", "metrics", "harness"},
    "front": {"kernel", "tasks", "methods", "metrics", "harness", "front"},
}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "nskernel":
        return "kernel"
    if top in ("tasks", "methods"):
        return top
    if module == "bench.metrics" or module.startswith("bench.metrics."):
        return "metrics"
    if module in ("bench.cli", "bench.__main__") or module == "bench.report" or module.startswith("bench.report."):
        return "front"
    return "harness"


def modules() -> dict[str, Path]:
    """Every module of the suite's packages: dotted name -> file."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The suite's modules that ``path`` imports anywhere in its body (``from a.b import
    c`` counts as ``a.b.c`` when that is a module, else ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) for name, path in mods.items()}


def layer_violations(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{src} ({layer(src)}) imports {dst} ({layer(dst)})"
                  for src, dsts in g.items() for dst in dsts if layer(dst) not in ALLOWED[layer(src)])


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_imports_point_down_the_layers():
    assert layer_violations(graph()) == []


def test_no_module_imports_itself_back():
    assert cycles(graph()) == []


def test_the_checks_can_fail():
    """An arrow added back up, or a circle, is caught (the checks are not vacuous)."""
    g = graph()
    g["methods.mean"] = g["methods.mean"] | {"bench.config"}
    g["tasks.darcy.task"] = g["tasks.darcy.task"] | {"methods.neural"}
    assert layer_violations(g) == [
        "methods.mean (methods) imports bench.config (harness)",
        "tasks.darcy.task (tasks) imports methods.neural (methods)",
    ]
    g["nskernel.grid"] = g["nskernel.grid"] | {"nskernel.method"}  # method -> spec -> ... -> grid
    g["nskernel.spec"] = g["nskernel.spec"] | {"nskernel.method"}
    assert any("nskernel.method" in c and "nskernel.spec" in c for c in cycles(g))


def test_layers_cover_every_module():
    names = set(modules())
    assert {"nskernel.method", "bench.metrics", "bench.metrics.core", "bench.cli", "bench.report.tables",
            "methods.training", "tasks.darcy.task"} <= names
    assert layer("bench.metrics.core") == "metrics" and layer("bench.report.latex") == "front"
    assert layer("bench.compare") == "harness" and layer("nskernel") == "kernel"


@pytest.mark.parametrize("modules_", ["nskernel", "nskernel, bench.metrics", "nskernel, bench.metrics, bench.records"])
def test_the_kernel_and_the_metric_registry_import_no_torch(modules_):
    code = f"import sys, {modules_}; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
