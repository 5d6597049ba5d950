"""A trace's root: where it starts and what every span of it shares, resolved once.

At a root run the trace's metadata is layered (``trace_context()`` under the handler's, under
the run's own), its parent found (an explicit ``trace_id`` / ``parent_span_id``, else the app's
OpenTelemetry or Sentry span), sampling decided, and the content policy fixed. Nesting across
frameworks is also decided here: a root run of one framework started inside a run of another
(a LangChain tool calling LlamaIndex) becomes that run's child, as the adapters' lookups say.

Conversations: a root run resumed after an interrupt finds the interrupted run's root here
(:mod:`.conversations`), and when a local root ends, whether its trace stopped at an interrupt
is remembered for the conversation's next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanContext

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import log_once
from sentry_llm_callbacks.base.randomness import new_trace_id
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import clean_str, scalar_or_json
from sentry_llm_callbacks.core.conversations import InterruptedRoots
from sentry_llm_callbacks.core.failures import FailureReporter, wants_failures
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
from sentry_llm_callbacks.core.runs import SAMPLED, Run, RunMap, TraceState
from sentry_llm_callbacks.core.sampling import DROPPED
from sentry_llm_callbacks.core.scores import origin
from sentry_llm_callbacks.core.spans import span_name

if TYPE_CHECKING:
    from sentry_llm_callbacks.core.target import Target

#: An adapter's lookup of its framework's run running now (a run key), or a span context.
AmbientParent = Callable[[], "SpanContext | Hashable | None"]
#: The app's span where a root run starts, when OpenTelemetry has none (its Sentry SDK span, say).
AmbientSpan = Callable[[], "SpanContext | None"]


class RootStart(NamedTuple):
    """What a root run starts with."""

    trace: TraceState
    trace_id: int
    #: The root's parent span: remote (an explicit ``parent_span_id``, the app's span), or None.
    parent: SpanContext | None
    name: str
    name_is_default: bool
    #: The root of the interrupted trace this run resumes (its conversation's), or None.
    previous: SpanContext | None = None


class Roots:
    """Starts traces: the metadata, parent, sampling and policy a root run's trace gets."""

    def __init__(
        self,
        runs: RunMap,
        targets: Callable[[], Target | None],
        *,
        failure_reporter: FailureReporter | None = None,
        ambient_span: AmbientSpan | None = None,
        at_root: Callable[[], None] | None = None,
    ) -> None:
        self._runs = runs
        self._targets = targets
        self.failure_reporter = failure_reporter
        self._ambient_span = ambient_span
        self._at_root = at_root
        #: Extra places a root run may find its parent, asked in order before OpenTelemetry and
        #: Sentry (used for nesting across frameworks). Each returns a run key of this recorder,
        #: a SpanContext, or None.
        self.ambient_parents: list[AmbientParent] = []
        #: Per conversation, the root of its last trace that stopped at an interrupt.
        self.interrupted = InterruptedRoots()

    def start(
        self,
        kind: str,
        name: str | None,
        explicit_name: bool,
        handler_layer: MetadataLayer | None,
        run_metadata: MetadataLayer | None,
        resumes: bool = False,
    ) -> RootStart | None:
        """A new trace for a root run; None when nothing is configured. ``resumes``: the run
        resumes its conversation after an interrupt (it links to the interrupted run's root)."""
        target = self._targets()
        if target is None:
            return None
        layer = handler_layer or MetadataLayer()
        context_layer = current_context_layer()
        if context_layer is not None:
            layer = context_layer.over(layer)
        if run_metadata is not None:
            layer = run_metadata.over(layer)
        trace_id, parent, parent_sampled = self._root_parent(layer.trace)
        if self._at_root is not None:
            self._at_root()
        state = self._trace_state(target, layer, trace_id, parent_sampled)
        name, is_default = span_name(kind, name, explicit_name, state, root=True)
        conversation = layer.conversation
        previous = self.interrupted.get(conversation) if resumes and conversation is not None else None
        return RootStart(state, trace_id, parent, name, is_default, previous)

    def ended(self, root: Run, *, failed: bool = False) -> None:
        """A local root ended: remember its conversation's state for the conversation's next run.
        Stopped at an interrupt, it is what a resume links to; completed, nothing waits to
        resume; failed, what waited before still does (the resume may be retried)."""
        trace = root.trace
        key = trace.conversation
        if key is None or not root.is_local_root:
            return
        if trace.interrupted:
            if trace.sampled:  # a trace nobody sent is not worth a link
                self.interrupted.interrupted(key, root.context)
        elif not failed:
            self.interrupted.completed(key)

    def _trace_state(self, target: Target, layer: MetadataLayer, trace_id: int, parent_sampled: bool) -> TraceState:
        settings = target.settings
        trace = layer.trace
        attributes = trace_attributes(layer, settings.environment, settings.release)
        if settings.sample_rate < 1.0:
            # A trace a sampled parent decided is sent whatever our rate says: it carries 1.0, as
            # sentry-sdk sets for an inherited decision (our rate would have Sentry multiply it
            # by 1 / rate: by infinity at rate 0).
            attributes[attr.CLIENT_SAMPLE_RATE] = 1.0 if parent_sampled else settings.sample_rate
        sampled, tail, decision = target.sampling.root_decision(trace_id, parent_sampled)
        sampled = sampled and target.sink.accepts_new_trace()
        if decision is not None and (sampled or decision == DROPPED):
            COUNTERS.add(decision)  # a trace the backlog refused was not kept by anything
        return TraceState(
            sink=target.sink,
            resource=target.resource,
            scope=target.scope,
            sampled=sampled,
            max_open_runs=settings.max_open_runs,
            attributes=attributes,
            trace_name=trace.get(TRACE_NAME),
            span_name=trace.get(SPAN_NAME),
            generation_name=trace.get(GENERATION_NAME),
            policy=target.policy(private=bool(layer.privacy_mode)),
            prices=target.prices,
            failures=[] if settings.capture_errors and wants_failures(self.failure_reporter) else None,
            tail=tail if sampled else None,
            origin=origin(),
            conversation=layer.conversation,
            prompt=layer.prompt if layer.prompt is not None and layer.prompt.name is not None else None,
        )

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
                return new_trace_id(), None, False
            return ambient.trace_id, _remote(ambient.trace_id, parent_span), False
        if ambient is None:
            return new_trace_id(), None, False
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
            run = self._runs.resolve_parent(found) if found is not None else None
            if run is not None and (best is None or run.started > best.started):
                best = run
        return best

    def _ambient_parent(self) -> SpanContext | None:
        """The span active where a root run starts (the app's OpenTelemetry or Sentry span), or None."""
        current = otel_trace.get_current_span().get_span_context()
        if current.is_valid:
            return current
        return self._ambient_span() if self._ambient_span is not None else None


def trace_attributes(layer: MetadataLayer, environment: str | None, release: str | None) -> dict[str, Any]:
    """The attributes every span of the trace carries (Sentry does not copy them from the root)."""
    out: dict[str, Any] = {}
    trace = layer.trace
    if layer.user is not None:
        out[attr.USER_ID] = clean_str(layer.user)
    session = layer.session  # an explicit session_id wins over the framework's conversation key
    if session is not None:
        session = clean_str(session)
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


def _remote(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id=trace_id, span_id=span_id, is_remote=True, trace_flags=SAMPLED)
