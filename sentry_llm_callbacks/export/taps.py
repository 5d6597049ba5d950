"""Span taps: callables shown every finished span, as a span processor beside the export queue.

The notebook summary is one: it collects the spans a cell finishes. Taps are process-wide and
outlive a ``configure()`` (a notebook keeps its summary across destinations), so there is one
:data:`TAPS` processor, which every export pipeline puts first among its span processors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from sentry_llm_callbacks.base.log import log_once

Tap = Callable[[ReadableSpan], None]


class SpanTaps(SpanProcessor):
    """Shows each finished span to every registered tap; a tap that raises is logged, never
    passed on. Empty in normal use, so a span pays one truth test."""

    def __init__(self) -> None:
        #: Replaced, never mutated: a span ending on another thread iterates a stable tuple.
        self.taps: tuple[Tap, ...] = ()

    def add(self, tap: Tap) -> None:
        if tap not in self.taps:
            self.taps = (*self.taps, tap)

    def remove(self, tap: Tap) -> None:
        self.taps = tuple(t for t in self.taps if t is not tap)

    def __contains__(self, tap: object) -> bool:
        return tap in self.taps

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        for tap in self.taps:
            try:
                tap(span)
            except Exception as exc:
                log_once("tap", logging.DEBUG, "A span tap failed: %r", exc)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


#: The process's taps.
TAPS = SpanTaps()
