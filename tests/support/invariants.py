"""The trace-invariant checker every scenario test runs what arrived through.

A scenario is one or more invocations; each invocation must arrive as exactly one trace with:

* exactly one root: no parent, or the explicit remote parent the test gave;
* no orphan: every other span's parent is a span of the same trace; span ids unique;
* time containment: a child starts at or after its parent and ends at or before it (spans named
  in ``lazy`` may end after their parent: a stream read after the method that made it returned);
* every span named (non-empty, at most 128 characters), with ``sentry.op`` and
  ``sentry.description`` equal to its name; only ``gen_ai.*`` ops carry ``gen_ai.operation.name``;
* each LLM call exactly one generation span (``gen_ai.chat`` / ``gen_ai.text_completion`` /
  ``gen_ai.embeddings``) with a model and its own usage (or usage reported missing, never 0);
* a span that recorded an exception is ERROR, and the root is not ERROR unless the test says the
  user saw an exception.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sentry_llm_callbacks.devtools.receiver import ReceivedSpan

GENERATION_OPS = frozenset({"gen_ai.chat", "gen_ai.text_completion", "gen_ai.embeddings"})
MAX_NAME = 128
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_SOURCE = "sentry_llm_callbacks.usage.source"


@dataclass
class Trace:
    """One checked trace, with the lookups scenario tests need."""

    spans: list[ReceivedSpan]
    root: ReceivedSpan
    _children: dict[str, list[ReceivedSpan]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        children: dict[str, list[ReceivedSpan]] = defaultdict(list)
        for span in self.spans:
            children[span.parent_span_id].append(span)
        for items in children.values():
            items.sort(key=lambda s: s.start_ns)
        self._children = dict(children)
        self._by_id = {s.span_id: s for s in self.spans}

    @property
    def trace_id(self) -> str:
        return self.root.trace_id

    def children(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        return list(self._children.get(span.span_id, ()))

    def parent(self, span: ReceivedSpan) -> ReceivedSpan | None:
        return self._by_id.get(span.parent_span_id)

    def ancestors(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        out = []
        current = self.parent(span)
        while current is not None:
            out.append(current)
            current = self.parent(current)
        return out

    def with_op(self, op: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.op == op]

    def named(self, name: str) -> ReceivedSpan:
        matches = [s for s in self.spans if s.name == name]
        assert len(matches) == 1, f"{len(matches)} spans named {name!r} in {sorted(s.name for s in self.spans)}"
        return matches[0]

    @property
    def generations(self) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.op in GENERATION_OPS]

    def usage(self) -> list[tuple[int, int]]:
        """(input, output) tokens of each generation that reported usage, sorted."""
        return sorted(
            (s.attributes[INPUT_TOKENS], s.attributes[OUTPUT_TOKENS])
            for s in self.generations
            if INPUT_TOKENS in s.attributes
        )

    def depth(self, span: ReceivedSpan) -> int:
        return len(self.ancestors(span))


def check_trace(
    spans: Iterable[ReceivedSpan],
    *,
    remote_parent: str | None = None,
    lazy: Iterable[str] = (),
    root_error: bool = False,
    generations: int | None = None,
    usage: Iterable[tuple[int, int]] | None = None,
) -> Trace:
    """Assert every invariant for the spans of one invocation and return the checked trace.

    ``generations``: how many LLM calls the scenario made (each must be one generation span).
    ``usage``: each call's (input, output) tokens, in any order. ``lazy``: names of spans that
    may end after their parent (documented lazy-stream cases). ``root_error``: the user saw an
    exception, so the root is ERROR.
    """
    spans = list(spans)
    assert spans, "no span arrived"
    trace_ids = {s.trace_id for s in spans}
    assert len(trace_ids) == 1, f"one invocation split into {len(trace_ids)} traces: {_names_by_trace(spans)}"
    ids = Counter(s.span_id for s in spans)
    duplicates = [i for i, n in ids.items() if n > 1]
    assert not duplicates, f"span ids used twice: {duplicates}"
    roots = [s for s in spans if s.parent_span_id not in ids]
    assert len(roots) == 1, f"{len(roots)} roots (or orphans): {[(s.name, s.parent_span_id) for s in roots]}"
    root = roots[0]
    if remote_parent is None:
        assert root.parent_span_id == "", f"root {root.name!r} has a parent nobody sent: {root.parent_span_id}"
    else:
        assert root.parent_span_id == remote_parent, f"root parent {root.parent_span_id} != {remote_parent}"
        assert root.parent_is_remote is True, "the root's parent must be marked remote"
    trace = Trace(spans, root)
    lazy = frozenset(lazy)
    for span in spans:
        _check_span(span)
        parent = trace.parent(span)
        if parent is not None:
            assert span.start_ns >= parent.start_ns, f"{span.name!r} starts before its parent {parent.name!r}"
            if span.name not in lazy:
                assert span.end_ns <= parent.end_ns, (
                    f"{span.name!r} ends {(span.end_ns - parent.end_ns) / 1e6:.3f} ms after its parent {parent.name!r}"
                )
    if not root_error:
        assert root.status_code != 2, f"root {root.name!r} is ERROR ({root.status_message}) but the user saw no error"
    else:
        assert root.status_code == 2, f"root {root.name!r} should be ERROR: the user saw an exception"
    if generations is not None:
        got = trace.generations
        assert len(got) == generations, f"{len(got)} generation spans for {generations} LLM calls: {_names(got)}"
    if usage is not None:
        assert trace.usage() == sorted(usage), f"usage per call {trace.usage()} != {sorted(usage)}"
    return trace


def check_traces(spans: Iterable[ReceivedSpan], count: int, **kwargs: object) -> list[Trace]:
    """Assert that ``count`` invocations arrived as ``count`` traces, each passing :func:`check_trace`
    (``kwargs`` apply to each); traces are returned in the order their roots started."""
    groups: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        groups[span.trace_id].append(span)
    assert len(groups) == count, f"{len(groups)} traces for {count} invocations: {_names_by_trace(list(spans))}"
    traces = [check_trace(group, **kwargs) for group in groups.values()]  # type: ignore[arg-type]
    return sorted(traces, key=lambda t: t.root.start_ns)


def _check_span(span: ReceivedSpan) -> None:
    assert span.name and len(span.name) <= MAX_NAME, f"bad span name {span.name!r}"
    assert span.start_ns <= span.end_ns, f"{span.name!r} ends before it starts"
    op = span.attributes.get("sentry.op")
    assert isinstance(op, str) and op, f"{span.name!r} has no sentry.op"
    assert span.attributes.get("sentry.description") == span.name, f"{span.name!r}: sentry.description differs"
    if not op.startswith("gen_ai."):
        assert "gen_ai.operation.name" not in span.attributes, f"{span.name!r} ({op}) would count as an LLM call"
    if op in GENERATION_OPS:
        model = span.attributes.get("gen_ai.request.model")
        assert isinstance(model, str) and model, f"generation {span.name!r} has no gen_ai.request.model"
        source = span.attributes.get(USAGE_SOURCE)
        if INPUT_TOKENS in span.attributes:
            assert isinstance(span.attributes[INPUT_TOKENS], int), f"{span.name!r}: input tokens not an int"
        elif span.status_code != 2:
            assert source == "missing", f"generation {span.name!r} has no usage and does not say it is missing"
    if "error.type" in span.attributes:
        assert span.status_code == 2, f"{span.name!r} recorded {span.attributes['error.type']} but is not ERROR"
    if span.status_code == 2:
        assert "error.type" in span.attributes or span.status_message == "abandoned", (
            f"{span.name!r} is ERROR without error.type"
        )


def _names(spans: Iterable[ReceivedSpan]) -> list[str]:
    return sorted(s.name for s in spans)


def _names_by_trace(spans: list[ReceivedSpan]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for span in spans:
        groups[span.trace_id[:8]].append(span.name)
    return dict(groups)
