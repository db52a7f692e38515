"""The dependency rules of docs/architecture.md, read from the source (every import statement, the
ones inside functions too): no cycle between driftgate's packages, the leaf package imports no other,
and the pure computation imports no web, database or process code, directly or through others."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "driftgate"

# Modules of pure computation (statistics, drift, detectors, estimates, rollout decisions, guards).
PURE = (
    "driftgate.monitoring.drift",
    "driftgate.monitoring.descriptors",
    "driftgate.monitoring.detectors",
    "driftgate.monitoring.estimation",
    "driftgate.monitoring.guards",
    "driftgate.monitoring.performance",
    "driftgate.monitoring.concept",
    "driftgate.rollout.policy",
    "driftgate.rollout.decision",
    "driftgate.rollout.analysis",
    "driftgate.rollout.sequential",
    "driftgate.retraining.evaluation",
    "driftgate.core",
)
# What pure code may not reach: HTTP, databases, processes, the layers above.
FORBIDDEN = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "grpc",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "multiprocessing",
    "subprocess",
    "driftgate.store",
    "driftgate.api",
    "driftgate.server",
    "driftgate.services",
    "driftgate.cli",
    "driftgate.child",
)
# The leaf package's only driftgate import.
LEAF_MAY_IMPORT = ("driftgate.errors",)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from driftgate.x import y` may name a submodule y
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, name):
            if imported.startswith("driftgate"):
                # the longest known module it names (`driftgate.x.y` or its package `driftgate.x`)
                while imported and imported not in modules:
                    imported = imported.rpartition(".")[0]
                if imported and imported != name:
                    targets.add(imported)
            else:
                targets.add(imported)
        graph[name] = targets
    return graph


GRAPH = _graph()


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_is_read() -> None:
    # A walker that found nothing would pass every rule below.
    assert len(GRAPH) > 100
    assert "driftgate.core.refs" in GRAPH["driftgate.rollout.policy"]
    assert "driftgate.store" in GRAPH["driftgate.rollout.controller"]


def test_no_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        for target in targets:
            a, b = _package(module), _package(target)
            if target.startswith("driftgate.") and a != b and b != "driftgate.errors":
                edges[a].add(b)
    # Tarjan-free: a package is in a cycle when it can reach itself.
    cycles = []
    for start in sorted(edges):
        seen, stack, path = set(), [(start, [start])], None
        while stack and path is None:
            node, trail = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    path = [*trail, start]
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        if path:
            cycles.append(" -> ".join(path))
    assert not cycles, "package cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("pure", PURE)
def test_pure_computation_reaches_no_web_database_or_process_code(pure: str) -> None:
    roots = [m for m in GRAPH if _under(m, [pure])]
    assert roots, f"no module under {pure}"
    offending = []
    for root in roots:
        seen, stack = {root}, [(root, [root])]
        while stack:
            node, trail = stack.pop()
            for target in GRAPH.get(node, ()):
                if _under(target, FORBIDDEN) or _under(target.split(".")[0], FORBIDDEN):
                    offending.append(" -> ".join([*trail, target]))
                elif target in GRAPH and target not in seen:
                    seen.add(target)
                    stack.append((target, [*trail, target]))
    assert not offending, "\n".join(sorted(set(offending))[:20])


def test_the_leaf_package_imports_no_other() -> None:
    offending = [
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if _under(m, ["driftgate.core"])
        for t in targets
        if t.startswith("driftgate") and not _under(t, ["driftgate.core", *LEAF_MAY_IMPORT])
    ]
    assert not offending, "\n".join(offending)
