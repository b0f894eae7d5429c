"""How the modules of boincserver/ import each other: no import cycle (not even through an
import inside a function), and no module uses another module's `_private` name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "boincserver"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports(name: str, path: Path) -> tuple[set[str], dict[str, str], list[str]]:
    """The boincserver modules `name` imports anywhere in it, the local names bound to them,
    and the private names it takes from them (`from m import _x`)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    bound: dict[str, str] = {}
    private: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    found.add(alias.name)
                    if alias.asname:
                        bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "boincserver":
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:  # a module: `from boincserver import apps`
                    found.add(target)
                    bound[alias.asname or alias.name] = target
                else:  # a name of the module `base`
                    found.add(base)
                    if is_private(alias.name):
                        private.append(f"line {node.lineno}: from {base} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                and is_private(node.attr) and f"{bound[node.value.id]}.{node.attr}" not in MODULES:
            private.append(f"line {node.lineno}: {node.value.id}.{node.attr} ({bound[node.value.id]})")
    found.discard(name)
    return found, bound, private


GRAPH = {name: imports(name, path)[0] for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checks_see_a_cycle_and_a_private_name(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    module = tmp_path / "m.py"
    module.write_text("from boincserver import apps\nfrom boincserver.secrets import _write_private\n"
                      "def f():\n    return apps._fetch_dir\n")
    found, bound, private = imports("boincserver.m", module)
    assert found == {"boincserver.apps", "boincserver.secrets"} and bound == {"apps": "boincserver.apps"}
    assert private == ["line 2: from boincserver.secrets import _write_private",
                       "line 4: apps._fetch_dir (boincserver.apps)"]


def test_the_graph_covers_the_use_cases():
    assert {"boincserver.context", "boincserver.images"} <= GRAPH["boincserver.project"]
    assert "boincserver.sealed" in GRAPH["boincserver.backup"] and "boincserver.sealed" in GRAPH["boincserver.secrets"]


def test_no_import_cycle():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_of_another_module(name):
    assert imports(name, MODULES[name])[2] == []
