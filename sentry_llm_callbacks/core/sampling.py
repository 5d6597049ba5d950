"""Which traces are sent: the head decision (``sample_rate``), the parent's, and tail rules.

``sample_rate`` is a head decision made from the trace id, so every span of a trace (in any
process) agrees. A sampled ambient or remote parent keeps the trace whatever the rate says, so
the app's trace stays whole.

``configure(keep=...)`` adds a tail decision made when the trace's local root ends: a trace that
had an error, took longer or cost more than a threshold is kept whatever the head decision said.
Until then the trace is *pending*: it is recorded, and its finished spans wait in the trace
instead of going to the export queue. At the decision they are sent or dropped together, and
spans ending later follow the decision. Buffered spans are bounded per pipeline, in spans and
estimated bytes; a span that would go over the bound makes its trace decide at once with what is
known so far. A root that never ends is ended by the run reaper (abandoned, an ERROR), which
decides its trace then.

Without keep rules, or with ``sample_rate=1.0``, nothing is buffered: spans go straight to the
export queue, as they would with no sampling at all.
"""

from __future__ import annotations

import math
import sys
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import StatusCode

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.base.log import fork_safe
from sentry_llm_callbacks.config.options import KEEP_EXAMPLE
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import LazyContent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor

    from sentry_llm_callbacks.export.pipeline import ExportPipeline

#: Default bound on the spans pending traces hold, per process (``keep={"max_buffered_spans": ...}``).
MAX_BUFFERED_SPANS = 20_000
#: Default bound on their estimated size in bytes (``keep={"max_buffered_bytes": ...}``).
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
#: What a buffered span is counted for besides its string attributes: the span object, its
#: attribute dict and the ids (measured about 400-600 bytes for a typical span).
SPAN_OVERHEAD_BYTES = 512

_ERROR = StatusCode.ERROR


@dataclass(frozen=True, slots=True)
class KeepRules:
    """Tail rules of :func:`sentry_llm_callbacks.configure` (``keep=``), validated.

    ``errors``: keep a trace with any span in ERROR status (cancelled and abandoned runs too).
    ``slower_than``: keep a trace whose local root took more than this many seconds.
    ``costlier_than``: keep a trace whose generations cost more than this many USD in total
    (``gen_ai.cost.total_tokens``; a model with no known price adds nothing).
    ``max_buffered_spans`` / ``max_buffered_bytes``: bound what pending traces hold, per process.
    """

    errors: bool = False
    slower_than: float | None = None
    costlier_than: float | None = None
    max_buffered_spans: int = MAX_BUFFERED_SPANS
    max_buffered_bytes: int = MAX_BUFFERED_BYTES

    @property
    def any_rule(self) -> bool:
        return self.errors or self.slower_than is not None or self.costlier_than is not None

    def matched(self, *, errored: bool, seconds: float, cost: float) -> str | None:
        """The first rule the trace meets (``errors``, ``slower_than``, ``costlier_than``), or None."""
        if self.errors and errored:
            return "errors"
        if self.slower_than is not None and seconds > self.slower_than:
            return "slower_than"
        if self.costlier_than is not None and cost > self.costlier_than:
            return "costlier_than"
        return None


def parse_keep(value: object) -> KeepRules | None:
    """Validate ``configure(keep=...)``; None when no rule is on (then nothing is buffered).

    >>> parse_keep({"errors": True, "slower_than": 30}).slower_than
    30.0

    Raises :class:`ConfigurationError` naming the key, what is wrong and an example.
    """
    if value is None or isinstance(value, KeepRules):
        return value if value is None or value.any_rule else None
    if not isinstance(value, Mapping):
        raise ConfigurationError("keep", f"must be a dict of rules, not {type(value).__name__}", KEEP_EXAMPLE)
    unknown = sorted(str(k) for k in value if k not in KeepRules.__dataclass_fields__)
    if unknown:
        known = ", ".join(KeepRules.__dataclass_fields__)
        raise ConfigurationError("keep", f"unknown rule {unknown[0]!r} (known: {known})", KEEP_EXAMPLE)
    errors = value.get("errors", False)
    if not isinstance(errors, bool):
        raise ConfigurationError("keep", f"'errors' must be True or False, not {errors!r}", KEEP_EXAMPLE)
    rules = KeepRules(
        errors=errors,
        slower_than=_threshold(value, "slower_than", "seconds"),
        costlier_than=_threshold(value, "costlier_than", "USD"),
        max_buffered_spans=_bound(value, "max_buffered_spans", MAX_BUFFERED_SPANS),
        max_buffered_bytes=_bound(value, "max_buffered_bytes", MAX_BUFFERED_BYTES),
    )
    return rules if rules.any_rule else None


def _threshold(rules: Mapping[Any, Any], key: str, unit: str) -> float | None:
    value = rules.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
        problem = f"{key!r} must be a finite number of {unit}, 0 or more, not {value!r}"
        raise ConfigurationError("keep", problem, KEEP_EXAMPLE)
    return float(value)


