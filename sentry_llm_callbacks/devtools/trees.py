"""A trace's shape: spans grouped by trace, and each trace walked as a tree.

Every view of traces (the receiver's text tree, the waterfall, the notebook's text summary)
walks spans through :func:`walk` and groups them through :func:`group_traces`, so they agree
on what a root is and on the order rows come in. Both read only a span's identity and start
(:class:`TreeSpan`), whatever else the span carries.

Example::

    from sentry_llm_callbacks.devtools.trees import group_traces, walk

    for trace_id, members in group_traces(spans).items():
        for depth, span in walk(members):
            print("  " * depth + span.span_id)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["TreeSpan", "group_traces", "walk"]


class TreeSpan(Protocol):
    """What :func:`walk` and :func:`group_traces` read of a span."""

    @property
    def trace_id(self) -> str: ...

    @property
    def span_id(self) -> str: ...

    @property
    def parent_id(self) -> str:
        """The parent's span id; empty for a root."""
        ...

    @property
    def start_ns(self) -> int: ...


S = TypeVar("S", bound=TreeSpan)


def walk(spans: Iterable[S]) -> list[tuple[int, S]]:
    """Spans depth-first in start order, each with its depth (0 for a root).

    A span whose parent is absent (an orphan, or a trace whose root has not arrived yet) or is
    the span itself is a root. Each span comes out exactly once, so a malformed trace cannot make
    the walk loop or lose a span: spans that no root reaches (their parents form a cycle) start
    trees of their own, earliest first, after the others. Iterative, so a deep agent loop does
    not hit the recursion limit.

    Example::

        for depth, span in walk(receiver.spans):
            print("  " * depth + span.name)
    """
    ordered = sorted(spans, key=lambda s: s.start_ns)
    ids = {s.span_id for s in ordered}
    children: dict[str, list[int]] = {}
    roots: list[int] = []
    for index, span in enumerate(ordered):
        if span.parent_id and span.parent_id in ids and span.parent_id != span.span_id:
            children.setdefault(span.parent_id, []).append(index)
        else:
            roots.append(index)
    out: list[tuple[int, S]] = []
    # Marked by position, not span id: two spans sharing an id both appear, their children once.
    seen = [False] * len(ordered)
    # Roots first; then whatever no root reached (parents in a cycle), earliest first.
    for start in [*roots, *range(len(ordered))]:
        stack = [(0, start)]
        while stack:
            depth, index = stack.pop()
            if seen[index]:
                continue
            seen[index] = True
            out.append((depth, ordered[index]))
            stack.extend((depth + 1, child) for child in reversed(children.get(ordered[index].span_id, [])))
    return out


def group_traces(spans: Iterable[S]) -> dict[str, list[S]]:
    """Spans by trace id, traces in the order their first span appears, spans in the order given.

    Example::

        for trace_id, members in group_traces(receiver.spans).items():
            print(trace_id, len(members))
    """
    traces: dict[str, list[S]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return traces
