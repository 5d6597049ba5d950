"""Scores and feedback on traces, as the evaluation spans Sentry's AI trace view renders.

A score is one span, child of the span it scores, in the same trace: ``gen_ai.operation.name``
``evaluate``, its answer in ``gen_ai.output.messages`` and the evaluated text and question in
``gen_ai.input.messages``, each as one ``{"type": "evaluation"}`` item (the shape Sentry's trace
view parses for ``gen_ai.evaluate`` spans), plus OpenTelemetry's GenAI evaluation attributes.
It is built here and handed to the destination's sink directly: a score is sent whenever it is
made, minutes after its trace or from another process, whatever sampling decided for the trace.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.base.randomness import new_span_id
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import ContentPolicy, LazyContent, clean_str, to_json
from sentry_llm_callbacks.core.runs import SAMPLED, Run
from sentry_llm_callbacks.core.spans import fit_name

if TYPE_CHECKING:
    from sentry_llm_callbacks.core.target import Target

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_REF_EXAMPLE = 'RunRef(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")'
_SCORE_EXAMPLE = 'slc.score(ref, "helpfulness", 0.8)'
#: Longest score name kept, in characters (it names the span too).
MAX_SCORE_NAME = 100


@dataclass(frozen=True, slots=True)
class RunRef:
    """A traced run, by its trace id and span id (lower-case hex), to attach a score to.

    Example::

        ref = slc.RunRef(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")
        slc.score(ref, "thumbs_up", True)

    Raises :class:`~sentry_llm_callbacks.ConfigurationError` for ids that are not 32 and 16 hex
    digits (or are all zeros, which OpenTelemetry treats as no id).
    """

    trace_id: str
    span_id: str

    def __post_init__(self) -> None:
        trace_id = _hex(self.trace_id, _HEX32, "trace_id", "32")
        span_id = _hex(self.span_id, _HEX16, "span_id", "16")
        object.__setattr__(self, "trace_id", trace_id)
        object.__setattr__(self, "span_id", span_id)

    @classmethod
    def of(cls, run: Run) -> RunRef:
        return cls.from_ids(run.context.trace_id, run.context.span_id)

    @classmethod
    def from_ids(cls, trace_id: int, span_id: int) -> RunRef:
        return cls(format(trace_id, "032x"), format(span_id, "016x"))


def _hex(value: object, pattern: re.Pattern[str], field: str, digits: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(
            field, f"must be a string of {digits} hex digits, not {type(value).__name__}", _REF_EXAMPLE
        )
    text = value.strip().lower()
    if not pattern.fullmatch(text) or not text.strip("0"):
        raise ConfigurationError(field, f"{value!r} is not {digits} hex digits (and not all zeros)", _REF_EXAMPLE)
    return text


@dataclass(frozen=True, slots=True)
class Score:
    """One score, its value read from whatever the app passed."""

    name: str
    #: ``score`` (a number), ``boolean`` or ``choice``: the answer types Sentry's view reads.
    kind: str
    number: float | None
    choice: str | None
    explanation: str | None
    #: The evaluated text, when the value carried it (an evaluator's result).
    state: Any = None

    @property
    def answer(self) -> dict[str, Any]:
        if self.kind == "boolean":
            return {"type": "boolean", "probability": self.number}
        if self.kind == "choice":
            return {"type": "choice", "choice": self.choice}
        return {"type": "score", "score": self.number}

    @property
    def label(self) -> str | None:
        if self.kind == "boolean":
            return "true" if self.number else "false"
        return self.choice


def read_score(name: object, value: object, explanation: object = None) -> Score:
    """A :class:`Score` from ``score()``'s arguments: a number, a bool, a string, a LlamaIndex
    ``EvaluationResult`` or a LangChain evaluator's result dict. Raises ConfigurationError."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("name", f"a score's name must be a non-empty string, not {name!r}", _SCORE_EXAMPLE)
    name = clean_str(name.strip())[:MAX_SCORE_NAME]
    if explanation is not None and not isinstance(explanation, str):
        raise ConfigurationError("explanation", f"must be a string, not {type(explanation).__name__}", _SCORE_EXAMPLE)
    state = None
    if isinstance(value, Mapping):  # a LangChain evaluator's result: score, value, reasoning
        explanation = explanation or _text(value.get("reasoning"))
        value = value.get("score") if value.get("score") is not None else value.get("value")
    elif _is_evaluation_result(value):  # LlamaIndex: score, passing, feedback, response
        explanation = explanation or _text(getattr(value, "feedback", None))
        state = _text(getattr(value, "response", None))
        number = getattr(value, "score", None)
        value = number if number is not None else getattr(value, "passing", None)
    if isinstance(value, bool):
        return Score(name, "boolean", 1.0 if value else 0.0, None, explanation, state)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return Score(name, "score", float(value), None, explanation, state)
    if isinstance(value, str) and value.strip():
        return Score(name, "choice", None, clean_str(value.strip())[:MAX_SCORE_NAME], explanation, state)
    raise ConfigurationError(
        "value",
        f"a score is a finite number, a bool or a non-empty string (or an evaluator's result), not {value!r}",
        _SCORE_EXAMPLE,
    )


def _is_evaluation_result(value: object) -> bool:
    return hasattr(value, "passing") and hasattr(value, "feedback")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def evaluation_span(target: Target, ref: RunRef, score: Score, *, private: bool | None = None) -> ReadableSpan:
    """The evaluation span for ``score`` on ``ref``, for ``target``'s destination. ``private``:
    the scored run's Privacy Mode when it is known (an open run), else the destination's."""
    settings = target.settings
    private = bool(settings.privacy_mode) if private is None else private
    policy = ContentPolicy(private=False, max_chars=settings.max_content_chars, mask=settings.mask)
    name = fit_name(f"evaluate {score.name}")
    question: dict[str, Any] = {"type": score.answer["type"]}
    if score.explanation is not None:
        question["instructions"] = attr.FILTERED if private else score.explanation
    state = attr.FILTERED if private and score.state is not None else score.state
    evaluated = [{"type": "evaluation", "state": state, "questions": {score.name: question}}]
    attributes: dict[str, Any] = {
        attr.SENTRY_OP: attr.OP_EVALUATE,
        attr.SENTRY_DESCRIPTION: name,
        attr.OPERATION_NAME: "evaluate",
        attr.EVALUATION_NAME: score.name,
        # The text leaves through the content policy (mask, size cut) on the export thread.
        attr.INPUT_MESSAGES: to_json(evaluated) if private else LazyContent(evaluated, policy),
        attr.OUTPUT_MESSAGES: to_json([{"type": "evaluation", "answers": {score.name: score.answer}}]),
    }
    if score.number is not None:
        attributes[attr.EVALUATION_SCORE_VALUE] = score.number
    if score.label is not None:
        attributes[attr.EVALUATION_SCORE_LABEL] = score.label
    if score.explanation is not None:
        attributes[attr.EVALUATION_EXPLANATION] = attr.FILTERED if private else LazyContent(score.explanation, policy)
    if settings.environment:
        attributes[attr.SENTRY_ENVIRONMENT] = settings.environment
    if settings.release:
        attributes[attr.SENTRY_RELEASE] = settings.release
    trace_id = int(ref.trace_id, 16)
    now = time.time_ns()
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, new_span_id(), False, SAMPLED),
        parent=SpanContext(trace_id, int(ref.span_id, 16), True, SAMPLED),
        resource=target.resource,
        attributes=attributes,
        kind=SpanKind.INTERNAL,
        start_time=now,
        end_time=now,
        instrumentation_scope=target.scope,
    )


