"""The content policy's export-side stage: spans holding lazily captured content, finished.

The recorder captures content on the application's thread as :class:`~.content.LazyContent`
(a snapshot and the policy that applies to it); turning it into text (conversion to JSON, the
``mask``, the ``data:`` placeholder, the size cut) happens here, on an export thread, where its
cost does not lengthen the application's calls. A finished span is a new ``ReadableSpan`` with
the rendered attributes: the span the recorder made is never edited, so every consumer (the
OTLP queue, each extra exporter) finishes its own copy under the same policy.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from sentry_llm_callbacks.core.content import RenderCache, finished_attributes


def finish_span(span: ReadableSpan, cache: RenderCache | None = None) -> ReadableSpan:
    """``span`` with its content rendered; ``span`` itself when it holds none."""
    attributes = finished_attributes(span.attributes, cache)
    if attributes is None:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
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