def _bound(rules: Mapping[Any, Any], key: str, default: int) -> int:
    value = rules.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError("keep", f"{key!r} must be a positive integer, not {value!r}", KEEP_EXAMPLE)
    return value


# --------------------------------------------------------------------------- at the root


#: The counter of a trace sampling dropped at its root.
DROPPED = "traces_dropped_by_sampling"


def root_decision(
    pipeline: ExportPipeline, trace_id: int, parent_sampled: bool
) -> tuple[bool, PendingTrace | None, str | None]:
    """Whether a new trace is recorded, its pending tail decision (None: decided now), and the
    counter of a decision made now, for the caller to count once the trace is really started
    (the export backlog may still refuse it). A pending trace is counted when it is decided.
    With ``sample_rate=1.0`` there is nothing to decide and nothing is counted.
    """
    destination = pipeline.destination
    if destination.sample_rate >= 1.0:
        return True, None, None
    if parent_sampled:
        return True, None, "traces_kept_by_parent"
    rules: KeepRules | None = destination.keep
    head = pipeline.is_sampled(trace_id)
    if rules is None:
        return head, None, "traces_kept_by_head" if head else DROPPED
    return True, PendingTrace(_sampler_for(pipeline, rules), head), None


_samplers_lock = fork_safe(sys.modules[__name__], "_samplers_lock")
#: The tail sampler of the current pipeline; a new pipeline (``configure()``, a forked child)
#: gets a new one, so a budget never outlives the pipeline its spans were meant for.
_current: tuple[weakref.ref[ExportPipeline], TailSampler] | None = None


def _sampler_for(pipeline: ExportPipeline, rules: KeepRules) -> TailSampler:
    global _current
    current = _current
    if current is not None and current[0]() is pipeline:
        return current[1]
    with _samplers_lock:
        current = _current
        if current is None or current[0]() is not pipeline:
            sampler = TailSampler(pipeline.span_processor, rules)
            # When the pipeline closes (shutdown, exit, a new configure()), traces still waiting
            # for their root are decided with what is known: sent or counted, never lost.
            pipeline.before_close(sampler.decide_all)
            current = (weakref.ref(pipeline), sampler)
            _current = current
    return current[1]


# --------------------------------------------------------------------------- pending traces

#: Outcomes of a tail decision.
_KEEP_BY_RULE = "rule"
_KEEP_BY_HEAD = "head"
_DROP = "drop"


class TailSampler:
    """The buffer budget of one pipeline's pending traces, and where decided spans go.

    One lock guards the budget and every pending trace's state: it is held for a few
    assignments per span, never while a span is built or exported.
    """

    def __init__(self, processor: SpanProcessor, rules: KeepRules) -> None:
        fork_safe(self, "lock")
        self.processor = processor
        self.rules = rules
        self.buffered_spans = 0
        self.buffered_bytes = 0
        #: Undecided traces holding buffered spans: decided early when the pipeline closes.
        self.holding: set[PendingTrace] = set()

    def decide_all(self) -> None:
        """Decide every trace still holding spans, with what is known, and send or drop them.
        For a pipeline about to close: its spans would otherwise be lost without a count."""
        with self.lock:
            holding, self.holding = list(self.holding), set()
        for pending in holding:
            pending.decide_early()

    def deliver(self, spans: Sequence[tuple[ReadableSpan, dict[str, Any]]], outcome: str) -> None:
        """Hand decided spans to the export queue, or count them dropped.

        A trace kept by a rule would have been kept whatever the head decision said: its
        inclusion probability is 1, so its spans carry ``sentry.client_sample_rate`` 1.0 and
        Sentry counts each once, while head-kept traces carry the rate and count ``1 / rate``
        times. That keeps Sentry's extrapolated counts right for both. ``attrs`` is the dict
        the span was built with (the span holds it), written before the span leaves.
        """
        if outcome is _DROP:
            COUNTERS.add("spans_dropped", len(spans))
            return
        on_end = self.processor.on_end
        for span, attrs in spans:
            if outcome is _KEEP_BY_RULE:
                attrs[attr.CLIENT_SAMPLE_RATE] = 1.0
            on_end(span)


