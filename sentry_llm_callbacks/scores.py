"""Scores and feedback on traces: ``score()``, and the run references it takes.

Example::

    answer = chain.invoke(question, config={"callbacks": [handler]})
    ref = slc.last_trace()                     # the trace that just finished in this thread / task
    slc.score(ref, "thumbs_up", True)
    slc.score(ref, "helpfulness", 0.8, explanation="cites the runbook")

Store ``ref.trace_id`` and ``ref.span_id`` to score later, from anywhere:
``slc.score(slc.RunRef(trace_id=..., span_id=...), "resolved", "yes")``.
"""

from __future__ import annotations

import logging

from sentry_llm_callbacks import _state
from sentry_llm_callbacks.base.log import log_once, warn_user
from sentry_llm_callbacks.core.scores import RunRef, evaluation_span, read_score, send

__all__ = ["RunRef", "current_run", "last_trace", "score"]

_REF_HINT = "slc.last_trace(), or slc.RunRef(trace_id=..., span_id=...)"


def current_run() -> RunRef | None:
    """The innermost traced run whose code is running now (inside a tool, a graph node, a chain
    step), or None outside one.

    Example::

        @tool
        def lookup(q: str) -> str:
            ref = slc.current_run()            # this tool's run
            ...
    """
    run = _state.recorder.ambient_run()
    return RunRef.of(run) if run is not None else None


def last_trace() -> RunRef | None:
    """The root of the last trace that finished in this context (this thread, or this asyncio
    task), or None.

    Example::

        chain.invoke(inputs, config={"callbacks": [handler]})
        ref = slc.last_trace()
    """
    return _state.recorder.last_traces.last()


def score(ref: RunRef, name: str, value: object, *, explanation: str | None = None) -> None:
    """Attach a score to a traced run: one evaluation span, child of ``ref``, in its trace.

    ``value`` is a number (a score), a bool (a yes / no answer), a string (a choice), a LlamaIndex
    ``EvaluationResult`` or a LangChain evaluator's result dict (``score`` / ``value``,
    ``reasoning``). Works while the run is open, after its trace was sent, and from another
    process given the two ids. The score is sent whatever sampling decided for the trace. In
    Privacy Mode (the destination's, or the run's own when it is known here) the explanation and
    the evaluated text are sent as ``[Filtered]``; the name and the value are sent.

    Never raises for network problems (delivery is the export pipeline's, as for any span).
    Raises :class:`~sentry_llm_callbacks.ConfigurationError` for a ``ref`` that is not a
    :class:`RunRef`, an empty name, or a value of another kind.

    Example::

        slc.score(slc.last_trace(), "helpfulness", 0.8, explanation="cites the runbook")
    """
    if not isinstance(ref, RunRef):
        from sentry_llm_callbacks.base.errors import ConfigurationError

        raise ConfigurationError(
            "ref",
            f"must be a RunRef, not {type(ref).__name__}",
            "slc.last_trace() or slc.RunRef(trace_id=..., span_id=...)",
        )
    parsed = read_score(name, value, explanation)
    target = _state.get_target()
    if target is None:
        warn_user("score-not-configured", "A score was not sent: call configure(dsn=...) or set SENTRY_DSN first.")
        return
    try:
        send(target, evaluation_span(target, ref, parsed, private=_private(ref)))
    except Exception as exc:  # a score must never break the app
        log_once("score", logging.WARNING, "A score could not be sent: %r", exc)


def _private(ref: RunRef) -> bool | None:
    """The scored run's Privacy Mode when it is known here; None: the destination decides."""
    run = _state.recorder.ambient_run()
    if run is not None and format(run.context.span_id, "016x") == ref.span_id:
        return run.policy.private or None
    return True if _state.recorder.last_traces.was_private(int(ref.trace_id, 16)) else None
