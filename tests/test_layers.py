"""The package's layers are its folders, and arrows only go down: no import circle (TYPE_CHECKING
and function-level imports included), and each layer imports only the layers below it."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import sentry_llm_callbacks

PACKAGE = Path(sentry_llm_callbacks.__file__).resolve().parent
NAME = "sentry_llm_callbacks"

#: What each layer may import from the package, besides itself.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "config": {"base", "_version"},
    "core": {"base", "config", "_version"},
    "export": {"base", "config", "core", "_version"},
    "sentry_sdk": {"base", "core"},
    "langchain": {"base", "core"},
    "llamaindex": {"base", "core"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(module: str, source: str, known: Iterable[str], *, is_package: bool = False) -> set[str]:
    """The package modules ``module`` imports anywhere in ``source`` (a ``from . import x`` of a
    submodule counts as importing ``x`` only)."""
    known = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            subs = {f"{target}.{alias.name}" for alias in node.names} & known
            found |= subs
            if len(subs) < len(node.names) and target in known:
                found.add(target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & known
    found.discard(module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: imports_of(name, path.read_text(encoding="utf-8"), modules, is_package=path.name == "__init__.py")
        for name, path in modules.items()
    }


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_circle() -> None:
    assert cycles(_graph()) == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) in ALLOWED
        for target in targets
        if _layer(target) != _layer(module) and _layer(target) not in ALLOWED[_layer(module)]
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_the_checks_find_what_they_look_for() -> None:
    known = {f"{NAME}.core.a", f"{NAME}.core.b", f"{NAME}.export.c"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sentry_llm_callbacks.core import b\n"
        "def late():\n    from ..export import c\n"
    )
    found = imports_of(f"{NAME}.core.a", source, known)
    assert found == {f"{NAME}.core.b", f"{NAME}.export.c"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer(f"{NAME}.export.c") not in ALLOWED["core"]
