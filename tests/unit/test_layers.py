"""The tree shows its layers: no import cycle among the dashboard, layouts and callbacks packages,
and the worker runs without a web framework.

The import graph is read from the source (``ast``), with every import an edge wherever it is
written — at module level or inside a function, where an import only postpones a cycle to the
first call. Imports under ``if TYPE_CHECKING:`` are not edges: they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dashboard", "layouts", "callbacks")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (``from a import b`` is ``a.b`` when that is a
    module, else ``a``)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name in modules)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package[: len(package) - (child.level - 1)]
                    base = ".".join([*parent, base] if base else parent)
                for alias in child.names:
                    target = f"{base}.{alias.name}"
                    if target in modules:
                        out.add(target)
                    elif base in modules:
                        out.add(base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
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


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_ones() -> None:
    graph = import_graph()
    assert "dashboard.worker.loop" in graph["dashboard.cli.serve"]  # inside a function
    assert "dashboard.runtime" not in graph["dashboard.services.dispatch"]  # TYPE_CHECKING
    assert "dashboard.live.deltas" in graph["dashboard.runtime"]


def test_no_import_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    described = [
        " ; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c) for c in found
    ]
    assert not found, "import cycles:\n" + "\n".join(described)


def test_the_worker_imports_no_web_framework() -> None:
    """A worker process (``lianqin worker``: the CLI, the runtime, the loop, the publisher)
    loads no Flask, Flask-SocketIO or Dash."""
    code = (
        "import sys\n"
        "import dashboard.worker, dashboard.worker.loop, dashboard.worker.leases\n"
        "import dashboard.live.publisher, dashboard.live.deltas, dashboard.live.outbox\n"
        "import dashboard.runtime, dashboard.cli  # what `lianqin worker` loads\n"
        "web = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'flask_socketio', 'flask_login', 'flask_wtf', 'dash'))\n"
        "print(','.join(web))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"the worker imports {done.stdout.strip()}"
