"""The framework-neutral recorder: runs in, OpenTelemetry spans out.

Framework adapters translate their events into calls on :class:`Recorder`: start a run of some
kind (with the run's own metadata as a neutral :class:`~.metadata.MetadataLayer`), record what
it carried as the neutral values of :mod:`.calls` (a model request and response, a tool call, a
retrieval, a chain's input and output), end it or fail it. The recorder alone turns those values
into span attributes. It keeps the map from run key to open span, resolves the trace's metadata
once at the root, names spans, applies the content policy (Privacy Mode is decided in one place,
:meth:`Recorder.set_content`), and hands finished spans to the shared export pipeline.

It never attaches or detaches OpenTelemetry context: parents are passed explicitly, and the
ambient parent (the app's own OpenTelemetry or Sentry span) is read once, at the root.

A run holds only its ids, name and the attributes gathered so far; when it ends, the recorder
builds the finished ``ReadableSpan`` in one go and hands it to the pipeline's span processors. This
skips the SDK's live-span machinery (a lock, a sampler call and attribute validation per span),
which is most of the cost of a span: sampling is decided once per trace, at the root, and the
attribute values are valid by construction.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import traceback
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import fork_safe, log_once, warn_user
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core import calls
from sentry_llm_callbacks.core.content import ContentPolicy, LazyContent, capture, clean_str, scalar_or_json
from sentry_llm_callbacks.core.kinds import GENERATIONS, OPS, RunKind
from sentry_llm_callbacks.core.message_shapes import prompt_messages, tool_definitions
from sentry_llm_callbacks.core.metadata import (
    ENVIRONMENT,
    GENERATION_NAME,
    PARENT_SPAN_ID,
    RELEASE,
    SPAN_NAME,
    STEERING_KEYS,
    TRACE_ID,
    TRACE_NAME,
    MetadataLayer,
    current_context_layer,
    is_native_trace_id,
    kept_trace_id,
    parse_span_id,
    trace_id_for,
)
from sentry_llm_callbacks.core.pricing import PriceTable, cost_of
from sentry_llm_callbacks.core.sampling import DROPPED, PendingTrace
from sentry_llm_callbacks.core.sink import SpanSink
from sentry_llm_callbacks.core.usage import Usage, usage_attributes

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from sentry_llm_callbacks.core.target import Target

MAX_NAME = 128
#: Longest tool description kept, in characters.
MAX_DESCRIPTION = 1024

# The run kinds, by their old names (``RunKind`` members: each equals its string value).
AGENT = RunKind.AGENT
CHAT = RunKind.CHAT
COMPLETION = RunKind.COMPLETION
EMBEDDINGS = RunKind.EMBEDDINGS
TOOL = RunKind.TOOL
CHAIN = RunKind.CHAIN
RETRIEVER = RunKind.RETRIEVER
_OPS = OPS


def default_name(kind: str, subject: str | None) -> str:
    """``chat gpt-4o``, ``execute_tool search``, ``invoke_agent LangGraph``; chains: their own name."""
    operation = _OPS[kind][1]
    subject = subject or ""
    if operation is None:
        return subject.replace("/", "_") or str(kind)
    if kind in GENERATIONS:
        subject = subject.rpartition("/")[2]  # "openai/gpt-4o" -> "gpt-4o": generated names have no "/"
    subject = subject.replace("/", "_")
    return f"{operation} {subject}" if subject else operation


def _fit_name(name: str) -> str:
    name = clean_str(name.strip())
    return name[:MAX_NAME] if len(name) > MAX_NAME else name


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


#: Kept per trace at most; more failures in one trace are not reported.
MAX_FAILURES_PER_TRACE = 32


@dataclass(slots=True, frozen=True)
class Failure:
    """An exception a run failed with, kept until the trace's local root ends, when it is known
    whether the exception reached the user's code."""

    error: BaseException
    context: SpanContext
    parent: SpanContext | None
    op: str
    attributes: Mapping[str, Any]
    private: bool


class FailureReporter(Protocol):
    """Receives the failures of a trace when its local root ends."""

    def wants_failures(self) -> bool:
        """Asked at each root start: keep this trace's failures? Must be cheap."""
        ...

    def report(
        self, failures: list[Failure], *, root_error: BaseException | None, root_attributes: Mapping[str, Any]
    ) -> None:
        """``root_error``: the exception the root ended with (it reached the caller), or None."""
        ...


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)


@dataclass(slots=True)
class Run:
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

    @property
    def trace_id(self) -> int:
        return self.context.trace_id


def _new_span_id() -> int:
    return random.getrandbits(64) or 1