class PendingTrace:
    """A trace recorded until its tail decision: its buffered spans and what the rules read."""

    __slots__ = ("_sampler", "cost", "errored", "head", "outcome", "size", "spans", "started_ns")

    def __init__(self, sampler: TailSampler, head: bool) -> None:
        self._sampler = sampler
        self.head = head
        self.started_ns = time.time_ns()  # the root starts now: what an early decision measures
        self.spans: list[tuple[ReadableSpan, dict[str, Any]]] = []
        self.size = 0
        self.errored = False
        self.cost = 0.0
        self.outcome: str | None = None

    def finished(self, span: ReadableSpan, attrs: dict[str, Any], *, root: bool) -> None:
        """Take a finished span of this trace: buffer it, or decide (the root ended, or the buffer
        is full) and send or drop everything buffered with it. ``attrs``: the span's attribute dict."""
        sampler = self._sampler
        size = estimate_bytes(attrs, span.events)
        errored = span.status.status_code is _ERROR
        cost = attrs.get(attr.COST_TOTAL)
        with sampler.lock:
            outcome = self.outcome
            counted: str | None = None
            if outcome is not None:
                released = [(span, attrs)]
            else:
                self.errored = self.errored or errored
                if type(cost) in (float, int):
                    self.cost += cost
                if not root and (
                    sampler.buffered_spans < sampler.rules.max_buffered_spans
                    and sampler.buffered_bytes + size <= sampler.rules.max_buffered_bytes
                ):
                    if not self.spans:
                        sampler.holding.add(self)
                    self.spans.append((span, attrs))
                    self.size += size
                    sampler.buffered_spans += 1
                    sampler.buffered_bytes += size
                    return
                outcome, counted = self._decide(span if root else None)
                released = self._release()
                released.append((span, attrs))
                self.outcome = outcome
        if counted is not None:
            COUNTERS.add(counted)
            if not root:
                COUNTERS.add("traces_decided_early")
        sampler.deliver(released, outcome)

    def decide_early(self) -> None:
        """Decide now, with what is known, and send or drop what is buffered (no-op if decided)."""
        sampler = self._sampler
        with sampler.lock:
            if self.outcome is not None:
                return
            outcome, counted = self._decide(None)
            released = self._release()
            self.outcome = outcome
        COUNTERS.add(counted)
        COUNTERS.add("traces_decided_early")
        sampler.deliver(released, outcome)

    def _release(self) -> list[tuple[ReadableSpan, dict[str, Any]]]:
        """Take the buffered spans out of the budget (the sampler's lock is held)."""
        sampler = self._sampler
        released, self.spans = self.spans, []
        sampler.buffered_spans -= len(released)
        sampler.buffered_bytes -= self.size
        self.size = 0
        sampler.holding.discard(self)
        return released

    def _decide(self, root: ReadableSpan | None) -> tuple[str, str]:
        """The outcome and the counter it is counted in. Early (no root yet): with what is known."""
        if root is not None and root.end_time is not None and root.start_time is not None:
            seconds = (root.end_time - root.start_time) / 1e9
        else:
            seconds = (time.time_ns() - self.started_ns) / 1e9
        rule = self._sampler.rules.matched(errored=self.errored, seconds=seconds, cost=self.cost)
        if rule is not None:
            return _KEEP_BY_RULE, f"traces_kept_by_{rule}"
        if self.head:
            return _KEEP_BY_HEAD, "traces_kept_by_head"
        return _DROP, DROPPED


def estimate_bytes(attrs: Mapping[str, Any], events: Sequence[Event] = ()) -> int:
    """What a buffered span costs, roughly: a fixed overhead, its string attributes, and its
    captured content, measured by what it holds (see :func:`content_size`), never above the
    content limit it is rendered within."""
    size = SPAN_OVERHEAD_BYTES
    for value in attrs.values():
        kind = type(value)
        if kind is str:
            size += len(value)
        elif kind is LazyContent:
            content = value.value
            limit = value.policy.max_chars
            size += min(len(content), limit) if type(content) is str else content_size(content, limit)
    for event in events:  # exception events: message and stack trace
        for value in (event.attributes or {}).values():
            if type(value) is str:
                size += len(value)
    return size


#: How many values :func:`content_size` looks at before it counts the content at its limit.
MAX_SIZED_VALUES = 256
#: What a value with no text of its own (a number, None, a bool) is counted for.
_SCALAR_BYTES = 8


def content_size(value: Any, limit: int) -> int:
    """The size of captured content (a chain's input dict, a list of messages...): the length of
    the text it holds plus a little per value, read through dicts, sequences and objects'
    attributes; at most ``limit``. Content too large or too deep to walk cheaply counts as
    ``limit``, so the estimate errs on the side of the buffer bound."""
    size = 0
    pending = [value]
    for _ in range(MAX_SIZED_VALUES):
        if not pending:
            return min(size, limit)
        current = pending.pop()
        kind = type(current)
        if kind is str or kind is bytes:
            size += len(current) + 2
        elif kind is dict or isinstance(current, Mapping):
            size += 2
            for key, item in current.items():
                pending.append(key)
                pending.append(item)
        elif kind is list or kind is tuple or isinstance(current, (list, tuple, set, frozenset)):
            size += 2
            pending.extend(current)
        elif current is None or kind in (int, float, bool):
            size += _SCALAR_BYTES
        else:
            fields = getattr(current, "__dict__", None)
            if type(fields) is not dict:
                return limit  # an object whose content we cannot see: assume the most
            size += _SCALAR_BYTES
            pending.extend(fields.values())
        if size >= limit:
            return limit
    return limit if pending else min(size, limit)
