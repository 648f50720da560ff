"""The package's import graph, read from the source with ast: no cycles, no private names across subpackages.

Every relative import counts, at module level or inside a function (an import inside a
function that closes a cycle still makes one); imports under ``if TYPE_CHECKING:`` do not,
since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mixedmodels

PACKAGE = Path(mixedmodels.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of every node under an ``if TYPE_CHECKING:`` block."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(n) for n in ast.walk(node))
    return inside


def imports(name: str) -> list[tuple[str, str]]:
    """(imported module, imported name) for every relative import of module ``name`` that runs."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = type_checking_nodes(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        target = ".".join(base)
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            found.append((submodule if submodule in MODULES else target, alias.name))
    return found


GRAPH = {name: sorted({target for target, _ in imports(name) if target != name}) for name in MODULES}


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def subpackage(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_the_graph_sees_the_package():
    assert "mixedmodels.results.lmer" in GRAPH
    assert "mixedmodels.inference.satterthwaite" in GRAPH["mixedmodels.results.lmer"]
    assert len(GRAPH) > 40


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert cycles({"a": ["b"], "b": []}) == []


def test_no_private_names_across_subpackages():
    offending = [
        (name, target, imported)
        for name in MODULES
        for target, imported in imports(name)
        if imported.startswith("_") and not imported.startswith("__") and subpackage(target) != subpackage(name)
    ]
    assert offending == []


def test_layers_point_down():
    """The early stages never import the later ones: formula < design < linalg < engine."""
    order = ["formula", "design", "linalg", "engine"]
    later = {stage: {f"mixedmodels.{s}" for s in order[i + 1:]} | {
        "mixedmodels.results", "mixedmodels.inference", "mixedmodels.report", "mixedmodels.io",
        "mixedmodels.dask", "mixedmodels.teaching", "mixedmodels.api"} for i, stage in enumerate(order)}
    offending = [
        (name, target)
        for name, targets in GRAPH.items()
        for target in targets
        if name.split(".")[1:2] and name.split(".")[1] in later and subpackage(target) in later[name.split(".")[1]]
    ]
    assert offending == []
