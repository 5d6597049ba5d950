"""The framework-neutral recorder: runs in, OpenTelemetry spans out.

Framework adapters translate their events into calls on :class:`Recorder` (see the adapter
contract, :mod:`.adapter`): start a run of some kind (with the run's own metadata as a neutral
:class:`~.metadata.MetadataLayer`), record what it carried as the neutral values of :mod:`.calls`
(:class:`~.writers.RunWriter`), end it or fail it. The recorder keeps the run map
(:mod:`.runs`), starts traces at their roots (:mod:`.roots`), applies the rules for how a run
ends (here), keeps failures for errors-to-issues (:mod:`.failures`), and builds each finished
span (:mod:`.spans`) for the sink of its trace's target (:mod:`.target`). It never sees the
export pipeline.

It never attaches or detaches OpenTelemetry context: parents are passed explicitly, and the
ambient parent (the app's own OpenTelemetry or Sentry span) is read once, at the root.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanContext, Status, StatusCode

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import log_once, warn_user
from sentry_llm_callbacks.base.randomness import new_span_id
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core import calls
from sentry_llm_callbacks.core.content import clean_str
from sentry_llm_callbacks.core.failures import MAX_FAILURES_PER_TRACE, Failure, FailureReporter, report_failures
from sentry_llm_callbacks.core.kinds import CHAT_LIKE, GENERATIONS, OPS, RunKind
from sentry_llm_callbacks.core.metadata import MetadataLayer
from sentry_llm_callbacks.core.roots import AmbientSpan, Roots
from sentry_llm_callbacks.core.runs import SAMPLED, Run, RunMap, TraceState
from sentry_llm_callbacks.core.scores import LastTraces
from sentry_llm_callbacks.core.spans import admits_content, exception_event, finish, finish_generation, span_name
from sentry_llm_callbacks.core.usage import Usage
from sentry_llm_callbacks.core.writers import RunWriter, write_graph_step, write_previous_trace, write_prompt

if TYPE_CHECKING:
    from sentry_llm_callbacks.core.target import Target

# The run kinds by their short names (``RunKind`` members: each equals its string value).
AGENT = RunKind.AGENT
CHAT = RunKind.CHAT
COMPLETION = RunKind.COMPLETION
EMBEDDINGS = RunKind.EMBEDDINGS
TOOL = RunKind.TOOL
CHAIN = RunKind.CHAIN
RETRIEVER = RunKind.RETRIEVER


class Recorder(RunWriter):
    """Keeps the run -> span map for the whole process (every handler, every framework)."""

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
        self._map = RunMap()
        self._roots = Roots(
            self._map, targets, failure_reporter=failure_reporter, ambient_span=ambient_span, at_root=at_root
        )
        #: Where a root run looks for a parent of another framework (see :mod:`.adapter`).
        self.ambient_parents = self._roots.ambient_parents
        # The lookups adapters make at every callback, bound once.
        self.get: Callable[[Hashable], Run | None] = self._map.runs.get
        self.resolve_parent = self._map.resolve_parent
        self.hide_run = self._map.hide
        self.is_under_hidden = self._map.is_under_hidden
        self.open_descendants = self._map.open_descendants
        self.ambient_run = self._roots.ambient_run
        #: The root of the last trace that ended in each thread or task (``last_trace()``).
        self.last_traces = LastTraces()

    @property
    def open_runs(self) -> int:
        return self._map.open_runs

    @property
    def _failure_reporter(self) -> FailureReporter | None:
        return self._roots.failure_reporter

    # -- starting ---------------------------------------------------------------------

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
        resumes: bool = False,
    ) -> Run | None:
        """Open a span for a run. Returns None when the run is not traced (not configured,
        sampled out, or too many open runs).

        ``handler_layer`` is the metadata of the handler that saw the run, ``run_metadata`` the
        run's own (the invocation's); a root run layers them over ``trace_context()``, a nested
        run takes from its own only a tightened Privacy Mode and the prompt it names.
        ``steers_own_trace``: the run's metadata names its trace or parent span, so it never
        nests under another framework's run. ``agent_name`` names an agent run (default:
        ``name``); ``graph_step`` marks a graph node's run. ``attributes`` are written as they are.
        ``resumes``: the run resumes its conversation after an interrupt (LangGraph's
        ``Command(resume=...)``); as a root it links to the interrupted run's root, when that run
        was recorded in this process.

        A chat or completion run carries the named prompt it was made from, most specific
        first: a template rendered just before it, or before the run it is in, under the same
        parent (:meth:`record_prompt`); else the prompt its own metadata names (over the
        trace's); else the trace's. A prompt the framework's payload names for the call
        (``ModelRequest.prompt_ref``) wins over all three.
        """
        subject = name
        parent = self._map.resolve_parent(parent_key)
        if parent is None and self.ambient_parents and not steers_own_trace:
            parent = self._roots.ambient_run()  # nesting across frameworks: the other one's run
        if parent is not None:
            trace_state = parent.trace
            policy = parent.policy
            if run_metadata is not None and run_metadata.privacy_mode:
                policy = policy.tightened(True)
            parent_context: SpanContext | None = parent.context
            trace_id = parent_context.trace_id
            name, is_default = span_name(kind, name, explicit_name, trace_state, root=False)
            previous = None
        else:
            root = self._roots.start(kind, name, explicit_name, handler_layer, run_metadata, resumes)
            if root is None:
                return None
            trace_state, trace_id, parent_context = root.trace, root.trace_id, root.parent
            name, is_default, previous = root.name, root.name_is_default, root.previous
            policy = trace_state.policy
        if not self._admit(trace_state):
            return None
        prompt = None
        if parent is not None:  # a template rendered just before this run, or before the run it is in
            prompt = parent.next_prompt
            if prompt is None:
                prompt = parent.prompt
            else:
                parent.next_prompt = None
        run = Run(
            key=key,
            context=SpanContext(trace_id, new_span_id(), False, SAMPLED),
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
            agent=None if parent is None else parent if parent.kind == AGENT else parent.agent,
            parent_run=parent,
            prompt=prompt,
        )
        if parent is None:
            trace_state.root_span_id = run.context.span_id
            if previous is not None:
                write_previous_trace(run, previous)
        if kind in CHAT_LIKE:
            if prompt is None:
                own = run_metadata.prompt if run_metadata is not None else None
                prompt = trace_state.prompt if own is None else own.over(trace_state.prompt)
            if prompt is not None:
                write_prompt(run.attributes, prompt)
        if attributes:
            run.attributes.update(attributes)
        if kind == AGENT:
            run.attributes[attr.AGENT_NAME] = clean_str(agent_name or run.subject)
        if graph_step is not None:
            write_graph_step(run.attributes, graph_step)
        self._map.add(run)
        return run

    def _admit(self, trace: TraceState) -> bool:
        """Count the span a run starts; False when it must not be opened (over ``max_open_runs``).
        Every span a run produces is started, whatever becomes of it: ``spans_started`` is always
        ``spans_exported + spans_dropped + spans_queued`` once nothing is open or pending."""
        COUNTERS.add("spans_started")
        if not trace.sampled:
            COUNTERS.add("spans_dropped")
        elif len(self._map) >= trace.max_open_runs:
            warn_user(
                "max-open-runs",
                f"More than {len(self._map)} runs are open at once; new runs are not traced until some end "
                "(configure(max_open_runs=...) raises the bound).",
            )
            COUNTERS.add("spans_dropped")
            return False
        return True

    # -- ending -----------------------------------------------------------------------

    def end_run(
        self, key: Hashable, *, usage: Usage | None = None, attributes: dict[str, Any] | None = None
    ) -> Run | None:
        run = self._map.pop(key)
        if run is None:
            return None
        if attributes:
            run.attributes.update(attributes)
        if run.kind in GENERATIONS:
            finish_generation(run, usage or run.usage)
        finish(run)
        if run.is_local_root:
            self.last_traces.root_ended(run)
            if run.trace.failures:
                _settle_failures(self._failure_reporter, run, None)
        if run.trace.conversation is not None:
            self._roots.ended(run)
        return run

    def end_by_control_flow(self, key: Hashable, flow: calls.ControlFlow) -> Run | None:
        """End a run the framework stopped to steer its graph: OK, not an error, marked as an
        interrupt or as a handoff (to ``flow.target`` when known)."""
        if flow.handoff:
            return self.end_run(key, attributes={attr.LANGGRAPH_HANDOFF: flow.target or True})
        run = self._map.runs.get(key)
        if run is not None:
            run.trace.interrupted = True  # its conversation's next run may resume it
        return self.end_run(key, attributes={attr.LANGGRAPH_INTERRUPTED: True})

    def close_early(self, key: Hashable, *, attributes: dict[str, Any] | None = None) -> Run | None:
        """End a run whose consumer stopped reading its stream: not an error in the user's app,
        so the span ends OK, marked ``sentry_llm_callbacks.stream.closed_early``. Runs still open
        below it were cut off with it: they end the same way, first, so they stay inside it."""
        for below in self._map.open_descendants(key):
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
        cancelled = isinstance(error, KeyboardInterrupt) or type(error).__name__ == "CancelledError"
        if cancelled:
            for below in self._map.open_descendants(key):
                self.fail_run(below.key, error)
        run = self._map.pop(key)
        if run is None:
            return None
        if attributes:
            run.attributes.update(attributes)
        _mark_failed(run, error, cancelled=cancelled)
        if run.kind in GENERATIONS:
            finish_generation(run, None, count_missing=False)
        finish(run)
        if run.is_local_root:
            self.last_traces.root_ended(run)
        if run.trace.conversation is not None:
            self._roots.ended(run, failed=True)
        if run.trace.failures is not None and not cancelled and isinstance(error, Exception):
            if run.is_local_root:
                _settle_failures(self._failure_reporter, run, error)
            else:
                _keep_failure(run, error)
        return run

    # -- housekeeping -----------------------------------------------------------------

    def reap(self, max_age: float, now: float | None = None) -> int:
        """End runs older than ``max_age`` seconds as abandoned; returns how many."""
        now = time.monotonic() if now is None else now
        reaped = 0
        for run in self._map.older_than(now - max_age):
            run.attributes[attr.RUN_ABANDONED] = True
            run.status = Status(StatusCode.ERROR, "abandoned")
            finish(run)
            reaped += 1
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
        """Forget every open run and interrupted conversation (a forked child's fresh start)."""
        self._map.clear()
        self.last_traces.clear()
        self._roots.interrupted.clear()


def _mark_failed(run: Run, error: BaseException, *, cancelled: bool) -> None:
    """A failed run's status, ``error.type`` and ``exception`` event (the message and stack
    trace only outside Privacy Mode)."""
    error_type = type(error).__name__
    run.attributes[attr.ERROR_TYPE] = error_type
    private = not admits_content(run)
    if cancelled:
        run.attributes[attr.RUN_CANCELLED] = True
        description = "cancelled"
    elif private:
        description = error_type
    else:
        description = clean_str(f"{error_type}: {error}"[:1024])
    run.status = Status(StatusCode.ERROR, description)
    if run.events is None:
        run.events = []
    run.events.append(Event("exception", exception_event(error, private=private)))


def _keep_failure(run: Run, error: Exception) -> None:
    """Keep ``error`` with its run's trace, if the trace keeps failures (and has room)."""
    failures = run.trace.failures
    if failures is None:
        return
    if len(failures) >= MAX_FAILURES_PER_TRACE:
        log_once("failures-per-trace", logging.DEBUG, "More than %d failed runs in one trace.", len(failures))
        return
    failures.append(Failure(error, run.context, run.parent, OPS[run.kind][0], run.attributes, run.policy.private))


def _settle_failures(reporter: FailureReporter | None, root: Run, root_error: BaseException | None) -> None:
    """The local root ended: hand over the trace's failures, now that it is known which
    exception reached the caller (the root's own, and what it was raised from)."""
    failures, root.trace.failures = root.trace.failures, None
    report_failures(reporter, failures, root_error, root.attributes)
