"""Extra exporters (``configure(exporters=[...])``), each behind batching of its own.

Each one runs on its own thread, through OpenTelemetry's ``BatchSpanProcessor``, beside the
OTLP queue: a slow or hanging exporter delays only itself, never delivery to Sentry. It is
shown spans with their content finished (:mod:`.finishing`), as the OTLP queue sends them.
Its failures are logged once, never raised; spans it had no room for are counted in
``stats()["extra_exporter_spans_dropped"]`` (apart from ``spans_dropped``, which is about
Sentry). ``flush()`` and ``shutdown()`` wait for it only until their deadline (the SDK's own
``force_flush`` and ``shutdown`` would wait on a hanging exporter indefinitely).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import fork_safe, log_once, warn_user
from sentry_llm_callbacks.base.threads import start_daemon
from sentry_llm_callbacks.core.finishing import finish_spans

#: Spans an extra exporter may have waiting; past it the oldest are dropped (with the SDK's warning).
EXTRA_QUEUE_SIZE = 2048


class FinishingExporter(SpanExporter):
    """Wraps a user's exporter: spans go to it with their content finished; its exceptions are
    logged once per exporter class, never passed on."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self._name = type(exporter).__name__
        #: Called with the number of spans taken from the batching queue, before they are exported.
        self.taken: Callable[[int], None] = lambda n: None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.taken(len(spans))
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
        fork_safe(self, "_lock")
        self._name = type(exporter).__name__
        self._capacity = max(EXTRA_QUEUE_SIZE, max_batch_size)
        #: Spans handed to the batching queue and not yet taken out for export. The SDK's queue
        #: drops its oldest span when full, with a log line only: this count is how we see it.
        self._waiting = 0
        self._closed = False
        finishing = FinishingExporter(exporter)
        finishing.taken = self._taken
        self._batching = BatchSpanProcessor(
            finishing,
            max_queue_size=self._capacity,
            schedule_delay_millis=schedule_delay * 1000,
            max_export_batch_size=max_batch_size,
        )

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            dropped = self._closed or self._waiting >= self._capacity
            if not dropped:
                self._waiting += 1
        if dropped:
            COUNTERS.add("extra_exporter_spans_dropped")
            warn_user(
                f"extra-exporter-full-{self._name}",
                f"The extra exporter {self._name} is not keeping up: spans it had no room for are dropped "
                "(counted in stats()['extra_exporter_spans_dropped']); delivery to Sentry is not affected.",
            )
        self._batching.on_end(span)

    def _taken(self, n: int) -> None:
        with self._lock:
            self._waiting = max(0, self._waiting - n)

    def start_flush(self) -> threading.Event:
        """Export what is waiting, on a thread of its own; the event is set when that is done."""
        return _in_background(self._batching.force_flush, "flush")

    def start_shutdown(self) -> threading.Event:
        """Export what is waiting and shut the exporter down, on a thread of its own."""
        self._closed = True
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

    start_daemon(run, f"sentry-llm-callbacks-extra-{what}")
    return done