AmbientParent = Callable[[], "SpanContext | Hashable | None"]
#: The app's span where a root run starts, when OpenTelemetry has none (its Sentry SDK span, say).
AmbientSpan = Callable[[], "SpanContext | None"]


class Recorder:
    """Keeps the run -> span map for the whole process (every handler, both frameworks)."""

    def __init__(
        self,
        targets: Callable[[], Target | None],
        *,
        failure_reporter: FailureReporter | None = None,
        ambient_span: AmbientSpan | None = None,
        at_root: Callable[[], None] | None = None,
    ) -> None:
        """``targets`` returns what a trace starting now is recorded for (None: not configured,
        nothing is recorded); ``ambient_span`` finds the app's span where OpenTelemetry has none;
        ``at_root`` is called as each trace's root starts."""
        self._targets = targets
        self._failure_reporter = failure_reporter
        self._ambient_span = ambient_span
        self._at_root = at_root
        self._runs: dict[Hashable, Run] = {}
        #: Guards a run's entry in the map together with its parent's ``open_children`` (a
        #: read-modify-write that threads ending siblings at once would otherwise lose).
        fork_safe(self, "_lock")
        self._hidden: dict[Hashable, tuple[Hashable | None, float]] = {}
        #: Extra places a root run may find its parent, asked in order before OpenTelemetry and
        #: Sentry (used for nesting across frameworks). Each returns a run key of this recorder,
        #: a SpanContext, or None.
        self.ambient_parents: list[AmbientParent] = []

    # -- lookups ----------------------------------------------------------------------

    def get(self, key: Hashable) -> Run | None:
        return self._runs.get(key)

    @property
    def open_runs(self) -> int:
        return len(self._runs) + len(self._hidden)

    def resolve_parent(self, parent_key: Hashable | None) -> Run | None:
        """The recorded run a child of ``parent_key`` nests under: that run, or the nearest
        recorded ancestor of a hidden run; None when ``parent_key`` is not a run of this recorder."""
        while parent_key is not None:
            run = self._runs.get(parent_key)
            if run is not None:
                return run
            hidden = self._hidden.get(parent_key)
            if hidden is None:
                return None
            parent_key = hidden[0]
        return None

    # -- starting ---------------------------------------------------------------------

    def hide_run(self, key: Hashable, parent_key: Hashable | None) -> None:
        """Record a run that gets no span: its children attach to its nearest recorded ancestor."""
        self._hidden[key] = (parent_key, time.monotonic())

    def is_under_hidden(self, parent_key: Hashable | None) -> bool:
        """True if ``parent_key`` is a hidden run or below one (so a hidden tag is inherited)."""
        if parent_key is None:
            return False
        if parent_key in self._hidden:
            return True
        run = self._runs.get(parent_key)
        return run is not None and run.under_hidden

    def start_run(
        self,
        key: Hashable,
        parent_key: Hashable | None,
        *,
        kind: str,
        name: str | None,
        explicit_name: bool,
        handler_layer: MetadataLayer | None,
        run_metadata: MetadataLayer | None = None,
        steers_own_trace: bool = False,
        agent_name: str | None = None,
        graph_step: calls.GraphStep | None = None,
        attributes: dict[str, Any] | None = None,
        under_hidden: bool = False,
    ) -> Run | None:
        """Open a span for a run. Returns None when the run is not traced (not configured,
        sampled out, or too many open runs).

        ``handler_layer`` is the metadata of the handler that saw the run, ``run_metadata`` the
        run's own (the invocation's); a root run layers them over ``trace_context()``, a nested
        run takes only a tightened Privacy Mode from its own. ``steers_own_trace``: the run's
        metadata names its trace or parent span, so it never nests under another framework's
        run. ``agent_name`` names an agent run (default: ``name``); ``graph_step`` marks a
        graph node's run. ``attributes`` are written as they are.
        """
        subject = name
        parent = self.resolve_parent(parent_key)
        if parent is None and self.ambient_parents and not steers_own_trace:
            ambient = self.ambient_run()
            if ambient is not None:  # nesting across frameworks: a child of the other framework's run
                parent = ambient
        if parent is not None:
            trace_state = parent.trace
            policy = parent.policy
            if run_metadata is not None and run_metadata.privacy_mode:
                policy = policy.tightened(True)
            parent_context: SpanContext | None = parent.context
            trace_id = parent_context.trace_id
            name, is_default = self._name(kind, name, explicit_name, trace_state, root=False)
        else:
            started = self._start_root(kind, name, explicit_name, handler_layer, run_metadata)
            if started is None:
                return None
            trace_state, trace_id, parent_context, name, is_default = started
            policy = trace_state.policy
        # Every span a run produces is started, whatever becomes of it: spans_started is always
        # spans_exported + spans_dropped + spans_queued once nothing is open or pending.
        COUNTERS.add("spans_started")
        if not trace_state.sampled:
            COUNTERS.add("spans_dropped")
        elif len(self._runs) >= trace_state.max_open_runs:
            warn_user(
                "max-open-runs",
                f"More than {len(self._runs)} runs are open at once; new runs are not traced until some end "
                "(configure(max_open_runs=...) raises the bound).",
            )
            COUNTERS.add("spans_dropped")
            return None
        context = SpanContext(trace_id, _new_span_id(), False, _SAMPLED)
        agent = None if parent is None else parent if parent.kind == AGENT else parent.agent
        if parent is None:
            trace_state.root_span_id = context.span_id
        run = Run(
            key=key,
            context=context,
            parent=parent_context,
            trace=trace_state,
            kind=kind,
            name=name,
            name_is_default=is_default,
            subject=subject or str(kind),
            policy=policy,
            started=time.monotonic(),
            start_ns=time.time_ns(),
            under_hidden=under_hidden,
            agent=agent,
            parent_run=parent,
        )
        if attributes:
            run.attributes.update(attributes)
        if kind == AGENT:
            run.attributes[attr.AGENT_NAME] = clean_str(agent_name or run.subject)
        if graph_step is not None:
            _write_graph_step(run.attributes, graph_step)
        if parent is None:
            self._runs[key] = run
        else:
            with self._lock:
                parent.open_children += 1
                self._runs[key] = run
        return run

    def _start_root(
        self,
        kind: str,
        name: str | None,
        explicit_name: bool,
        handler_layer: MetadataLayer | None,
        run_metadata: MetadataLayer | None,
    ) -> tuple[TraceState, int, SpanContext | None, str, bool] | None:
        target = self._targets()
        if target is None:
            return None
        destination = target.settings
        layer = handler_layer or MetadataLayer()
        context_layer = current_context_layer()
        if context_layer is not None:
            layer = context_layer.over(layer)
        if run_metadata is not None:
            layer = run_metadata.over(layer)
        trace = layer.trace
        trace_id, parent, parent_sampled = self._root_parent(trace)
        if self._at_root is not None:
            self._at_root()
        attributes = _trace_attributes(layer, destination.environment, destination.release)
        if destination.sample_rate < 1.0:
            # A trace a sampled parent decided is sent whatever our rate says: it carries 1.0, as
            # sentry-sdk sets for an inherited decision (our rate would have Sentry multiply it
            # by 1 / rate: by infinity at rate 0).
            attributes[attr.CLIENT_SAMPLE_RATE] = 1.0 if parent_sampled else destination.sample_rate
        sampled, tail, decision = target.sampling.root_decision(trace_id, parent_sampled)
        sampled = sampled and target.sink.accepts_new_trace()
        if decision is not None and (sampled or decision == DROPPED):
            COUNTERS.add(decision)  # a trace the backlog refused was not kept by anything
        state = TraceState(
            sink=target.sink,
            resource=target.resource,
            scope=target.scope,
            sampled=sampled,
            max_open_runs=destination.max_open_runs,
            attributes=attributes,
            trace_name=trace.get(TRACE_NAME),
            span_name=trace.get(SPAN_NAME),
            generation_name=trace.get(GENERATION_NAME),
            policy=ContentPolicy(
                private=bool(destination.privacy_mode or layer.privacy_mode),
                max_chars=destination.max_content_chars,
                mask=destination.mask,
            ),
            prices=target.prices,
            failures=[] if destination.capture_errors and self._wants_failures() else None,
            tail=tail if sampled else None,
        )
        span_name, is_default = self._name(kind, name, explicit_name, state, root=True)
        return state, trace_id, parent, span_name, is_default

    def _wants_failures(self) -> bool:
        reporter = self._failure_reporter
        if reporter is None:
            return False
        try:
            return reporter.wants_failures()
        except Exception as exc:
            log_once("failure-reporter", logging.WARNING, "Error capture is off: %r", exc)
            return False

    def _root_parent(self, trace: Mapping[str, Any]) -> tuple[int, SpanContext | None, bool]:
        """The root's trace id, its (remote or ambient) parent, and whether that parent decided
        the trace is sampled. An ambient span nobody sends (not sampled) lends its trace id only."""
        explicit_trace = trace.get(TRACE_ID)
        parent_span = parse_span_id(trace.get(PARENT_SPAN_ID))
        if explicit_trace is not None:
            trace_id = int(trace_id_for(explicit_trace), 16)
            return trace_id, _remote(trace_id, parent_span) if parent_span is not None else None, False
        ambient = self._ambient_parent()
        if parent_span is not None:
            if ambient is None:
                log_once(
                    "parent-without-trace",
                    logging.WARNING,
                    "trace.parent_span_id was given without trace.trace_id and no trace is active; it is ignored.",
                )
                return _new_trace_id(), None, False
            return ambient.trace_id, _remote(ambient.trace_id, parent_span), False
        if ambient is None:
            return _new_trace_id(), None, False
        if ambient.trace_flags.sampled:  # our root is its own segment under the app's span
            return ambient.trace_id, _remote(ambient.trace_id, ambient.span_id), True
        return ambient.trace_id, None, False

    def ambient_run(self) -> Run | None:
        """The innermost recorded run whose code is running now, as the frameworks' lookups in
        :attr:`ambient_parents` report it (a LangChain tool calling LlamaIndex, say), or None.
        A root run of the other framework nests under it."""
        best: Run | None = None
        for provider in self.ambient_parents:
            try:
                found = provider()
            except Exception as exc:
                log_once("ambient-provider", logging.DEBUG, "Ambient parent lookup failed: %r", exc)
                continue
            run = self.resolve_parent(found) if found is not None else None
            if run is not None and (best is None or run.started > best.started):
                best = run
        return best

    def _ambient_parent(self) -> SpanContext | None:
        """The span active where a root run starts (the app's OpenTelemetry or Sentry span), or None."""
        current = otel_trace.get_current_span().get_span_context()
        if current.is_valid:
            return current
        return self._ambient_span() if self._ambient_span is not None else None

    def _name(self, kind: str, name: str | None, explicit: bool, trace: TraceState, *, root: bool) -> tuple[str, bool]:
        """The span name, and whether it is a default name (one a later rule may replace)."""
        chosen = trace.trace_name if root else None
        if not chosen and explicit and name:
            chosen = name
        if not chosen and not root:
            chosen = trace.generation_name if kind in GENERATIONS else trace.span_name
        if chosen:
            fitted = _fit_name(chosen)
            if fitted:
                return fitted, False
        return _fit_name(default_name(kind, name)) or str(kind), True

    # -- during the run ---------------------------------------------------------------

    def set_content(self, run: Run, key: str, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
        """Add a content attribute (prompt, completion, I/O) if the run's policy lets it out.

        This is where Privacy Mode keeps content in the process: every content attribute and
        event of every framework passes here (:meth:`_admits_content`), and in Privacy Mode not
        even a snapshot is taken. Only a snapshot of ``value``'s containers is taken here;
        ``convert`` and the rendering to text run on the export thread, so that serialising
        content costs the app next to nothing.
        """
        if value is None or not _admits_content(run):
            return
        copy, source = capture(value)
        run.attributes[key] = LazyContent(copy, run.policy, convert, source)

    # -- neutral values to attributes -------------------------------------------------------

    def record_request(self, run: Run | None, request: calls.ModelRequest) -> None:
        """A model call's request: model, provider, parameters, and as content its messages
        (system instructions apart), prompt, tool definitions and embedding inputs.

        Example::

            recorder.record_request(run, ModelRequest(model="gpt-4o", provider="openai"))
        """
        if run is None:
            return
        attrs = run.attributes
        if request.model:
            attrs[attr.REQUEST_MODEL] = request.model
        if request.provider:
            attrs[attr.PROVIDER_NAME] = request.provider
        if request.parameters is not None:
            _write_parameters(attrs, request.parameters)
        if request.embedding_inputs is not None:
            attrs[attr.EMBEDDINGS_INPUT_COUNT] = len(request.embedding_inputs)
        if not _admits_content(run):
            return
        shapes = request.shapes
        if request.messages is not None and shapes is not None:
            self.set_content(run, attr.SYSTEM_INSTRUCTIONS, request.messages, shapes.system_parts)
            self.set_content(run, attr.INPUT_MESSAGES, request.messages, shapes.conversation)
        if request.prompt is not None and attr.INPUT_MESSAGES not in attrs:  # a chat's messages stay
            self.set_content(run, attr.INPUT_MESSAGES, request.prompt, prompt_messages)
        if request.tools:
            self.set_content(run, attr.TOOL_DEFINITIONS, request.tools, tool_definitions)
        self.set_content(run, attr.EMBEDDINGS_INPUT, request.embedding_inputs)

    def record_response(self, run: Run | None, response: calls.ModelResponse) -> None:
        """A model call's response: response model, id and finish reasons, the output messages
        as content, and its usage (costed when the run ends).

        Example::

            recorder.record_response(run, ModelResponse(model="gpt-4o-2024-08-06", finish_reasons=["stop"]))
        """
        if run is None:
            return
        attrs = run.attributes
        if response.model:
            attrs[attr.RESPONSE_MODEL] = response.model
        if response.response_id:
            attrs[attr.RESPONSE_ID] = response.response_id
        if response.finish_reasons:
            attrs[attr.RESPONSE_FINISH_REASONS] = list(response.finish_reasons)
        if response.usage is not None:
            run.usage = response.usage
        if response.outputs and response.shapes is not None:
            self.set_content(run, attr.OUTPUT_MESSAGES, response.outputs, response.shapes.output_messages)

    def record_tool_call(self, run: Run | None, call: calls.ToolCall) -> None:
        """A tool run's tool (name, description cut to 1024 characters) and its arguments.

        Example::

            recorder.record_tool_call(run, ToolCall(name="search", arguments={"q": "otlp"}))
        """
        if run is None:
            return
        if call.name:
            run.attributes[attr.TOOL_NAME] = call.name
        if call.description:
            run.attributes[attr.TOOL_DESCRIPTION] = call.description[:MAX_DESCRIPTION]
        self.set_content(run, attr.TOOL_CALL_ARGUMENTS, call.arguments, call.convert)

    def record_tool_result(self, run: Run | None, result: calls.ToolResult) -> None:
        """What a tool returned, as content."""
        if run is not None:
            self.set_content(run, attr.TOOL_CALL_RESULT, result.result, result.convert)

    def record_retrieval(self, run: Run | None, retrieval: calls.Retrieval) -> None:
        """A retriever run's query and, as content, the documents it found, with their count.

        Example::

            recorder.record_retrieval(run, Retrieval(query="key rotation"))
        """
        if run is None:
            return
        if retrieval.document_count is not None:
            run.attributes[attr.RETRIEVAL_DOCUMENT_COUNT] = retrieval.document_count
        self.set_content(run, attr.INPUT_VALUE, retrieval.query)
        if retrieval.documents is not None and retrieval.shapes is not None:
            self.set_content(run, attr.RETRIEVAL_DOCUMENTS, retrieval.documents, retrieval.shapes.documents)

    def record_input(self, run: Run | None, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
        """What a chain, graph node, agent or query took, as content (``convert`` turns the
        framework's objects into plain data on the export thread).

        Example::

            recorder.record_input(run, {"question": "How do I rotate keys?"})
        """
        if run is not None:
            self.set_content(run, attr.INPUT_VALUE, value, convert)

    def record_output(self, run: Run | None, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
        """What a chain, graph node, agent or query returned, as content."""
        if run is not None:
            self.set_content(run, attr.OUTPUT_VALUE, value, convert)

    def mark_first_chunk(self, key: Hashable) -> None:
        run = self._runs.get(key)
        if run is not None and run.first_chunk_at is None:
            run.first_chunk_at = time.monotonic()

    def promote_to_agent(self, key: Hashable, agent_name: str | None) -> None:
        """Re-kind a running chain as an agent (e.g. once it turns out to be a LangGraph graph)."""
        run = self._runs.get(key)
        if run is None or run.kind == AGENT:
            return
        run.kind = AGENT
        agent_name = clean_str(agent_name or run.subject)
        run.attributes[attr.AGENT_NAME] = agent_name
        if run.name_is_default:
            run.name = _fit_name(default_name(AGENT, agent_name))

    def add_event(
        self,
        key: Hashable,
        name: str,
        attributes: dict[str, Any] | None = None,
        content: dict[str, Any] | None = None,
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        """An event on a run. ``content`` values leave only if the run's policy lets them out, and
        like a span's content are rendered on the export thread (``convert`` first, then the
        policy's JSON, ``mask`` and size cut), never on the application's."""
        run = self._runs.get(key)
        if run is None:
            return
        event_attrs = dict(attributes or {})
        if content and _admits_content(run):
            for k, v in content.items():
                if v is not None:
                    copy, source = capture(v)
                    event_attrs[k] = LazyContent(copy, run.policy, convert, source)
        if run.events is None:
            run.events = []
        run.events.append(Event(clean_str(name)[:MAX_NAME], event_attrs))

    def record_agent_action(self, key: Hashable, call: calls.ToolCall) -> None:
        """An agent chose a tool: an ``agent_action`` event on its run (arguments as content)."""
        content = {attr.TOOL_CALL_ARGUMENTS: call.arguments} if call.arguments is not None else None
        attributes = {attr.TOOL_NAME: call.name} if call.name else None
        self.add_event(key, "agent_action", attributes, content=content, convert=call.convert)

    def record_agent_finish(self, key: Hashable, output: Any) -> None:
        """An agent returned: an ``agent_finish`` event on its run (the output as content)."""
        self.add_event(key, "agent_finish", content={attr.OUTPUT_VALUE: output})

    def record_retry(self, key: Hashable, attempt: int | None) -> None:
        """A run is retried: a ``retry`` event, with the attempt number when known."""
        self.add_event(key, "retry", {attr.EVENT_RETRY_ATTEMPT: attempt} if attempt is not None else None)

    def record_custom_event(self, key: Hashable, name: str, data: Any) -> None:
        """An event the app dispatched itself: an event of that name, its data as content."""
        self.add_event(key, name, None, content={attr.EVENT_CUSTOM_DATA: data})

    # -- ending -----------------------------------------------------------------------

    def open_descendants(self, key: Hashable) -> list[Run]:
        """The runs still open below ``key``, deepest first (empty in the common case, for free)."""
        run = self._runs.get(key)
        if run is None or run.open_children <= 0:
            return []
        found: list[tuple[int, Run]] = []
        for other in list(self._runs.values()):
            depth, ancestor = 1, other.parent_run
            while ancestor is not None and ancestor is not run:
                depth, ancestor = depth + 1, ancestor.parent_run
            if ancestor is run:
                found.append((depth, other))
        found.sort(key=lambda item: -item[0])
        return [other for _, other in found]

    def _pop(self, key: Hashable) -> Run | None:
        with self._lock:
            run = self._runs.pop(key, None)
            if run is not None and run.parent_run is not None:
                run.parent_run.open_children -= 1
        if run is None:
            self._hidden.pop(key, None)
        return run

    def end_run(
        self, key: Hashable, *, usage: Usage | None = None, attributes: dict[str, Any] | None = None
    ) -> Run | None:
        run = self._pop(key)
        if run is None:
            return None
        if attributes:
            run.attributes.update(attributes)
        if run.kind in GENERATIONS:
            self._finish_generation(run, usage or run.usage)
        self._finish(run)
        if run.trace.failures and run.context.span_id == run.trace.root_span_id:
            self._settle_failures(run, None)
        return run

    def end_by_control_flow(self, key: Hashable, flow: calls.ControlFlow) -> Run | None:
        """End a run the framework stopped to steer its graph: OK, not an error, marked as an
        interrupt or as a handoff (to ``flow.target`` when known)."""
        if flow.handoff:
            return self.end_run(key, attributes={attr.LANGGRAPH_HANDOFF: flow.target or True})
        return self.end_run(key, attributes={attr.LANGGRAPH_INTERRUPTED: True})

    def close_early(self, key: Hashable, *, attributes: dict[str, Any] | None = None) -> Run | None:
        """End a run whose consumer stopped reading its stream: not an error in the user's app,
        so the span ends OK, marked ``sentry_llm_callbacks.stream.closed_early``. Runs still open
        below it were cut off with it: they end the same way, first, so they stay inside it."""
        for below in self.open_descendants(key):
            self.end_run(below.key, attributes={attr.STREAM_CLOSED_EARLY: True})
        attributes = {**attributes, attr.STREAM_CLOSED_EARLY: True} if attributes else {attr.STREAM_CLOSED_EARLY: True}
        return self.end_run(key, attributes=attributes)

    def fail_run(self, key: Hashable, error: BaseException, *, attributes: dict[str, Any] | None = None) -> Run | None:
        """End a run with an error. The rule, the same for every framework:

        * the consumer stopped reading a stream (``GeneratorExit``): :meth:`close_early`, not an error;
        * the task was cancelled (``asyncio.CancelledError``, ``KeyboardInterrupt``): ERROR "cancelled",
          marked ``sentry_llm_callbacks.run.cancelled``;
        * anything else: ERROR with the exception's type (and message, outside Privacy Mode).

        Runs still open below a cancelled run were cancelled with it: they end the same way, first.
        """
        if isinstance(error, GeneratorExit):
            return self.close_early(key, attributes=attributes)
        error_type = type(error).__name__
        cancelled = isinstance(error, KeyboardInterrupt) or error_type == "CancelledError"
        if cancelled:
            for below in self.open_descendants(key):
                self.fail_run(below.key, error)
        run = self._pop(key)
        if run is None:
            return None
        if attributes:
            run.attributes.update(attributes)
        run.attributes[attr.ERROR_TYPE] = error_type
        if cancelled:
            run.attributes[attr.RUN_CANCELLED] = True
            description = "cancelled"
        elif not _admits_content(run):
            description = error_type
        else:
            description = clean_str(f"{error_type}: {error}"[:1024])
        run.status = Status(StatusCode.ERROR, description)
        if run.events is None:
            run.events = []
        run.events.append(Event("exception", _exception_event(error, private=not _admits_content(run))))
        if run.kind in GENERATIONS:
            self._finish_generation(run, None, count_missing=False)
        self._finish(run)
        if run.trace.failures is not None and not cancelled and isinstance(error, Exception):
            if run.context.span_id == run.trace.root_span_id:
                self._settle_failures(run, error)
            else:
                _keep_failure(run, error)
        return run

    def _settle_failures(self, root: Run, root_error: BaseException | None) -> None:
        """The local root ended: hand over the trace's failures, now that it is known which
        exception reached the caller (the root's own, and what it was raised from)."""
        failures, root.trace.failures = root.trace.failures, None
        if not failures or self._failure_reporter is None:
            return
        try:
            self._failure_reporter.report(failures, root_error=root_error, root_attributes=root.attributes)
        except Exception as exc:
            log_once("failure-report", logging.WARNING, "Reporting a run's error failed: %r", exc)

    def _finish_generation(self, run: Run, usage: Usage | None, *, count_missing: bool = True) -> None:
        attrs = run.attributes
        if attr.REQUEST_MODEL not in attrs:  # Sentry groups models by the request model: never leave it empty
            attrs[attr.REQUEST_MODEL] = attrs.get(attr.RESPONSE_MODEL) or clean_str(run.subject)
        if run.first_chunk_at is not None:
            attrs[attr.RESPONSE_STREAMING] = True
            attrs[attr.RESPONSE_TIME_TO_FIRST_CHUNK] = round(run.first_chunk_at - run.started, 6)
        if usage is not None and usage.has_tokens:
            cost_source = "provider"
            if not usage.has_cost and run.trace.prices is not None:
                model = attrs.get(attr.RESPONSE_MODEL) or attrs.get(attr.REQUEST_MODEL)
                provider = attrs.get(attr.PROVIDER_NAME)
                price = (
                    run.trace.prices.lookup(model, provider if isinstance(provider, str) else None)
                    if isinstance(model, str)
                    else None
                )
                if price is not None:
                    usage, cost_source = cost_of(usage, price), "price_table"
            attrs.update(usage_attributes(usage, cost_source))
            attrs[attr.USAGE_SOURCE] = "provider"
        else:
            if usage is not None and usage.has_cost:
                attrs.update(usage_attributes(usage))
            attrs[attr.USAGE_SOURCE] = "missing"
            if count_missing:
                COUNTERS.add("generations_without_usage")

    def _finish(self, run: Run) -> None:
        state = run.trace
        if not state.sampled:
            return
        op, operation = _OPS[run.kind]
        attrs = {**state.attributes, attr.SENTRY_OP: op, attr.SENTRY_DESCRIPTION: run.name}
        if operation is not None:
            attrs[attr.OPERATION_NAME] = operation
        if run.agent is not None:
            attrs[attr.AGENT_NAME] = run.agent.attributes.get(attr.AGENT_NAME) or run.agent.subject
        if run.attributes:
            _make_valid(run.attributes)  # the trace's own attributes were made valid at the root
            attrs.update(run.attributes)
        if not _admits_content(run):  # the allowlist: whatever reached the run, only non-content leaves
            attrs = {k: v for k, v in attrs.items() if not attr.is_content(k)}
            if run.kind in (CHAT, COMPLETION):
                attrs.update(dict.fromkeys(attr.PRIVATE_PLACEHOLDERS, attr.FILTERED))
        span = ReadableSpan(
            name=run.name,
            context=run.context,
            parent=run.parent,
            resource=state.resource,
            attributes=attrs,
            events=tuple(run.events) if run.events else (),
            kind=SpanKind.INTERNAL,
            status=run.status,
            start_time=run.start_ns,
            end_time=time.time_ns(),
            instrumentation_scope=state.scope,
        )
        if state.tail is None:
            state.sink.on_end(span)
        else:
            state.tail.finished(span, attrs, root=run.context.span_id == state.root_span_id)

    # -- housekeeping -----------------------------------------------------------------

    def reap(self, max_age: float, now: float | None = None) -> int:
        """End runs older than ``max_age`` seconds as abandoned; returns how many."""
        now = time.monotonic() if now is None else now
        cutoff = now - max_age
        reaped = 0
        for key, run in list(self._runs.items()):
            if run.started < cutoff and self._runs.get(key) is run and self._pop(key) is run:
                run.attributes[attr.RUN_ABANDONED] = True
                run.status = Status(StatusCode.ERROR, "abandoned")
                self._finish(run)
                reaped += 1
        for key, (_, started) in list(self._hidden.items()):
            if started < cutoff:
                self._hidden.pop(key, None)
        if reaped:
            COUNTERS.add("runs_abandoned", reaped)
            log_once(
                "reaped",
                logging.WARNING,
                "%d run(s) never ended within %.0f s and were closed as abandoned.",
                reaped,
                max_age,
            )
        return reaped

    def clear(self) -> None:
        self._runs.clear()
        self._hidden.clear()


def _admits_content(run: Run) -> bool:
    """Privacy Mode's one test: may this run's content (prompts, completions, I/O, documents,
    exception messages) leave the process?"""
    return not run.policy.private


#: Each request parameter and the attribute it becomes.
_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("temperature", attr.REQUEST_TEMPERATURE),
    ("max_tokens", attr.REQUEST_MAX_TOKENS),
    ("top_p", attr.REQUEST_TOP_P),
    ("top_k", attr.REQUEST_TOP_K),
    ("frequency_penalty", attr.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", attr.REQUEST_PRESENCE_PENALTY),
    ("seed", attr.REQUEST_SEED),
    ("reasoning_level", attr.REQUEST_REASONING_LEVEL),
)


def _write_parameters(attrs: dict[str, Any], parameters: calls.RequestParameters) -> None:
    for field_name, key in _PARAMETERS:
        value = getattr(parameters, field_name)
        if value is not None:
            attrs[key] = value
    if parameters.stop_sequences:
        attrs[attr.REQUEST_STOP_SEQUENCES] = list(parameters.stop_sequences)


def _write_graph_step(attrs: dict[str, Any], step: calls.GraphStep) -> None:
    attrs[attr.LANGGRAPH_NODE] = step.node
    if step.step is not None:
        attrs[attr.LANGGRAPH_STEP] = step.step


def _keep_failure(run: Run, error: Exception) -> None:
    failures = run.trace.failures
    if failures is None:
        return
    if len(failures) >= MAX_FAILURES_PER_TRACE:
        log_once("failures-per-trace", logging.DEBUG, "More than %d failed runs in one trace.", len(failures))
        return
    failures.append(
        Failure(error, run.context, run.parent, _OPS[run.kind][0], run.attributes, not _admits_content(run))
    )


def _trace_attributes(layer: MetadataLayer, environment: str | None, release: str | None) -> dict[str, Any]:
    """The attributes every span of the trace carries (Sentry does not copy them from the root)."""
    out: dict[str, Any] = {}
    trace = layer.trace
    if layer.user is not None:
        out[attr.USER_ID] = clean_str(layer.user)
    if layer.session_id is not None:
        session = clean_str(layer.session_id)
        out[attr.SESSION_ID] = session
        out[attr.CONVERSATION_ID] = session
    env = trace.get(ENVIRONMENT) or environment
    rel = trace.get(RELEASE) or release
    if env:
        out[attr.SENTRY_ENVIRONMENT] = clean_str(env)
    if rel:
        out[attr.SENTRY_RELEASE] = clean_str(rel)
    for key, value in trace.items():
        if key not in STEERING_KEYS:
            out[attr.TRACE_METADATA_PREFIX + clean_str(key)] = scalar_or_json(value)
    explicit_trace = trace.get(TRACE_ID)
    if explicit_trace is not None and not is_native_trace_id(explicit_trace):
        out[attr.TRACE_METADATA_PREFIX + TRACE_ID] = clean_str(kept_trace_id(explicit_trace))
    return out


def _new_trace_id() -> int:
    return random.getrandbits(128) or 1


def _remote(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id=trace_id, span_id=span_id, is_remote=True, trace_flags=_SAMPLED)


_SCALARS = (str, bool, float, LazyContent)
_INT64 = (-(2**63), 2**63 - 1)


def _make_valid(attrs: dict[str, Any]) -> None:
    """Coerce values the OTLP encoder cannot take (it would fail the whole batch) to strings."""
    for key, value in attrs.items():
        kind = type(value)
        if kind in _SCALARS:
            continue
        if kind is int:
            if not _INT64[0] <= value <= _INT64[1]:
                attrs[key] = str(value)
        elif kind in (list, tuple) and all(type(v) is str for v in value):
            continue
        else:
            attrs[key] = scalar_or_json(value)


def _exception_event(error: BaseException, *, private: bool) -> dict[str, str]:
    event = {attr.EXCEPTION_TYPE: type(error).__qualname__}
    if private:
        return event
    event[attr.EXCEPTION_MESSAGE] = clean_str(str(error)[:4096])
    with contextlib.suppress(Exception):
        event[attr.EXCEPTION_STACKTRACE] = clean_str(
            "".join(traceback.format_exception(type(error), error, error.__traceback__))[-16_384:]
        )
    return event