def send(target: Target, span: ReadableSpan) -> None:
    """Hand an evaluation span to the destination's sink (counted like every span)."""
    COUNTERS.add("spans_started")
    target.sink.on_end(span)


class LastTraces:
    """The root of the last trace that finished in each context (a thread, or an asyncio task),
    for ``last_trace()``; bounded, and forgetting tasks that are gone."""

    MAX_THREADS = 4096

    #: Traces of private runs remembered, so a score on them later is private too.
    MAX_PRIVATE = 10_000

    def __init__(self) -> None:
        self._threads: dict[int, tuple[int, int]] = {}
        #: Trace ids whose root ran in Privacy Mode (insertion-ordered, bounded).
        self._private: dict[int, None] = {}
        #: By asyncio task; a finished task's entry goes with it.
        self._tasks: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def root_ended(self, run: Run) -> None:
        """Called when a local root ends (cheap: only its ids are kept, the reference is made when
        asked for), for the thread or task it started in (LangChain may end it in another task)."""
        ids = (run.context.trace_id, run.context.span_id)
        if run.policy.private:
            private = self._private
            private[ids[0]] = None
            if len(private) > self.MAX_PRIVATE:
                del private[next(iter(private))]
        where = run.trace.origin
        if where is None or type(where) is int:
            threads = self._threads
            if len(threads) >= self.MAX_THREADS:
                threads.clear()
            threads[where if where is not None else threading.get_ident()] = ids
            return
        with self._lock:
            self._tasks[where] = ids

    def last(self) -> RunRef | None:
        where = origin()
        found = self._threads.get(where) if type(where) is int else self._tasks.get(where)
        if found is None:
            return None
        return RunRef.from_ids(*found)

    def was_private(self, trace_id: int) -> bool:
        """True when a trace that ended here ran in Privacy Mode (remembered for the last 10 000)."""
        return trace_id in self._private

    def clear(self) -> None:
        self._threads.clear()
        self._private.clear()
        self._tasks = weakref.WeakKeyDictionary()


def origin() -> Any:
    """The context a trace starts in: the running asyncio task, else the thread's id."""
    # asyncio is asked only when the app has imported it; another thread may be importing it
    # right now, so the module can still lack its functions.
    current_task = getattr(sys.modules.get("asyncio"), "current_task", None)
    if current_task is not None:
        try:
            task = current_task()
        except RuntimeError:  # no running event loop in this thread
            task = None
        if task is not None:
            return task
    return threading.get_ident()


__all__ = ["LastTraces", "RunRef", "Score", "evaluation_span", "origin", "read_score", "send"]
