"""The process-wide export pipeline: finished spans in, OTLP/HTTP requests out.

Parts, each with one job, arrows pointing one way (recorder -> pipeline -> endpoint):

* :class:`ExportPipeline` wires the parts for one destination: the resource and the head
  sampler, and the span processors every finished span is handed to, in order: the taps
  (:mod:`.taps`), the OTLP queue, and one batching processor per extra exporter
  (:mod:`.extra_exporters`).
* :class:`QueueSpanProcessor` takes finished spans on the application's thread (an append to a
  deque, never blocking) and exports them from one background thread, within a backlog bounded
  in spans and bytes (full means whole traces dropped and counted). ``flush`` and ``shutdown``
  wait on a deadline, never on the network. On the way out, each batch goes through the content
  policy's stage (:mod:`.finishing`), the encoder (:mod:`.otlp`), the body compression
  (:mod:`.compression`) and the sender with its backoff (:mod:`.transport`).

Nothing here calls back into the recorder: its housekeeping is its own timer (:mod:`.reaper`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import DROP_ADVICE, UNAUTHORIZED, fork_safe, log_once, redact_url, warn_user
from sentry_llm_callbacks.base.threads import start_daemon
from sentry_llm_callbacks.config.options import default
from sentry_llm_callbacks.config.settings import Destination
from sentry_llm_callbacks.core.content import RenderCache
from sentry_llm_callbacks.core.finishing import finish_span
from sentry_llm_callbacks.export.compression import Compression
from sentry_llm_callbacks.export.extra_exporters import ExtraExporterProcessor
from sentry_llm_callbacks.export.taps import TAPS
from sentry_llm_callbacks.export.transport import Backoff, OtlpHttpSender, classify_status

# --------------------------------------------------------------------------- queue and worker


class QueueSpanProcessor(SpanProcessor):
    """Bounded backlog on the app side, one export thread on the other.

    Finished spans go through three stages: the span queue (``on_end`` appends to a deque),
    encoded pieces (protobuf bytes, content finished just before) compressed in segments into
    the next request body (:mod:`.compression`, sealed at the request size limit: bigger
    batches when behind), and
    sealed bodies waiting to be sent or retried. The export thread sends, and encodes and
    compresses what the application threads have not.

    When the span queue grows past one batch, the application threads that end spans encode a
    chunk of it themselves, compress a segment once enough is encoded, and seal a request when
    the export thread has none ready: a single export thread gets too small a share of the
    interpreter lock against many busy threads, and this way each thread pays for the spans it
    makes. No lock is held while compressing or sending: both give the interpreter lock away, and
    under load a thread can wait seconds to get it back.

    The backlog is bounded by ``max_queue_size`` spans and ``max_queue_bytes`` bytes: compressed
    bytes, plus encoded bytes not yet compressed at the running compression ratio (and at most
    ``RAW_FACTOR`` times the budget of those).
    At the bound new traces are refused whole (``accepts_new_trace``, asked at a trace's root);
    spans of traces already running may go a quarter past it, beyond which the span's trace is
    cut: its remaining spans are dropped too, so that what is sent is whole traces. Every span
    that is not delivered is counted in ``spans_dropped`` with the reason logged, and the next
    ``force_flush`` returns False.
    """

    ENCODE_CHUNK = 64  #: spans the export thread encodes between yields of the interpreter lock
    HELP_CHUNK = 16  #: spans an application thread encodes when the queue is behind
    HELP_AFTER_BATCHES = 4  #: how many batches behind the export thread must be before threads help
    SEGMENT_BYTES = 128 * 1024  #: encoded bytes compressed in one call (one gzip segment)
    #: Uncompressed bytes may reach this many times ``max_queue_bytes`` (they are counted in the
    #: budget at the running compression ratio; this bounds them if compression falls behind).
    RAW_FACTOR = 4
    _MAX_CUT_TRACES = 10_000

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
        self._sender = sender
        self._compression = sender.compression
        self._queue: deque[ReadableSpan] = deque()
        self._max_queue = max_queue_size
        self._max_bytes = max_queue_bytes
        self._batch = max_batch_size
        self._delay = schedule_delay
        self.backoff = backoff or Backoff()
        fork_safe(self, "_wake", threading.Event)
        fork_safe(self, "_idle", threading.Condition)
        # Guards what is held below: the counts, the encoded pieces, the request being built and
        # the sealed ones. Never held across a call that gives the interpreter lock away.
        fork_safe(self, "_lock")
        fork_safe(self, "_thread_lock")
        #: Encoded pieces (uncompressed) with their span counts, waiting to be compressed.
        self._encoded: deque[tuple[bytes, int]] = deque()
        #: The request being built.
        self._open = self._compression.new_request()
        #: Sealed bodies with span count and held bytes; a request to retry goes back to the front.
        self._ready: deque[tuple[bytes, int, int]] = deque()
        #: Spans taken from the queue and not yet delivered or dropped.
        self._held_spans = 0
        #: Compressed bytes held (the request being built and the sealed ones).
        self._held_bytes = 0
        #: Encoded bytes not yet compressed (waiting in ``_encoded`` or being compressed).
        self._raw_bytes = 0
        #: Running compressed / encoded size ratio, to count uncompressed pieces in the budget.
        self._ratio = 0.25
        #: Bumped when what is held is discarded: a segment compressed meanwhile is not added.
        self._epoch = 0
        #: Running estimate of one encoded span's size, for the part of the backlog not yet encoded.
        self._span_bytes = 1024.0
        #: Traces cut at the bound (insertion-ordered, bounded): their later spans are dropped too.
        self._cut_traces: dict[int, None] = {}
        self._lost_since_flush = 0
        self._stopping = False
        self._stopped = False
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None

    # -- application side -------------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopped:
            self._drop(1, "they ended after shutdown")
            return
        if self._cut_traces and span.context.trace_id in self._cut_traces:
            self._drop(1, "the rest of their trace was dropped at the backlog bound")
            return
        queue = self._queue
        if self._over(1.25):
            self._cut(span.context.trace_id)
            return
        queue.append(span)
        if self._thread is None:
            self._start_thread()
        waiting = len(queue)
        if waiting >= self._batch:
            if not self._wake.is_set():
                self._wake.set()
            # Only when the export thread has fallen well behind (it was woken a batch ago and has
            # not caught up: other threads hold the interpreter lock): then this thread helps.
            # In steady state the export thread does all of it, off the application's path.
            if waiting >= self.HELP_AFTER_BATCHES * self._batch:
                self._encode_some(self.HELP_CHUNK)
                self._help_compress()

    def accepts_new_trace(self) -> bool:
        """False when the backlog is at its bound: a new trace is then dropped whole (its spans
        counted as dropped), rather than cutting spans out of many traces."""
        if not self._over(1.0):
            return True
        self._lost_since_flush += 1
        warn_user(
            "backlog-full",
            f"The export backlog is full ({self._max_queue} spans or {self._max_bytes} bytes); new traces are "
            f"dropped until it drains. {DROP_ADVICE}",
        )
        return False

    def _over(self, factor: float) -> bool:
        spans = len(self._queue) + self._held_spans
        if spans >= self._max_queue * factor:
            return True
        if self._raw_bytes >= self._max_bytes * self.RAW_FACTOR * factor:
            return True
        return self._budget_bytes() >= self._max_bytes * factor

    def _budget_bytes(self) -> int:
        """What the backlog counts against ``max_queue_bytes``: compressed bytes held, encoded bytes
        at the running compression ratio (under load they wait a moment for a thread to compress
        them, and would otherwise trip the bound ten times too early), and an estimate for the
        spans still queued."""
        pending = self._raw_bytes * self._ratio
        return int(self._held_bytes + pending + len(self._queue) * self._span_bytes)

    def _cut(self, trace_id: int) -> None:
        with self._lock:
            self._cut_traces[trace_id] = None
            if len(self._cut_traces) > self._MAX_CUT_TRACES:
                del self._cut_traces[next(iter(self._cut_traces))]
        self._drop(1, "the export backlog is full")

    def _drop(self, count: int, why: str, kind: str | None = None) -> None:
        """Count spans that will not be delivered, and tell the user why (once per reason)."""
        if count <= 0:
            return
        COUNTERS.add("spans_dropped", count)
        self._lost_since_flush += count
        warn_user(kind or f"dropped-{why}", f"Dropped {count} span(s): {why}. {DROP_ADVICE}")

    def _start_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = start_daemon(self._run, "sentry-llm-callbacks-export")

    # -- encoding (export thread, and application threads when behind) ----------------

    def _encode_some(self, limit: int) -> int:
        """Take up to ``limit`` spans from the queue and encode them into pieces to be compressed.
        Returns how many spans were taken."""
        chunk: list[ReadableSpan] = []
        popleft = self._queue.popleft
        with self._lock:  # counted as held before they leave the queue: flush() must not miss them
            try:
                for _ in range(limit):
                    chunk.append(popleft())
            except IndexError:
                pass
            self._held_spans += len(chunk)
            epoch = self._epoch
        if not chunk:
            return 0
        taken = len(chunk)
        try:
            if self._cut_traces:
                kept = [s for s in chunk if s.context.trace_id not in self._cut_traces]
                self._release(taken - len(kept), 0)
                self._drop(taken - len(kept), "the rest of their trace was dropped at the backlog bound")
                chunk = kept
            self._resolve_content(chunk)
            pieces, oversize = self._sender.encode(chunk)
        except Exception as exc:  # a span the encoder cannot read must not stop the others
            self._release(len(chunk), 0)
            self._drop(len(chunk), f"they could not be encoded ({type(exc).__name__})")
            self._last_error = type(exc).__name__
            return taken
        if oversize:
            self._release(oversize, 0)
            self._drop(oversize, f"each was larger than the {self._sender.max_request_bytes}-byte request limit")
        size = sum(len(data) for data, _ in pieces)
        with self._lock:
            if epoch != self._epoch or not pieces:
                return taken  # discarded meanwhile: already counted as dropped
            self._raw_bytes += size
            self._span_bytes = 0.9 * self._span_bytes + 0.1 * (size / sum(n for _, n in pieces))
            self._encoded.extend(pieces)
        return taken

    def _help_compress(self) -> None:
        """On an application thread, when the queue is behind: compress a segment once enough is
        encoded, and when the export thread has no request ready, seal one for it, so that under
        load it only sends."""
        if self._raw_bytes >= self.SEGMENT_BYTES:
            self._compress_one()
        if not self._ready and self._open.count >= self._batch:
            with self._lock:
                if not self._ready:
                    self._seal_open()

    def _compress_pending(self) -> None:
        """Compress everything encoded (on the export thread: before sending, or while waiting)."""
        while self._compress_one():
            pass

    def _compress_one(self) -> bool:
        """Take up to a segment's worth of encoded pieces and compress them into the request being
        built. The compressing is done with no lock held: any thread can compress at the same
        time, and one that waits long for the interpreter lock after zlib holds up only itself.
        False when nothing was encoded."""
        limit = min(self.SEGMENT_BYTES, self._sender.max_request_bytes)
        pieces: list[bytes] = []
        raw = count = 0
        with self._lock:
            encoded = self._encoded
            while encoded and (not pieces or raw + len(encoded[0][0]) <= limit):
                data, n = encoded.popleft()
                pieces.append(data)
                raw += len(data)
                count += n
            epoch = self._epoch
        if not pieces:
            return False
        data = b"".join(pieces)
        segment, crc = self._compression.segment(data)
        self._add_segment(segment, crc, raw, count, epoch)
        return True

    def _add_segment(self, segment: bytes, crc: int, raw: int, count: int, epoch: int) -> None:
        """Append a compressed segment to the request being built, sealing that first when the
        segment would take it over the request size limit."""
        with self._lock:
            if epoch != self._epoch:
                return  # discarded meanwhile: already counted as dropped
            if self._open.count and self._open.raw_bytes + raw > self._sender.max_request_bytes:
                self._seal_open()
            self._open.add(segment, crc, raw, count)
            self._raw_bytes -= raw
            self._held_bytes += len(segment)
            if raw:
                self._ratio = 0.9 * self._ratio + 0.1 * (len(segment) / raw)

    def _seal_open(self) -> None:
        """Finish the request being built (holding ``_lock``) and queue it for sending: joining
        bytes, never giving the interpreter lock away."""
        request = self._open
        if not request.count:
            return
        before = request.size
        body = request.seal()
        self._held_bytes += request.size - before
        self._ready.append((body, request.count, request.size))
        self._open = self._compression.new_request()

    def _has_outgoing(self) -> bool:
        return bool(self._ready or self._encoded or self._open.count)

    def _release(self, spans: int, size: int) -> None:
        with self._lock:
            self._held_spans -= spans
            self._held_bytes -= size

    def _resolve_content(self, batch: list[ReadableSpan]) -> None:
        """The content policy's stage (:mod:`.finishing`), a few spans at a time: each span
        holding lazily captured content is replaced in ``batch`` by its finished copy."""
        cache = RenderCache()
        for i, span in enumerate(batch):
            batch[i] = finish_span(span, cache)
            if i % 16 == 15:
                self._pause()

    def _pause(self) -> None:
        """Between chunks of export work: yield the interpreter lock to the application while the
        backlog is what steady traffic leaves (so the app's tail latency stays low). Once it is
        several batches behind (the point where application threads start to help), keep going:
        against busy threads every yield costs this thread a long wait for the lock."""
        if len(self._queue) + self._held_spans < self.HELP_AFTER_BATCHES * self._batch:
            time.sleep(0)

    # -- export thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            wait = self._delay
            if self.backoff.failures and self._has_outgoing():
                wait = min(wait, max(0.01, self.backoff.next_attempt - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # last resort: whatever was in hand is lost, and counted
                log_once("export-loop", logging.ERROR, "Unexpected error in the export thread: %r", exc)
                self._last_error = type(exc).__name__
                self._discard_held(f"of an unexpected error in the export thread ({type(exc).__name__})")
            if self._stopping:
                self._discard_remaining()
            with self._idle:
                self._idle.notify_all()
            if self._stopping:
                self._sender.close()
                return

    def _drain(self) -> None:
        """Send what is encoded, then encode what is queued, until both are empty or the endpoint
        must be left alone (backoff). Sending comes first: under load the application threads
        encode, compress and seal for themselves, and this thread's share of the interpreter lock
        is small."""
        while True:
            if self._has_outgoing() and self.backoff.ready():
                if self._send_one():
                    continue
                self._compress_pending()  # waiting for the endpoint: keep the backlog compact
                return
            if not self._queue or (self._has_outgoing() and self._over(1.0)):
                # Nothing left to encode, or the backlog is full while waiting for the endpoint
                # (what is still queued stays there, bounded by on_end).
                self._compress_pending()
                return
            for _ in range(max(1, self._batch // self.ENCODE_CHUNK)):
                if not self._encode_some(self.ENCODE_CHUNK):
                    break
                self._pause()

    def _next_request(self) -> tuple[bytes, int, int] | None:
        """The oldest sealed body (a request to retry first), else the one being built, sealed now."""
        if not self._ready:
            if not self._open.count or self._raw_bytes >= self.SEGMENT_BYTES:
                self._compress_pending()  # else send what is compressed: small segments compress badly
            with self._lock:
                if not self._ready:
                    self._seal_open()
        try:
            return self._ready.popleft()
        except IndexError:
            return None

    def _send_one(self) -> bool:
        """Send one request; False if it must be retried later."""
        request = self._next_request()
        if request is None:
            return True
        body, count, size = request
        result = self._sender.post(body)
        if result.delivered:
            self._release(count, size)
            COUNTERS.add("spans_exported", count)
            self.backoff.success()
            self._last_error = None
            return True
        COUNTERS.add("exports_failed")
        self._last_error = str(result.status_code or result.detail)
        endpoint = redact_url(self._sender.endpoint)
        if result.retryable:
            self._ready.appendleft(request)
            delay = self.backoff.failure(result.retry_after)
            log_once(
                f"retry-{result.status_code}",
                logging.WARNING,
                "Export to %s failed (%s); retrying in %.1f s%s.",
                endpoint,
                result.status_code or result.detail,
                delay,
                " (circuit breaker open)" if self.backoff.breaker_open else "",
            )
            return False
        self._release(count, size)
        if result.status_code is None:
            self._drop(count, f"the request to {endpoint} could not be sent ({result.detail})")
        elif classify_status(result.status_code).reason == "unauthorized":
            self._drop(count, UNAUTHORIZED.format(endpoint=endpoint, status=result.status_code), "unauthorized")
        else:
            self._drop(count, f"{endpoint} rejected them with HTTP {result.status_code} {result.detail}".rstrip())
        return True

    def _discard_held(self, why: str) -> None:
        """Drop (and count) what was taken from the queue and not delivered."""
        with self._lock:
            held = self._held_spans
            self._epoch += 1
            self._encoded.clear()
            self._ready.clear()
            self._open = self._compression.new_request()
            self._held_spans = 0
            self._held_bytes = 0
            self._raw_bytes = 0
        self._drop(held, f"they were in hand when {why}")

    def _discard_remaining(self) -> None:
        """After shutdown's deadline: what could not be delivered is dropped and counted."""
        left = len(self._queue)
        self._queue.clear()
        self._drop(left, "they could not be delivered before shutdown")
        self._discard_held("shutdown's deadline passed")

    # -- deadlines --------------------------------------------------------------------

    def _settled(self) -> bool:
        return not self._queue and not self._held_spans

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.flush_within(timeout_millis / 1000)

    def flush_within(self, seconds: float) -> bool:
        """Deliver what is queued; False at the deadline (whatever the endpoint does), or if any
        span was dropped since the previous flush."""
        deadline = time.monotonic() + seconds
        if self._thread is None and not self._settled():
            self._start_thread()
        with self._idle:
            while True:
                if self._settled():
                    lost, self._lost_since_flush = self._lost_since_flush, 0
                    return self._last_error is None and not lost
                if self.backoff.failures and self.backoff.next_attempt > deadline:
                    return False  # the next attempt is after our deadline: don't wait for nothing
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))

    def shutdown(self, timeout: float = 5.0) -> bool:
        ok = self.flush_within(timeout)
        self._stopping = True
        self._stopped = True
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self._discard_remaining()
            self._sender.close()
        return ok

    @property
    def queued(self) -> int:
        return len(self._queue) + self._held_spans

    @property
    def queued_bytes(self) -> int:
        """Bytes held for sending as counted against ``max_queue_bytes``: compressed bytes, plus
        encoded ones not yet compressed at the running compression ratio."""
        return int(self._held_bytes + self._raw_bytes * self._ratio)


# --------------------------------------------------------------------------- the pipeline


class SpanFanOut(SpanProcessor):
    """Hands each finished span to several processors, in order: the sink the recorder is given.
    A new trace is accepted while the OTLP queue (``gate``) has room for it."""

    def __init__(self, processors: tuple[SpanProcessor, ...], gate: QueueSpanProcessor) -> None:
        self._processors = processors
        self.accepts_new_trace = gate.accepts_new_trace

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
        self.sink = SpanFanOut((TAPS, self.processor, *self.extra), self.processor)

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
        extra = [p.start_shutdown() for p in self.extra]
        ok = self.processor.shutdown(timeout)
        _wait_until(extra, deadline)
        return ok


def _wait_until(events: list[threading.Event], deadline: float) -> None:
    for event in events:
        event.wait(max(0.0, deadline - time.monotonic()))
