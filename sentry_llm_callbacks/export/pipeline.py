"""The process-wide export pipeline: finished spans in, OTLP/HTTP requests out.

Parts, each with one job, arrows pointing one way (recorder -> sink -> endpoint):

* :class:`ExportPipeline` wires the parts for one destination: its ``sink`` (the core's
  :class:`~sentry_llm_callbacks.core.sink.SpanSink`) hands every finished span, in order, to the
  taps (:mod:`.taps`), the OTLP queue, and one batching processor per extra exporter
  (:mod:`.extra_exporters`).
* :class:`QueueSpanProcessor` takes finished spans on the application's thread (an append to a
  deque, never blocking) and exports them from one background thread, within a backlog bounded
  in spans and bytes (full means whole traces dropped and counted). ``flush`` and ``shutdown``
  wait on a deadline, never on the network. Behind it, one part per job: the backlog and its
  bound (:mod:`.backlog`); encoding with content rendered (:mod:`.otlp`) and compressing
  (:mod:`.compression`) into request bodies (:mod:`.encoding`); the export thread, sending with
  backoff (:mod:`.worker`, :mod:`.transport`).

Nothing here knows the recorder or an adapter, calls back into the core, or edits a span.
"""

from __future__ import annotations

import threading
import time

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from sentry_llm_callbacks.config.options import default
from sentry_llm_callbacks.config.settings import Destination
from sentry_llm_callbacks.export.backlog import Backlog
from sentry_llm_callbacks.export.compression import Compression
from sentry_llm_callbacks.export.encoding import SpanEncoder
from sentry_llm_callbacks.export.extra_exporters import ExtraExporterProcessor
from sentry_llm_callbacks.export.taps import TAPS, SpanTaps
from sentry_llm_callbacks.export.transport import Backoff, OtlpHttpSender, SendResult
from sentry_llm_callbacks.export.worker import ExportWorker

# --------------------------------------------------------------------------- queue and worker


class QueueSpanProcessor(SpanProcessor):
    """Bounded backlog on the app side, one export thread on the other.

    Finished spans go through three stages: the span queue (``on_end`` appends to a deque),
    encoded pieces (protobuf bytes, lazily captured content rendered as it is written) compressed in segments into
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

    def flush_within(self, seconds: float, *, until_failure: bool = False) -> bool:
        """Deliver what is queued; False at the deadline (whatever the endpoint does), or if any
        span was dropped since the previous flush (``until_failure``: or as soon as a request fails)."""
        return self._worker.flush_within(seconds, until_failure=until_failure)

    @property
    def failed_attempts(self) -> int:
        """Requests that were not delivered so far (each retry counts)."""
        return self._worker.failed_attempts

    @property
    def last_failure(self) -> SendResult | None:
        """The outcome of the last request that was not delivered: its status or network problem."""
        return self._worker.last_failure

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
    """Hands each finished span to the taps, the OTLP queue (``gate``) and each extra exporter's
    processor, in that order: the sink the recorder is given. A new trace is accepted while the
    OTLP queue has room for it.

    Called once per span on the application's thread: no taps and no extra exporters (the usual
    case) cost one truth test each, not a call."""

    def __init__(self, taps: SpanTaps, gate: QueueSpanProcessor, extra: tuple[SpanProcessor, ...] = ()) -> None:
        self._taps = taps
        self._gate = gate.on_end
        self._extra = extra
        self.accepts_new_trace = gate.accepts_new_trace

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._taps.taps:
            self._taps.on_end(span)
        self._gate(span)
        if self._extra:
            for processor in self._extra:
                processor.on_end(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class ExportPipeline:
    """The span processors for one destination.

    Finished spans are handed to ``sink``: the taps, the OTLP queue (``processor``), then each
    extra exporter's batching. The global tracer provider is never touched.
    """

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        transport = destination.transport
        self.sender = OtlpHttpSender(
            destination.endpoint,
            destination.request_headers(),
            timeout=destination.export_timeout,
            compression=Compression(transport.compression),
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
        self.sink = SpanFanOut(TAPS, self.processor, self.extra)

    def flush(self, timeout: float, *, until_failure: bool = False) -> bool:
        """Deliver what is queued within ``timeout`` seconds. True when everything reached the
        OTLP endpoint; extra exporters are given the same deadline, and do not change the answer.
        ``until_failure``: return False as soon as a request fails (``processor.last_failure``
        says why), without waiting through its retries."""
        deadline = time.monotonic() + timeout
        extra = [p.start_flush() for p in self.extra]
        ok = self.processor.flush_within(timeout, until_failure=until_failure)
        _wait_until(extra, deadline)
        return ok

    def shutdown(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        extra = [p.start_shutdown() for p in self.extra]
        ok = self.processor.shutdown(timeout)
        _wait_until(extra, deadline)
        return ok


def _wait_until(events: list[threading.Event], deadline: float) -> None:
    for event in events:
        event.wait(max(0.0, deadline - time.monotonic()))
