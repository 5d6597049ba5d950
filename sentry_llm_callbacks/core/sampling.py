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

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import StatusCode

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import fork_safe
from sentry_llm_callbacks.config.keep import KeepRules
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import LazyContent
from sentry_llm_callbacks.core.finishing import with_attributes
from sentry_llm_callbacks.core.sink import SpanSink

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Event, ReadableSpan

#: What a buffered span is counted for besides its string attributes: the span object, its
#: attribute dict and the ids (measured about 400-600 bytes for a typical span).
SPAN_OVERHEAD_BYTES = 512

_ERROR = StatusCode.ERROR


# --------------------------------------------------------------------------- at the root


#: The counter of a trace sampling dropped at its root.
DROPPED = "traces_dropped_by_sampling"


class TraceSampling:
    """Every sampling decision for one destination's traces: the head decision at each root, and
    with ``keep`` rules the tail decisions, whose pending spans it holds until they are decided.

    Whoever retires the destination calls :meth:`decide_all` before closing ``sink``: traces
    still waiting for their root are then decided with what is known, sent or counted, never lost.
    """

    def __init__(self, sample_rate: float, keep: KeepRules | None, sink: SpanSink) -> None:
        self.sample_rate = sample_rate
        self._head = TraceIdRatioBased(sample_rate) if sample_rate < 1.0 else None
        self._tail = TailSampler(sink, keep) if keep is not None and sample_rate < 1.0 else None

    def is_sampled(self, trace_id: int) -> bool:
        """Per trace, from the trace id alone, so every span of a trace agrees (in any process)."""
        if self._head is None:
            return True
        return self._head.should_sample(None, trace_id, "root").decision.is_sampled()

    def root_decision(self, trace_id: int, parent_sampled: bool) -> tuple[bool, PendingTrace | None, str | None]:
        """Whether a new trace is recorded, its pending tail decision (None: decided now), and the
        counter of a decision made now, for the caller to count once the trace is really started
        (the export backlog may still refuse it). A pending trace is counted when it is decided.
        With ``sample_rate=1.0`` there is nothing to decide and nothing is counted.
        """
        if self._head is None:
            return True, None, None
        if parent_sampled:
            return True, None, "traces_kept_by_parent"
        head = self.is_sampled(trace_id)
        if self._tail is None:
            return head, None, "traces_kept_by_head" if head else DROPPED
        return True, PendingTrace(self._tail, head), None

    def decide_all(self) -> None:
        """Decide every trace still holding spans, with what is known (before the sink closes)."""
        if self._tail is not None:
            self._tail.decide_all()

    @property
    def buffered(self) -> tuple[int, int]:
        """Spans and estimated bytes the pending traces hold right now."""
        if self._tail is None:
            return 0, 0
        return self._tail.buffered_spans, self._tail.buffered_bytes


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

    def __init__(self, sink: SpanSink, rules: KeepRules) -> None:
        fork_safe(self, "lock")
        self.sink = sink
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

    def deliver(self, spans: Sequence[ReadableSpan], outcome: str) -> None:
        """Hand decided spans to the sink, or count them dropped.

        A trace kept by a rule would have been kept whatever the head decision said: its
        inclusion probability is 1, so its spans carry ``sentry.client_sample_rate`` 1.0 and
        Sentry counts each once, while head-kept traces carry the rate and count ``1 / rate``
        times. That keeps Sentry's extrapolated counts right for both. A span is never edited
        once built: a rule-kept one leaves as a copy carrying the rate of 1.0.
        """
        if outcome is _DROP:
            COUNTERS.add("spans_dropped", len(spans))
            return
        on_end = self.sink.on_end
        for span in spans:
            if outcome is _KEEP_BY_RULE:
                span = with_attributes(span, {**(span.attributes or {}), attr.CLIENT_SAMPLE_RATE: 1.0})
            on_end(span)


class PendingTrace:
    """A trace recorded until its tail decision: its buffered spans and what the rules read."""

    __slots__ = ("_sampler", "cost", "errored", "head", "outcome", "size", "spans", "started_ns")

    def __init__(self, sampler: TailSampler, head: bool) -> None:
        self._sampler = sampler
        self.head = head
        self.started_ns = time.time_ns()  # the root starts now: what an early decision measures
        self.spans: list[ReadableSpan] = []
        self.size = 0
        self.errored = False
        self.cost = 0.0
        self.outcome: str | None = None

    def finished(self, span: ReadableSpan, attrs: dict[str, Any], *, root: bool) -> None:
        """Take a finished span of this trace: buffer it, or decide (the root ended, or the buffer
        is full) and send or drop everything buffered with it. ``attrs``: the span's attributes, read
        for the rules and the buffer estimate."""
        sampler = self._sampler
        size = estimate_bytes(attrs, span.events)
        errored = span.status.status_code is _ERROR
        cost = attrs.get(attr.COST_TOTAL)
        with sampler.lock:
            outcome = self.outcome
            counted: str | None = None
            if outcome is not None:
                released = [span]
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
                    self.spans.append(span)
                    self.size += size
                    sampler.buffered_spans += 1
                    sampler.buffered_bytes += size
                    return
                outcome, counted = self._decide(span if root else None)
                released = self._release()
                released.append(span)
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

    def _release(self) -> list[ReadableSpan]:
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
    for event in events:  # exception events' message and stack trace; custom events' content
        for value in (event.attributes or {}).values():
            if type(value) is str:
                size += len(value)
            elif type(value) is LazyContent:
                size += content_size(value.value, value.policy.max_chars)
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
