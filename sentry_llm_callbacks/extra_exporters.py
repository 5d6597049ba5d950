"""Extra exporters (``configure(exporters=[...])``), each behind batching of its own.

Each one runs on its own thread, through OpenTelemetry's ``BatchSpanProcessor``, beside the
OTLP queue: a slow or hanging exporter delays only itself, never delivery to Sentry. It is
shown spans with their content finished (:mod:`.finishing`), as the OTLP queue sends them.
Its failures are logged once, never raised; ``flush()`` and ``shutdown()`` wait for it only
until their deadline (the SDK's own ``force_flush`` and ``shutdown`` would wait on a hanging
exporter indefinitely).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ._logging import log_once
from .finishing import finish_spans

#: Spans an extra exporter may have waiting; past it the oldest are dropped (with the SDK's warning).
EXTRA_QUEUE_SIZE = 2048


class FinishingExporter(SpanExporter):
    """Wraps a user's exporter: spans go to it with their content finished; its exceptions are
    logged once per exporter class, never passed on."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self._name = type(exporter).__name__

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            return self.exporter.export(finish_spans(spans))
        except Exception as exc:
            log_once(f"extra-{self._name}", logging.WARNING, "Exporter %s failed: %r", self._name, exc)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception as exc:
            log_once("extra-shutdown", logging.WARNING, "Exporter shutdown failed: %r", exc)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        flush = getattr(self.exporter, "force_flush", None)
        try:
            return flush(timeout_millis) is not False if callable(flush) else True
        except Exception as exc:
            log_once(f"extra-flush-{self._name}", logging.WARNING, "Exporter %s failed to flush: %r", self._name, exc)
            return False


class ExtraExporterProcessor(SpanProcessor):
    """One extra exporter with its own batching thread."""

    def __init__(self, exporter: SpanExporter, *, max_batch_size: int, schedule_delay: float = 1.0) -> None:
        self._batching = BatchSpanProcessor(
            FinishingExporter(exporter),
            max_queue_size=max(EXTRA_QUEUE_SIZE, max_batch_size),
            schedule_delay_millis=schedule_delay * 1000,
            max_export_batch_size=max_batch_size,
        )

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self._batching.on_end(span)

    def start_flush(self) -> threading.Event:
        """Export what is waiting, on a thread of its own; the event is set when that is done."""
        return _in_background(self._batching.force_flush, "flush")

    def start_shutdown(self) -> threading.Event:
        """Export what is waiting and shut the exporter down, on a thread of its own."""
        return _in_background(self._batching.shutdown, "shutdown")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.start_flush().wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        self.start_shutdown()


def _in_background(call: Callable[[], object], what: str) -> threading.Event:
    """Run ``call`` on a daemon thread (it may block on the exporter for as long as that takes)
    and return an event set when it returns: the caller waits on it only until its deadline."""
    done = threading.Event()

    def run() -> None:
        try:
            call()
        except Exception as exc:
            log_once(f"extra-{what}", logging.WARNING, "An extra exporter's %s failed: %r", what, exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"sentry-llm-callbacks-extra-{what}", daemon=True).start()
    return done
