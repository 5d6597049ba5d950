"""The content policy's export-side stage: spans holding lazily captured content, finished.

The recorder captures content on the application's thread as :class:`~.content.LazyContent`
(a snapshot and the policy that applies to it); turning it into text (conversion to JSON, the
``mask``, the ``data:`` placeholder, the size cut) happens here, on an export thread, where its
cost does not lengthen the application's calls. A finished span is a new ``ReadableSpan`` with
the rendered attributes: the span the recorder made is never edited, so every consumer (the
OTLP queue, each extra exporter) finishes its own copy under the same policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan

from sentry_llm_callbacks.core.content import RenderCache, finished_attributes


def finish_span(span: ReadableSpan, cache: RenderCache | None = None) -> ReadableSpan:
    """``span`` with its content rendered, its events' included; ``span`` itself when it holds none."""
    attributes = finished_attributes(span.attributes, cache)
    events = _finished_events(span.events, cache) if span.events else None
    if attributes is None and events is None:
        return span
    return with_attributes(span, dict(span.attributes) if attributes is None else attributes, events)


def _finished_events(events: Sequence[Event], cache: RenderCache | None) -> tuple[Event, ...] | None:
    """The events with their content rendered; None when none of them holds content."""
    out: list[Event] | None = None
    for i, event in enumerate(events):
        attributes = finished_attributes(event.attributes, cache) if event.attributes else None
        if attributes is None:
            continue
        if out is None:
            out = list(events)
        out[i] = Event(event.name, attributes, event.timestamp)
    return tuple(out) if out is not None else None


def with_attributes(
    span: ReadableSpan, attributes: Mapping[str, Any], events: Sequence[Event] | None = None
) -> ReadableSpan:
    """A copy of ``span`` with other attributes (and events): a built span is never edited."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events if events is None else events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def finish_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """Every span of one batch finished, content repeated across the batch rendered once."""
    cache = RenderCache()
    return [finish_span(span, cache) for span in spans]
