"""The import graph of the package: no cycles, and no import from a lower layer up to a higher one.

The graph is static (`ast`): every `import` and `from` statement, at module level or inside a function (a cycle
hidden in a function is still a cycle), relative imports resolved, over fixtures/, reference_impl/ and harness/
(installed as `offload_conformance.*`, see pyproject.toml). A module that loads another only by a name it is
given (`--impl package.module:function`, the fork server's preload list) has no import statement for it: such a
lookup is not an edge. CONTRIBUTING.md ("Layers") says the order and why.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "offload_conformance"
TOPS = ("fixtures", "reference_impl", "harness")

# Lowest first; a module may import its own layer's modules and lower layers', never a higher one's. The flow of a
# run is plan -> run -> judge -> report, and the runner calls the judge, so the judge sits below the run.
# An entry ending in "/" is a folder (with everything under it), else one file.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fixtures", ("fixtures/",)),
    ("reference", ("reference_impl/",)),
    (
        "data",  # the vocabulary and the documents every layer above passes around
        (
            "harness/__init__.py",
            "harness/outcomes.py",
            "harness/results.py",
            "harness/execution.py",
            "harness/environment.py",
            "harness/merge.py",
        ),
    ),
    ("plan", ("harness/plan/",)),
    ("judge", ("harness/judge/",)),
    ("run", ("harness/run/",)),
    ("report", ("harness/report/",)),
    ("tools", ("harness/tools/", "harness/ledger/")),
    ("entry", ("harness/cli.py", "harness/__main__.py", "harness/pytest_plugin.py")),
)

# (importer, imported) -> why an edge that breaks the rules is still right. Empty: none is.
ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, str]:
    """Dotted name (offload_conformance.*) -> file path relative to the repository."""
    out = {}
    for top in TOPS:
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT)
            parts = rel.with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            out[".".join((PACKAGE, *parts))] = rel.as_posix()
    return out


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> Iterator[str]:
    """The dotted names one statement of module `name` imports: `from a import b` is a.b where b is a module."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
        return
    if node.level:
        base = name.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    for alias in node.names:
        yield f"{module}.{alias.name}"  # a submodule; else resolved to `module` by _resolve


def _resolve(dotted: str, modules: dict[str, str]) -> str | None:
    """The project module a dotted name lands in (the longest prefix that is one), None outside the project."""
    while dotted:
        if dotted in modules:
            return modules[dotted]
        dotted = dotted.rpartition(".")[0]
    return None


def edges() -> dict[tuple[str, str], int]:
    """(importer path, imported path) -> the line of the first statement that makes the edge."""
    modules = _modules()
    out: dict[tuple[str, str], int] = {}
    for name, path in modules.items():
        is_package = path.endswith("__init__.py")
        for node in ast.walk(ast.parse((ROOT / path).read_text(), path)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for dotted in _imported(node, name, is_package):
                    target = _resolve(dotted, modules)
                    if target is not None and target != path:
                        out.setdefault((path, target), node.lineno)
    return out


def layer(path: str) -> int:
    for i, (_, entries) in enumerate(LAYERS):
        if any(path == e or (e.endswith("/") and path.startswith(e)) for e in entries):
            return i
    raise AssertionError(f"{path} is in no layer: add it to LAYERS in {Path(__file__).name} and to CONTRIBUTING.md")


def cycles(graph: dict[tuple[str, str], int]) -> list[list[str]]:
    """One cycle (a path back to its start) per strongly connected component of more than one module."""
    succ: dict[str, list[str]] = {}
    for a, b in sorted(graph):
        succ.setdefault(a, []).append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph is a few hundred modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = {stack.pop()}
            while v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                components.append(component)

    for v in sorted(succ):
        if v not in index:
            visit(v)
    out = []
    for component in components:
        start = min(component)
        paths = {start: [start]}
        frontier = [start]
        while frontier:  # breadth first inside the component, until an edge leads back to the start
            v = frontier.pop(0)
            for w in succ.get(v, []):
                if w == start:
                    out.append([*paths[v], start])
                    frontier = []
                    break
                if w in component and w not in paths:
                    paths[w] = [*paths[v], w]
                    frontier.append(w)
    return out


def test_the_graph_sees_module_and_function_level_imports() -> None:
    graph = edges()
    assert ("harness/run/runner.py", "harness/judge/verdict.py") in graph  # a module-level import
    assert ("harness/plan/impls.py", "reference_impl/__init__.py") in graph  # inside resolve()


def test_every_module_has_a_layer() -> None:
    for path in _modules().values():
        layer(path)


def _checked() -> dict[tuple[str, str], int]:
    return {edge: line for edge, line in edges().items() if edge not in ALLOWED}


def test_no_import_cycles() -> None:
    graph = _checked()
    # a.py:LINE -> b.py:LINE -> a.py: each file, and the line of its import of the next one
    described = [" -> ".join([*(f"{a}:{graph[a, b]}" for a, b in itertools.pairwise(c)), c[-1]]) for c in cycles(graph)]
    assert not described, "import cycles:\n" + "\n".join(described)


def test_no_import_from_a_lower_layer_up_to_a_higher_one() -> None:
    names = [n for n, _ in LAYERS]
    upward = [
        f"{a} ({names[layer(a)]}) imports {b} ({names[layer(b)]}, above it) at line {line}"
        for (a, b), line in sorted(_checked().items())
        if layer(b) > layer(a)
    ]
    assert not upward, "imports from a lower layer up:\n" + "\n".join(upward)


def test_every_allowed_edge_still_exists() -> None:
    assert set(ALLOWED) <= set(edges()), "ALLOWED lists an import that is gone: remove it"
