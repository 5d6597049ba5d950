"""No module but attributes.py types an attribute key: a retyped key is a key that can drift.

Every string literal of the package's code (docstrings aside) that looks like a dotted key is
checked: a key Sentry registers, or one in a namespace our keys use, fails the suite unless it is
listed below as not being an attribute key.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sentry_conventions.attributes import ATTRIBUTE_METADATA

import sentry_llm_callbacks
from sentry_llm_callbacks.core import attributes as attr

PACKAGE = Path(sentry_llm_callbacks.__file__).resolve().parent
DOTTED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.?$")

#: Dotted strings that are not attribute keys, with what they are.
NOT_KEYS: dict[str, str] = {
    "sentry_llm_callbacks.langchain": "module imported on demand",
    "sentry_llm_callbacks.llamaindex": "module imported on demand",
    "sentry.io": "Sentry's SaaS host name",
    "trace.trace_id": "a key of the user's metadata, named in a message",
    "trace.parent_span_id": "a key of the user's metadata, named in a message",
}


def _namespaces() -> set[str]:
    """First segments of every key attributes.py defines (``trace.metadata.`` counts whole:
    the rest of ``trace.*`` is the user's metadata, not ours)."""
    keys = [value for name, value in vars(attr).items() if name.isupper() and isinstance(value, str)]
    keys += list(attr.OWN_KEYS)
    out = {key.split(".")[0] for key in keys if "." in key and not key.startswith("trace.")}
    return out | {attr.TRACE_METADATA_PREFIX.rstrip(".")}


def _looks_like_a_key(text: str, namespaces: set[str]) -> bool:
    if "." not in text or not DOTTED.match(text):
        return False
    return text.rstrip(".") in ATTRIBUTE_METADATA or any(text == ns or text.startswith(ns + ".") for ns in namespaces)


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _retyped_keys(source: str, namespaces: set[str]) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value not in NOT_KEYS
        and _looks_like_a_key(node.value, namespaces)
    ]


def test_no_module_but_attributes_types_a_key() -> None:
    namespaces = _namespaces()
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "attributes.py"
        for line, text in _retyped_keys(path.read_text(encoding="utf-8"), namespaces)
    ]
    assert not found, "use the constant from sentry_llm_callbacks/attributes.py:\n" + "\n".join(found)


def test_the_check_finds_retyped_keys() -> None:
    """What the check above would say about code that retypes keys, and about code that doesn't."""
    namespaces = _namespaces()
    retyped = (
        'resource = {"service.name": name}\n'
        'span.set_attribute("gen_ai.usage.input_tokens", 3)\n'
        'key = f"trace.metadata.{name}"\n'
        'prefix = "sentry_llm_callbacks."\n'
        'event = {"exception.type": kind}\n'
    )
    assert sorted(line for line, _ in _retyped_keys(retyped, namespaces)) == [1, 2, 3, 4, 5]
    clean = (
        '"""Docstrings may name ``gen_ai.usage.input_tokens``."""\n'
        'provider = "azure.ai.openai"\n'
        'module = "llama_index.core"\n'
        'release = "v2.1.0"\n'
        'problem = ("trace.trace_id", "must be a string")\n'
        "span.set_attribute(attr.USAGE_INPUT_TOKENS, 3)\n"
    )
    assert _retyped_keys(clean, namespaces) == []


def test_every_allowed_string_is_still_in_the_code() -> None:
    """An allowance nobody needs any more should go, so it cannot hide a key later."""
    literals: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
    assert set(NOT_KEYS) <= literals, sorted(set(NOT_KEYS) - literals)


def test_attributes_takes_from_sentry_conventions_every_key_it_registers() -> None:
    """Every key attributes.py types that Sentry's registry has a live entry for is listed in
    ``FROM_SENTRY_CONVENTIONS`` with the registry's name for it (held equal by
    tests/core/test_attribute_sources.py), so no registered key can drift from the registry."""
    source = Path(attr.__file__).read_text(encoding="utf-8")
    typed = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    live = {key for key in typed if key in ATTRIBUTE_METADATA and ATTRIBUTE_METADATA[key].deprecation is None}
    held = {getattr(attr, name) for name in attr.FROM_SENTRY_CONVENTIONS}
    assert not sorted(live - held), f"list in FROM_SENTRY_CONVENTIONS: {sorted(live - held)}"
