"""Where the recorder hands finished spans.

The core defines the interface and the export side implements it: the recorder never sees the
export pipeline, only the sink of the trace it is recording (see :mod:`.target`).
"""

from __future__ import annotations

from typing import Protocol

from opentelemetry.sdk.trace import ReadableSpan


class SpanSink(Protocol):
    """Takes finished spans (on the application's thread: it must not block)."""

    def on_end(self, span: ReadableSpan) -> None:
        """Take one finished span; a span it cannot take is counted as dropped, never raised."""
        ...

    def accepts_new_trace(self) -> bool:
        """Asked once at each trace's root: False drops the whole trace (its backlog is full)."""
        ...
