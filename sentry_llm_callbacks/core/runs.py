"""Open runs: what a run holds while it is open, what its trace shares, and the run map.

The map is shared by every handler of every framework in the process. A run's entry and its
parent's count of open children change together under one lock (threads ending siblings at once
would otherwise lose an update); lookups take no lock.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

from sentry_llm_callbacks.base.log import fork_safe
from sentry_llm_callbacks.core.calls import PromptRef
from sentry_llm_callbacks.core.content import ContentPolicy
from sentry_llm_callbacks.core.usage import Usage

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from sentry_llm_callbacks.core.failures import Failure
    from sentry_llm_callbacks.core.pricing import PriceTable
    from sentry_llm_callbacks.core.sampling import PendingTrace
    from sentry_llm_callbacks.core.sink import SpanSink

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)


@dataclass(slots=True)
class TraceState:
    """What every span of one trace shares, resolved once at its root."""

    sink: SpanSink
    resource: Resource
    scope: InstrumentationScope
    sampled: bool
    max_open_runs: int
    attributes: dict[str, Any]
    trace_name: str | None
    span_name: str | None
    generation_name: str | None
    policy: ContentPolicy
    prices: PriceTable | None = None
    #: Exceptions runs of this trace failed with, kept until the local root ends (None: not kept).
    failures: list[Failure] | None = None
    root_span_id: int = 0
    #: Waiting for the tail decision made when the local root ends (None: already decided).
    tail: PendingTrace | None = None
    #: Where the root started (its asyncio task, else its thread's id): what ``last_trace()`` asks.
    origin: Any = None
    #: The framework's conversation key of the root run (a LangGraph thread id), if any.
    conversation: str | None = None
    #: A run of this trace stopped at an interrupt (LangGraph's ``interrupt()``).
    interrupted: bool = False
    #: The prompt the trace's metadata names, for its chat and completion runs (None: none named).
    prompt: PromptRef | None = None


@dataclass(slots=True)
class Run:
    """An open run: its ids, name and the attributes gathered so far (the span is built at its end)."""

    key: Hashable
    context: SpanContext
    parent: SpanContext | None
    trace: TraceState
    kind: str
    name: str
    name_is_default: bool
    subject: str  # the framework's own name for what ran (graph, chain, tool, model)
    policy: ContentPolicy
    started: float
    start_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status: Status = _UNSET
    events: list[Event] | None = None
    first_chunk_at: float | None = None
    #: Started below a hidden run: a hidden tag on it was inherited, not its own.
    under_hidden: bool = False
    #: Usage reported before the run ends (LlamaIndex reports it in an event before the span exits).
    usage: Usage | None = None
    #: The nearest enclosing agent run (Sentry filters every span of an agent by its name).
    agent: Run | None = None
    #: The recorded run this one nests under, and how many runs nest under this one right now
    #: (a hint: it makes "does anything still run below this run?" free in the common case).
    parent_run: Run | None = None
    open_children: int = 0
    #: Span links (a resumed run's root: to the interrupted run's root).
    links: tuple[Link, ...] = ()
    #: The prompt a template rendered just before this run, under the same parent: the model
    #: calls in this run (or this run itself, a model call) were made from it.
    prompt: PromptRef | None = None
    #: A prompt a template rendered under this run, for the next run started under it.
    next_prompt: PromptRef | None = None

    @property
    def trace_id(self) -> int:
        return self.context.trace_id

    @property
    def is_local_root(self) -> bool:
        return self.context.span_id == self.trace.root_span_id


class RunMap:
    """Run key -> open :class:`Run`, and the hidden runs (no span; their children attach to
    their nearest recorded ancestor)."""

    def __init__(self) -> None:
        self.runs: dict[Hashable, Run] = {}
        self.hidden: dict[Hashable, tuple[Hashable | None, float]] = {}
        #: Guards a run's entry together with its parent's ``open_children``.
        fork_safe(self, "_lock")

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def open_runs(self) -> int:
        return len(self.runs) + len(self.hidden)

    def resolve_parent(self, parent_key: Hashable | None) -> Run | None:
        """The recorded run a child of ``parent_key`` nests under: that run, or the nearest
        recorded ancestor of a hidden run; None when ``parent_key`` is not a run here."""
        while parent_key is not None:
            run = self.runs.get(parent_key)
            if run is not None:
                return run
            hidden = self.hidden.get(parent_key)
            if hidden is None:
                return None
            parent_key = hidden[0]
        return None

    def hide(self, key: Hashable, parent_key: Hashable | None) -> None:
        self.hidden[key] = (parent_key, time.monotonic())

    def is_under_hidden(self, parent_key: Hashable | None) -> bool:
        """True if ``parent_key`` is a hidden run or below one (so a hidden tag is inherited)."""
        if parent_key is None:
            return False
        if parent_key in self.hidden:
            return True
        run = self.runs.get(parent_key)
        return run is not None and run.under_hidden

    def add(self, run: Run) -> None:
        parent = run.parent_run
        if parent is None:
            self.runs[run.key] = run
            return
        with self._lock:
            parent.open_children += 1
            self.runs[run.key] = run

    def pop(self, key: Hashable) -> Run | None:
        """Take a run out (or forget a hidden one); None when ``key`` is not open."""
        with self._lock:
            run = self.runs.pop(key, None)
            if run is not None and run.parent_run is not None:
                run.parent_run.open_children -= 1
        if run is None:
            self.hidden.pop(key, None)
        return run

    def open_descendants(self, key: Hashable) -> list[Run]:
        """The runs still open below ``key``, deepest first (empty in the common case, for free)."""
        run = self.runs.get(key)
        if run is None or run.open_children <= 0:
            return []
        found: list[tuple[int, Run]] = []
        for other in list(self.runs.values()):
            depth, ancestor = 1, other.parent_run
            while ancestor is not None and ancestor is not run:
                depth, ancestor = depth + 1, ancestor.parent_run
            if ancestor is run:
                found.append((depth, other))
        found.sort(key=lambda item: -item[0])
        return [other for _, other in found]

    def older_than(self, cutoff: float) -> Iterator[Run]:
        """Take out, one by one, the runs started before ``cutoff`` (monotonic); forget hidden ones."""
        for key, run in list(self.runs.items()):
            if run.started < cutoff and self.runs.get(key) is run and self.pop(key) is run:
                yield run
        for key, (_, started) in list(self.hidden.items()):
            if started < cutoff:
                self.hidden.pop(key, None)

    def clear(self) -> None:
        self.runs.clear()
        self.hidden.clear()
