"""The process-wide export pipeline: finished spans in, OTLP/HTTP requests out.

Parts, each with one job, arrows pointing one way (recorder -> pipeline -> endpoint):

* :class:`ExportPipeline` wires the parts for one destination: the resource and the head
  sampler, and the span processors every finished span is handed to, in order: the taps
  (:mod:`.taps`), the OTLP queue, and one batching processor per extra exporter
  (:mod:`.extra_exporters`).
* :class:`QueueSpanProcessor` takes finished spans on the application's thread (an append to a
  deque, never blocking) and exports them from one background thread, within a backlog bounded
  in spans and bytes (full means whole traces dropped and counted). ``flush`` and ``shutdown``
  wait on a deadline, never on the network. Behind it, one part per job: the backlog and its
  bound (:mod:`.backlog`); finishing content, encoding (:mod:`.otlp`) and compressing
  (:mod:`.compression`) into request bodies (:mod:`.encoding`); the export thread, sending with
  backoff (:mod:`.worker`, :mod:`.transport`).

Nothing here calls back into the recorder: its housekeeping is its own timer (:mod:`.reaper`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from sentry_llm_callbacks._version import __version__
from sentry_llm_callbacks.base.log import log_once
from sentry_llm_callbacks.config.options import default
from sentry_llm_callbacks.config.settings import Destination
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.export.backlog import Backlog
from sentry_llm_callbacks.export.encoding import SpanEncoder
from sentry_llm_callbacks.export.extra_exporters import ExtraExporterProcessor
from sentry_llm_callbacks.export.taps import TAPS
from sentry_llm_callbacks.export.transport import Backoff, OtlpHttpSender
from sentry_llm_callbacks.export.worker import ExportWorker

# --------------------------------------------------------------------------- queue and worker


class QueueSpanProcessor(SpanProcessor):
    """Bounded backlog on the app side, one export thread on the other.

    Finished spans go through three stages: the span queue (``on_end`` appends to a deque),
    encoded pieces (protobuf bytes, content finished just before) compressed in segments into
    the next request body (:mod:`.compression`, sealed at the request size limit: bigger
    batches when behind), and sealed bodies waiting to be sent or retried. The parts: the
    backlog with its bound (:mod:`.backlog`), the encoding (:mod:`.encoding`) and the export
    thread (:mod:`.worker`). The export thread sends, and encodes and compresses what the
    application threads have not.

    When the span queue grows past ``HELP_AFTER_BATCHES`` batches, the application threads that
    end spans encode a chunk of it themselves, compress a segment once enough is encoded, and
    seal a request when the export thread has none ready: a single export thread gets too small
    a share of the interpreter lock against many busy threads, and this way each thread pays for
    the spans it makes. No lock is held while compressing or sending: both give the interpreter
    lock away, and under load a thread can wait seconds to get it back.

    The backlog is bounded by ``max_queue_size`` spans and ``max_queue_bytes`` bytes: compressed
    bytes, plus encoded bytes not yet compressed at the running compression ratio (and at most
    ``RAW_FACTOR`` times the budget of those).
    At the bound new traces are refused whole (``accepts_new_trace``, asked at a trace's root);
    spans of traces already running may go a quarter past it, beyond which the span's trace is
    cut: its remaining spans are dropped too, so that what is sent is whole traces. Every span
    that is not delivered is counted in ``spans_dropped`` with the reason logged, and the next
    ``force_flush`` returns False.

    Example::

        processor = QueueSpanProcessor(sender, max_queue_size=100_000, max_queue_bytes=4 << 20, max_batch_size=512)
        processor.on_end(span)  # on the application's thread: an append
        delivered = processor.flush_within(5.0)
    """

    # Each part's tuning is defined where it is used, and named here too.
    ENCODE_CHUNK = ExportWorker.ENCODE_CHUNK
    HELP_CHUNK = 16  #: spans an application thread encodes when the queue is behind
    HELP_AFTER_BATCHES = SpanEncoder.HELP_AFTER_BATCHES
    SEGMENT_BYTES = SpanEncoder.SEGMENT_BYTES
    RAW_FACTOR = Backlog.RAW_FACTOR

    def __init__(
        self,
        sender: OtlpHttpSender,
        *,
        max_queue_size: int = default("max_queue_size"),
        max_queue_bytes: int = default("max_queue_bytes"),
        max_batch_size: int = default("max_batch_size"),
        schedule_delay: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        backlog = Backlog(sender.compression, max_spans=max_queue_size, max_bytes=max_queue_bytes)
        self._backlog = backlog
        self._encoder = SpanEncoder(backlog, sender, max_batch_size=max_batch_size)
        self._worker = ExportWorker(
            backlog,
            self._encoder,
            sender,
            max_batch_size=max_batch_size,
            schedule_delay=schedule_delay,
            backoff=backoff or Backoff(),
        )
        # Read on every span, on the application's thread: kept here, not one hop away. The
        # backlog never replaces these two containers.
        self._queue = backlog.queue
        self._cut_traces = backlog.cut_traces
        self._batch = max_batch_size
        self._stopped = False

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a finished span for export (an append, never blocking); past the bound, drop
        it and the rest of its trace."""
        if self._stopped:
            self._backlog.drop(1, "they ended after shutdown")
            return
        if self._cut_traces and span.context.trace_id in self._cut_traces:
            self._backlog.drop(1, "the rest of their trace was dropped at the backlog bound")
            return
        queue = self._queue
        if self._backlog.over(1.25):
            self._backlog.cut(span.context.trace_id)
            return
        queue.append(span)
        worker = self._worker
        if worker.thread is None:
            worker.start()
        waiting = len(queue)
        if waiting >= self._batch:
            if not worker.wake.is_set():
                worker.wake.set()
            # Only when the export thread has fallen well behind (it was woken a batch ago and has
            # not caught up: other threads hold the interpreter lock): then this thread helps.
            # In steady state the export thread does all of it, off the application's path.
            if waiting >= self.HELP_AFTER_BATCHES * self._batch:
                self._encoder.encode_some(self.HELP_CHUNK)
                self._encoder.help_compress()

    def accepts_new_trace(self) -> bool:
        """False when the backlog is at its bound: a new trace is then dropped whole (its spans
        counted as dropped), rather than cutting spans out of many traces."""
        if not self._backlog.over(1.0):
            return True
        self._backlog.refuse_new_trace()
        return False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """``flush_within`` in milliseconds, as OpenTelemetry's processors take it."""
        return self.flush_within(timeout_millis / 1000)

    def flush_within(self, seconds: float) -> bool:
        """Deliver what is queued; False at the deadline (whatever the endpoint does), or if any
        span was dropped since the previous flush."""
        return self._worker.flush_within(seconds)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush within ``timeout`` seconds, then stop: spans ended later, and whatever could not
        be delivered by then, are dropped and counted. Returns what the flush returned."""
        ok = self._worker.flush_within(timeout)
        self._stopped = True
        self._worker.stop()
        return ok

    @property
    def backoff(self) -> Backoff:
        """The retry schedule and circuit breaker of the export thread."""
        return self._worker.backoff

    @backoff.setter
    def backoff(self, backoff: Backoff) -> None:
        self._worker.backoff = backoff

    @property
    def queued(self) -> int:
        """Spans queued or held for sending, not yet delivered or dropped."""
        return self._backlog.queued

    @property
    def queued_bytes(self) -> int:
        """Bytes held for sending as counted against ``max_queue_bytes``: compressed bytes, plus
        encoded ones not yet compressed at the running compression ratio."""
        return self._backlog.queued_bytes


# --------------------------------------------------------------------------- the pipeline


class SpanFanOut(SpanProcessor):
    """Hands each finished span to several processors, in order (what the recorder holds)."""

    def __init__(self, processors: tuple[SpanProcessor, ...]) -> None:
        self._processors = processors

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class ExportPipeline:
    """The span processors for one destination, with what every span of it shares.

    The recorder builds finished spans itself and hands them to ``span_processor``: the taps,
    the OTLP queue (``processor``), then each extra exporter's batching. ``is_sampled`` is the
    head sampling decision, from the trace id. The global tracer provider is never touched.
    """

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.resource = Resource.create(_resource_attributes(destination))
        self.scope = InstrumentationScope("sentry_llm_callbacks", __version__)
        transport = destination.transport
        self.sender = OtlpHttpSender(
            destination.endpoint,
            destination.request_headers(),
            timeout=destination.export_timeout,
            compression=transport.compression,
            verify=transport.verify,
            cert=transport.cert,
        )
        # Import the HTTP stack here, once, rather than on the export thread at its first request:
        # under a burst that thread waits for the interpreter lock at every step of an import.
        self.sender.warm_up()
        self.processor = QueueSpanProcessor(
            self.sender,
            max_queue_size=destination.max_queue_size,
            max_queue_bytes=destination.max_queue_bytes,
            max_batch_size=destination.max_batch_size,
        )
        self.extra = tuple(
            ExtraExporterProcessor(exporter, max_batch_size=destination.max_batch_size)
            for exporter in destination.exporters
        )
        self.span_processor = SpanFanOut((TAPS, self.processor, *self.extra))
        self._sampler = TraceIdRatioBased(destination.sample_rate) if destination.sample_rate < 1.0 else None
        #: Run first when the pipeline shuts down, while it still takes spans (see ``before_close``).
        self._before_close: list[Callable[[], None]] = []

    def before_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when this pipeline starts to shut down, before it stops taking spans:
        a stage still holding spans for it (the tail sampler) hands them over then."""
        self._before_close.append(callback)

    def is_sampled(self, trace_id: int) -> bool:
        """Per trace, from the trace id alone, so every span of a trace agrees (in any process)."""
        if self._sampler is None:
            return True
        return self._sampler.should_sample(None, trace_id, "root").decision.is_sampled()

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued within ``timeout`` seconds. True when everything reached the
        OTLP endpoint; extra exporters are given the same deadline, and do not change the answer."""
        deadline = time.monotonic() + timeout
        extra = [p.start_flush() for p in self.extra]
        ok = self.processor.flush_within(timeout)
        _wait_until(extra, deadline)
        return ok

    def shutdown(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for callback in self._before_close:
            try:
                callback()
            except Exception as exc:
                log_once("before-close", logging.WARNING, "Handing over held spans at shutdown failed: %r", exc)
        extra = [p.start_shutdown() for p in self.extra]
        ok = self.processor.shutdown(timeout)
        _wait_until(extra, deadline)
        return ok


def _wait_until(events: list[threading.Event], deadline: float) -> None:
    for event in events:
        event.wait(max(0.0, deadline - time.monotonic()))


def _resource_attributes(destination: Destination) -> dict[str, str]:
    resource = {
        attr.SERVICE_NAME: destination.service_name,
        attr.TELEMETRY_SDK_NAME: "sentry-llm-callbacks",
        attr.TELEMETRY_SDK_VERSION: __version__,
        attr.TELEMETRY_SDK_LANGUAGE: "python",
    }
    if destination.environment:
        resource[attr.DEPLOYMENT_ENVIRONMENT] = destination.environment
    if destination.release:
        resource[attr.SERVICE_VERSION] = destination.release
    return resource
