"""A Griffe extension for the API reference: the package's docstrings are written in the
reStructuredText habits of Python's own documentation (``Example::`` before an indented example,
``>>>`` sessions, ``:func:`name``` roles), while mkdocstrings renders docstrings as Markdown.
This turns those three habits into their Markdown forms; the text itself is left as written."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|data|attr|mod|exc|obj):`~?([^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    shown = target.rsplit(".", 1)[-1] if match.group(0).count("`~") else target
    return f"`{shown}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The indented block that follows a ``::`` paragraph, from ``start``, as a fenced block."""
    body: list[str] = []
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines):
        return [], start
    base = _indent(lines[i])
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= base):
        body.append(lines[i][base:] if lines[i].strip() else "")
        i += 1
    while body and not body[-1]:
        body.pop()
    language = "pycon" if body[0].startswith(">>>") else "python"
    return ["", f"```{language}", *body, "```", ""], i


def _doctest_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """A ``>>>`` session written at the paragraph's own indentation, up to the next blank line."""
    i = start
    while i < len(lines) and lines[i].strip():
        i += 1
    return ["```pycon", *lines[start:i], "```"], i


def to_markdown(text: str) -> str:
    lines = _ROLE.sub(_role, text).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            out.append(head + ":" if head and not head.endswith(":") else head)
            block, i = _literal_block(lines, i + 1)
            out.extend(block)
            continue
        if line.lstrip().startswith(">>>") and (not out or not out[-1].strip()):
            block, i = _doctest_block(lines, i)
            out.extend(block)
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class ReSTToMarkdown(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.docstring is not None:
            pkg.docstring.value = to_markdown(pkg.docstring.value)
