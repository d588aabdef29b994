"""Imports point down: no import cycles in jobs/, dags/ and bench/, no Airflow in jobs/.

The graph is read from the source with :mod:`ast`, so it holds every import a module
can execute: top level, inside functions and under ``TYPE_CHECKING``. A cycle that only
closes inside a function still means neither module can be understood, or moved,
without the other.

Module names are the ones the modules are imported under: ``jobs.*`` and ``bench.*``
from the repository root, ``lakehouse.*`` and the DAG files' own names from ``dags/``
(the DAG processor puts ``dags/`` on ``sys.path``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# (directory on sys.path, top-level name) of every tree in the graph; None: every
# module directly under the directory (the DAG files) and its packages.
TREES: tuple[tuple[Path, str | None], ...] = (
    (ROOT, "jobs"),
    (ROOT / "dags", None),
    (ROOT, "bench"),
)
# Neither may be imported by anything in jobs/: spark-submit ships jobs/ alone.
JOBS_FORBIDDEN = ("airflow", "dags")


def module_files(trees: Iterable[tuple[Path, str | None]]) -> dict[str, Path]:
    """Every module of the trees by the dotted name it is imported under.

    :param trees: (directory on ``sys.path``, top-level package name or ``None`` for
        every ``.py`` file and package directly under the directory).
    :return: dotted module name -> file (a package's name maps to its ``__init__.py``).
    """
    modules: dict[str, Path] = {}
    for base, top in trees:
        start = base / top if top else base
        for path in sorted(start.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if any(p.startswith(".") or p == "__pycache__" for p in parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if top is None and len(parts) > 1 and not (base / parts[0] / "__init__.py").exists():
                continue
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module of the graph that ``name`` names, or its nearest enclosing package."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """Every module name ``module`` imports anywhere in its source, resolved.

    ``from a.b import c`` counts as an import of ``a.b.c`` when that is a module, else of
    ``a.b``; relative imports are made absolute. Names outside ``modules`` are kept as
    written (their top-level name is what :func:`forbidden_imports` looks at).

    :param module: the module's dotted name.
    :param path: its source file.
    :param modules: every module of the graph (to tell submodules from attributes).
    :return: the imported module names.
    """
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {n for n in found if n}


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """The graph's edges: module -> modules of the graph it imports (itself excluded)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {_resolve(n, modules) for n in imports_of(module, path, modules)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative).

    :return: each component's modules, sorted; components sorted by their first module.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return sorted(found)


def cycle_path(component: list[str], graph: Mapping[str, set[str]]) -> list[str]:
    """One closed path through a component, for the failure message (``a -> b -> a``)."""
    members = set(component)
    start = component[0]
    # Breadth-first from start back to start within the component: the shortest loop.
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ not in previous:
                    previous[succ] = node
                    nxt.append(succ)
        frontier = nxt
    return component


def forbidden_imports(
    modules: Mapping[str, Path], prefix: str, forbidden: Iterable[str]
) -> list[str]:
    """``module -> import`` for every import of a forbidden top-level name under ``prefix``.

    :param modules: every module of the graph.
    :param prefix: the tree checked (``jobs``).
    :param forbidden: top-level names it may not import, and any other tree's top-level
        names are added to them by the caller when they must be kept out too.
    :return: the offending edges, sorted.
    """
    banned = set(forbidden)
    return sorted(
        f"{module} -> {name}"
        for module, path in modules.items()
        if module == prefix or module.startswith(prefix + ".")
        for name in imports_of(module, path, modules)
        if name.split(".")[0] in banned
    )


def _describe(found: list[list[str]], graph: Mapping[str, set[str]]) -> str:
    return "\n".join(
        f"{' -> '.join(cycle_path(c, graph))}  (component: {', '.join(c)})" for c in found
    )


def test_project_modules_import_without_cycles() -> None:
    modules = module_files(TREES)
    # The walk found the trees it is meant to check, not an empty directory.
    assert {"jobs.main", "jobs.steps.gold", "lakehouse.runners", "pipeline_dags",
            "bench.run"} <= modules.keys()
    graph = import_graph(modules)
    found = cycles(graph)
    assert not found, "import cycles (every module of a cycle imports down instead):\n" + (
        _describe(found, graph)
    )


def test_jobs_import_neither_airflow_nor_dags() -> None:
    modules = module_files(TREES)
    dag_names = {m.split(".")[0] for m, p in modules.items() if (ROOT / "dags") in p.parents}
    assert "lakehouse" in dag_names
    offending = forbidden_imports(modules, "jobs", [*JOBS_FORBIDDEN, *dag_names])
    assert offending == [], "jobs/ imports Airflow or the DAGs:\n" + "\n".join(offending)


def _write(base: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_cycle_closed_by_function_local_and_relative_imports_is_found(tmp_path: Path) -> None:
    # pkg.a -> pkg.sub.b (relative, TYPE_CHECKING) -> pkg.sub.c (from-import of a
    # module) -> pkg.a (inside a function); pkg.d only points down into the cycle.
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .sub import b\n"
        ),
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "from pkg.sub import c\n",
        "pkg/sub/c.py": "def f():\n    from .. import a\n    return a\n",
        "pkg/d.py": "import pkg.a\nfrom pkg.sub.b import something\n",
    })
    modules = module_files([(tmp_path, "pkg")])
    graph = import_graph(modules)

    assert graph["pkg.d"] == {"pkg.a", "pkg.sub.b"}
    found = cycles(graph)
    assert found == [["pkg.a", "pkg.sub.b", "pkg.sub.c"]]
    assert cycle_path(found[0], graph) == ["pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg.a"]


def test_tree_that_imports_down_has_no_cycle(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/top.py": "from pkg import middle\nimport pkg.bottom\n",
        "pkg/middle.py": "from pkg.bottom import VALUE\n",
        "pkg/bottom.py": "VALUE = 1\n",
    })
    graph = import_graph(module_files([(tmp_path, "pkg")]))

    assert graph == {"pkg": set(), "pkg.top": {"pkg.middle", "pkg.bottom"},
                     "pkg.middle": {"pkg.bottom"}, "pkg.bottom": set()}
    assert cycles(graph) == []


def test_airflow_import_inside_a_function_is_forbidden(tmp_path: Path) -> None:
    _write(tmp_path, {
        "jobs/__init__.py": "",
        "jobs/ok.py": "import json\n",
        "jobs/bad.py": "def f():\n    from airflow.sdk import dag\n    return dag\n",
        "jobs/worse.py": "import lakehouse.config\n",
    })
    modules = module_files([(tmp_path, "jobs")])

    assert forbidden_imports(modules, "jobs", ["airflow", "lakehouse"]) == [
        "jobs.bad -> airflow.sdk",
        "jobs.worse -> lakehouse.config",
    ]
