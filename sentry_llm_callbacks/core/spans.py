"""Span building: a run's name, and when it ends its finished ``ReadableSpan``, built in one go.

This skips the SDK's live-span machinery (a lock, a sampler call and attribute validation per
span), which is most of the cost of a span: sampling is decided once per trace, at the root, and
attribute values are made valid here. The finished span goes to its trace's sink, or waits with
the trace for its tail decision.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import LazyContent, clean_str, scalar_or_json
from sentry_llm_callbacks.core.kinds import CHAT_LIKE, GENERATIONS, OPS
from sentry_llm_callbacks.core.pricing import cost_of
from sentry_llm_callbacks.core.runs import Run, TraceState
from sentry_llm_callbacks.core.usage import Usage, usage_attributes

MAX_NAME = 128


def admits_content(run: Run) -> bool:
    """Privacy Mode's one test: may this run's content (prompts, completions, I/O, documents,
    exception messages) leave the process?"""
    return not run.policy.private


# --------------------------------------------------------------------------- names


def default_name(kind: str, subject: str | None) -> str:
    """``chat gpt-4o``, ``execute_tool search``, ``invoke_agent LangGraph``; chains: their own name."""
    operation = OPS[kind][1]
    subject = subject or ""
    if operation is None:
        return subject.replace("/", "_") or str(kind)
    if kind in GENERATIONS:
        subject = subject.rpartition("/")[2]  # "openai/gpt-4o" -> "gpt-4o": generated names have no "/"
    subject = subject.replace("/", "_")
    return f"{operation} {subject}" if subject else operation


def fit_name(name: str) -> str:
    name = clean_str(name.strip())
    return name[:MAX_NAME] if len(name) > MAX_NAME else name


def span_name(kind: str, name: str | None, explicit: bool, trace: TraceState, *, root: bool) -> tuple[str, bool]:
    """The span name, and whether it is a default name (one a later rule may replace): the
    trace's ``trace_name`` at the root, a name the run was given, the trace's ``span_name`` /
    ``generation_name`` below it, else :func:`default_name`."""
    chosen = trace.trace_name if root else None
    if not chosen and explicit and name:
        chosen = name
    if not chosen and not root:
        chosen = trace.generation_name if kind in GENERATIONS else trace.span_name
    if chosen:
        fitted = fit_name(chosen)
        if fitted:
            return fitted, False
    return _fitted_default_name(kind, name), True


@functools.lru_cache(maxsize=4096)  # a process names the same few runs again and again
def _fitted_default_name(kind: str, name: str | None) -> str:
    return fit_name(default_name(kind, name)) or str(kind)


# --------------------------------------------------------------------------- at the end


def finish_generation(run: Run, usage: Usage | None, *, count_missing: bool = True) -> None:
    """A model call's closing attributes: the request model (never empty), streaming and time to
    first chunk, token usage and its cost (the provider's, else the price table's)."""
    attrs = run.attributes
    if attr.REQUEST_MODEL not in attrs:  # Sentry groups models by the request model: never leave it empty
        attrs[attr.REQUEST_MODEL] = attrs.get(attr.RESPONSE_MODEL) or clean_str(run.subject)
    if run.first_chunk_at is not None:
        attrs[attr.RESPONSE_STREAMING] = True
        attrs[attr.RESPONSE_TIME_TO_FIRST_CHUNK] = round(run.first_chunk_at - run.started, 6)
    if usage is not None and usage.has_tokens:
        usage, cost_source = _priced(run, usage)
        attrs.update(usage_attributes(usage, cost_source))
        attrs[attr.USAGE_SOURCE] = "provider"
    else:
        if usage is not None and usage.has_cost:
            attrs.update(usage_attributes(usage))
        attrs[attr.USAGE_SOURCE] = "missing"
        if count_missing:
            COUNTERS.add("generations_without_usage")


def _priced(run: Run, usage: Usage) -> tuple[Usage, str]:
    """``usage`` with its cost, and where the cost came from."""
    prices = run.trace.prices
    if usage.has_cost or prices is None:
        return usage, "provider"
    attrs = run.attributes
    model = attrs.get(attr.RESPONSE_MODEL) or attrs.get(attr.REQUEST_MODEL)
    if not isinstance(model, str):
        return usage, "provider"
    provider = attrs.get(attr.PROVIDER_NAME)
    price = prices.lookup(model, provider if isinstance(provider, str) else None)
    if price is None:
        return usage, "provider"
    return cost_of(usage, price), "price_table"


def finish(run: Run) -> None:
    """Build the run's finished span and hand it on: to its trace's sink, or to the trace's
    pending tail decision. Nothing for a trace that is not sampled."""
    state = run.trace
    if not state.sampled:
        return
    op, operation = OPS[run.kind]
    attrs = {**state.attributes, attr.SENTRY_OP: op, attr.SENTRY_DESCRIPTION: run.name}
    if operation is not None:
        attrs[attr.OPERATION_NAME] = operation
    if run.agent is not None:
        attrs[attr.AGENT_NAME] = run.agent.attributes.get(attr.AGENT_NAME) or run.agent.subject
    if run.attributes:
        make_valid(run.attributes)  # the trace's own attributes were made valid at the root
        attrs.update(run.attributes)
    if not admits_content(run):  # the allowlist: whatever reached the run, only non-content leaves
        attrs = {k: v for k, v in attrs.items() if not attr.is_content(k)}
        if run.kind in CHAT_LIKE:
            attrs.update(dict.fromkeys(attr.PRIVATE_PLACEHOLDERS, attr.FILTERED))
    span = ReadableSpan(
        name=run.name,
        context=run.context,
        parent=run.parent,
        resource=state.resource,
        attributes=attrs,
        events=tuple(run.events) if run.events else (),
        links=run.links,
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


_SCALARS = frozenset({str, bool, float, LazyContent})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def make_valid(attrs: dict[str, Any]) -> None:
    """Coerce values the OTLP encoder cannot take (it would fail the whole batch) to strings."""
    scalars = _SCALARS
    for key, value in attrs.items():
        kind = type(value)
        if kind in scalars:
            continue
        if kind is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                attrs[key] = str(value)
        elif (kind is list or kind is tuple) and all(type(v) is str for v in value):
            continue
        else:
            attrs[key] = scalar_or_json(value)


def exception_event(error: BaseException, *, private: bool) -> dict[str, str]:
    """The attributes of a failed run's ``exception`` event: the type, and outside Privacy Mode
    the message and stack trace."""
    event = {attr.EXCEPTION_TYPE: type(error).__qualname__}
    if private:
        return event
    event[attr.EXCEPTION_MESSAGE] = clean_str(str(error)[:4096])
    import traceback  # loaded with the first error, not with the package

    with contextlib.suppress(Exception):
        event[attr.EXCEPTION_STACKTRACE] = clean_str(
            "".join(traceback.format_exception(type(error), error, error.__traceback__))[-16_384:]
        )
    return event
