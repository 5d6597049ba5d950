"""The process-wide export pipeline: spans in, OTLP/HTTP requests to Sentry out.

Parts, each with one job:

* :class:`OtlpHttpSender` encodes a batch of finished spans as OTLP protobuf, splits it so
  that no request exceeds :data:`~sentry_llm_callbacks.config.MAX_REQUEST_BYTES`, gzips it and
  POSTs it, classifying the answer as delivered, retryable (429, 5xx, network) or rejected.
* :class:`Backoff` decides when to try again: exponential backoff honouring ``Retry-After``,
  and a circuit breaker that stops trying for a while after repeated failures.
* :class:`QueueSpanProcessor` takes finished spans on the application's thread (an append to a
  bounded deque: full means dropped and counted, never blocking) and exports them from one
  background thread. ``flush`` and ``shutdown`` wait on a deadline, never on the network.
* :class:`ExportPipeline` owns a private ``TracerProvider`` (the global one is never touched)
  wired to the processor.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import attributes as attr
from ._logging import log_once
from ._version import __version__
from .config import MAX_REQUEST_BYTES
from .content import RenderCache, resolve_content
from .otlp import encode_request

if TYPE_CHECKING:
    import requests

    from .config import Destination


class Counters:
    """Thread-safe counters behind :func:`sentry_llm_callbacks.stats`."""

    NAMES = (
        "spans_started",
        "spans_exported",
        "spans_dropped",
        "exports_failed",
        "runs_abandoned",
        "generations_without_usage",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


#: One set of counters for the process; a new ``configure()`` does not reset them.
COUNTERS = Counters()

#: Callables shown every finished span before it is queued (the notebook summary uses one).
#: Empty in normal use, so the hot path pays one truth test.
SPAN_TAPS: list[Callable[[ReadableSpan], None]] = []


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class SendResult:
    delivered: bool
    retryable: bool
    status_code: int | None = None
    retry_after: float | None = None
    detail: str = ""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


def classify_status(status: int) -> tuple[bool, bool]:
    """``(delivered, retryable)`` for an HTTP status: any 2xx is success; 429 and 5xx are retried."""
    if 200 <= status < 300:
        return True, False
    return False, status == 429 or status >= 500


class OtlpHttpSender:
    """Encodes spans as OTLP/HTTP protobuf (with :mod:`.otlp`) and POSTs them, gzip-compressed.

    Encoding happens in small chunks, releasing the interpreter lock between them, so that
    the application's threads are not held up behind a large batch. Chunks are concatenated:
    concatenated protobuf messages of one type merge into one message.
    """

    CHUNK = 32

    def __init__(
        self,
        endpoint: str,
        headers: dict[str, str],
        *,
        timeout: float,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self._headers = {**headers, "Content-Encoding": "gzip"}
        self._timeout = timeout
        self._max_request_bytes = max_request_bytes
        self._session: requests.Session | None = None

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def encode(
        self, spans: Sequence[ReadableSpan], pause: Callable[[], None] = lambda: None
    ) -> list[tuple[bytes, int]]:
        """Request bodies (uncompressed) with the number of spans in each, each under the size limit."""
        bodies: list[tuple[bytes, int]] = []
        current: list[bytes] = []
        size = count = 0
        for i in range(0, len(spans), self.CHUNK):
            for piece, n in self._encode_chunk(spans[i : i + self.CHUNK]):
                if size + len(piece) > self._max_request_bytes and current:
                    bodies.append((b"".join(current), count))
                    current, size, count = [], 0, 0
                current.append(piece)
                size += len(piece)
                count += n
            pause()  # let the application's threads run between chunks
        if current:
            bodies.append((b"".join(current), count))
        return bodies

    def _encode_chunk(self, chunk: Sequence[ReadableSpan]) -> list[tuple[bytes, int]]:
        data = encode_request(chunk)
        if len(data) <= self._max_request_bytes:
            return [(data, len(chunk))]
        if len(chunk) == 1:
            COUNTERS.add("spans_dropped")
            log_once(
                "oversize-span",
                logging.WARNING,
                "Dropped a span larger than the %d-byte request limit.",
                self._max_request_bytes,
            )
            return []
        mid = len(chunk) // 2
        return self._encode_chunk(chunk[:mid]) + self._encode_chunk(chunk[mid:])

    def prepare(
        self, spans: Sequence[ReadableSpan], pause: Callable[[], None] = lambda: None
    ) -> list[tuple[bytes, int]]:
        """Request bodies, gzipped, with the number of spans in each; kept for retries."""
        prepared = []
        for body, count in self.encode(spans, pause):
            compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip container; level 1: fast
            prepared.append((compressor.compress(body) + compressor.flush(), count))
        return prepared

    def post(self, data: bytes, *, timeout: float | None = None) -> SendResult:
        """POST one prepared (gzipped) body and classify the answer."""
        import requests

        try:
            response = self._get_session().post(
                self.endpoint, data=data, headers=self._headers, timeout=timeout or self._timeout
            )
        except requests.RequestException as exc:
            return SendResult(False, True, None, None, type(exc).__name__)
        delivered, retryable = classify_status(response.status_code)
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if retryable else None
        response.close()
        return SendResult(delivered, retryable, response.status_code, retry_after, response.reason or "")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


# --------------------------------------------------------------------------- when to retry


class Backoff:
    """Exponential backoff with jitter, honouring ``Retry-After``, plus a circuit breaker.

    After ``breaker_threshold`` consecutive failures the breaker opens: nothing is sent for
    ``breaker_cooldown`` seconds, then a single request probes the endpoint.
    """

    def __init__(
        self,
        *,
        base: float = 0.5,
        maximum: float = 30.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 60.0,
        max_retry_after: float = 300.0,
    ) -> None:
        self.base = base
        self.maximum = maximum
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.max_retry_after = max_retry_after
        self.failures = 0
        self.next_attempt = 0.0

    @property
    def breaker_open(self) -> bool:
        return self.failures >= self.breaker_threshold and time.monotonic() < self.next_attempt

    def ready(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) >= self.next_attempt

    def success(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0

    def failure(self, retry_after: float | None = None) -> float:
        """Record a failure; returns the delay before the next attempt."""
        self.failures += 1
        if retry_after is not None:
            delay = min(retry_after, self.max_retry_after)
        else:
            delay = min(self.maximum, self.base * 2 ** (self.failures - 1)) * random.uniform(0.8, 1.2)
        if self.failures >= self.breaker_threshold:
            delay = max(delay, self.breaker_cooldown)
        self.next_attempt = time.monotonic() + delay
        return delay


# --------------------------------------------------------------------------- queue and worker


class QueueSpanProcessor(SpanProcessor):
    """Bounded queue on the app side, one export thread on the other.

    ``on_end`` is the only method on the application's path: an append to a deque. When the
    queue is full the span is dropped and counted. The worker exports a batch when enough
    spans are waiting or every ``schedule_delay`` seconds, keeps a batch that failed with a
    retryable error until the endpoint is back (the queue keeps filling meanwhile, bounded),
    and reaps abandoned runs through ``maintenance``.
    """

    def __init__(
        self,
        sender: OtlpHttpSender,
        *,
        extra_exporters: Sequence[object] = (),
        max_queue_size: int = 20_000,
        max_batch_size: int = 512,
        schedule_delay: float = 1.0,
        maintenance: Callable[[], None] | None = None,
        maintenance_interval: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._sender = sender
        self._extra = tuple(extra_exporters)
        self._queue: deque[ReadableSpan] = deque()
        self._max_queue = max_queue_size
        self._batch = max_batch_size
        self._delay = schedule_delay
        self._maintenance = maintenance
        self._maintenance_interval = maintenance_interval
        self.backoff = backoff or Backoff()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._pending: list[ReadableSpan] | None = None
        #: The pending batch's request bodies not yet delivered, kept so a retry does not encode again.
        self._pending_bodies: list[tuple[bytes, int]] | None = None
        self._in_flight = 0
        self._stopping = False
        self._stopped = False
        self._flush_waiters = 0
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    # -- application side -------------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if SPAN_TAPS:
            for tap in SPAN_TAPS:
                try:
                    tap(span)
                except Exception as exc:
                    log_once("tap", logging.DEBUG, "A span tap failed: %r", exc)
        if self._stopped:
            COUNTERS.add("spans_dropped")
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            COUNTERS.add("spans_dropped")
            log_once(
                "queue-full",
                logging.WARNING,
                "The span queue is full (%d spans); new spans are dropped until the exporter catches up.",
                self._max_queue,
            )
            return
        queue.append(span)
        if self._thread is None:
            self._start_thread()
        if len(queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def _start_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sentry-llm-callbacks-export", daemon=True)
                self._thread.start()

    # -- worker side ------------------------------------------------------------------

    def _run(self) -> None:
        next_maintenance = time.monotonic() + self._maintenance_interval
        while True:
            wait = self._delay
            if self._pending is not None:
                wait = max(0.01, self.backoff.next_attempt - time.monotonic())
            self._wake.wait(wait)
            self._wake.clear()
            now = time.monotonic()
            if self._maintenance is not None and (now >= next_maintenance or self._flush_waiters):
                next_maintenance = now + self._maintenance_interval
                try:
                    self._maintenance()
                except Exception as exc:  # the reaper must never kill the export thread
                    log_once("maintenance", logging.WARNING, "Run reaper failed: %r", exc)
            try:
                self._drain()
            except Exception as exc:
                log_once("export-loop", logging.ERROR, "Unexpected error in the export thread: %r", exc)
                self._pending = None
            if self._stopping:
                self._discard_remaining()
            with self._idle:
                self._idle.notify_all()
            if self._stopping:
                self._sender.close()
                return

    def _discard_remaining(self) -> None:
        """After shutdown's deadline: what could not be delivered is dropped and counted."""
        left = len(self._queue) + (len(self._pending) if self._pending else 0)
        self._queue.clear()
        self._pending = None
        self._pending_bodies = None
        if left:
            COUNTERS.add("spans_dropped", left)
            log_once(
                "shutdown-dropped",
                logging.WARNING,
                "%d span(s) could not be delivered before shutdown and were dropped.",
                left,
            )

    def _drain(self) -> None:
        while True:
            if self._pending is None:
                if not self._queue:
                    return
                batch: list[ReadableSpan] = []
                self._pending = batch  # before anything yields: flush() must see the batch as not delivered
                self._pending_bodies = None
                popleft = self._queue.popleft
                try:
                    for _ in range(self._batch):
                        batch.append(popleft())
                except IndexError:
                    pass
                self._resolve_content(batch)
                self._export_extra(batch)
            if not self.backoff.ready():
                return
            if not self._send(self._pending):
                return
            self._pending = None

    def _pause(self) -> None:
        """Between chunks of export work: yield the interpreter lock to the application while the
        backlog is small. Under sustained load (the queue past a quarter full) keep going instead:
        against a busy app every yield costs a whole switch interval, and the queue would overflow."""
        if len(self._queue) < self._max_queue // 4:
            time.sleep(0)

    def _resolve_content(self, batch: list[ReadableSpan]) -> None:
        """Render lazily captured content, a few spans at a time."""
        cache: RenderCache = {}
        for i, span in enumerate(batch):
            attributes = span._attributes
            if isinstance(attributes, dict):
                resolve_content(attributes, cache)
            if i % 16 == 15:
                self._pause()

    def _send(self, batch: list[ReadableSpan]) -> bool:
        """Send one batch; False if what is left of it must be retried later."""
        self._in_flight = len(batch)
        try:
            done = 0
            bodies = self._pending_bodies or self._sender.prepare(batch, self._pause)
            self._pending_bodies = None
            for index, (body, count) in enumerate(bodies):
                result = self._sender.post(body)
                if result.delivered:
                    done += count
                    COUNTERS.add("spans_exported", count)
                    continue
                COUNTERS.add("exports_failed")
                self._last_error = str(result.status_code or result.detail)
                if result.retryable:
                    delay = self.backoff.failure(result.retry_after)
                    self._pending = batch[done:]
                    self._pending_bodies = bodies[index:]
                    log_once(
                        f"retry-{result.status_code}",
                        logging.WARNING,
                        "Export to %s failed (%s); retrying in %.1f s%s.",
                        self._sender.endpoint,
                        result.status_code or result.detail,
                        delay,
                        " (circuit breaker open)" if self.backoff.breaker_open else "",
                    )
                    return False
                COUNTERS.add("spans_dropped", count)
                log_once(
                    f"rejected-{result.status_code}",
                    logging.ERROR,
                    "The endpoint %s rejected spans with HTTP %s %s; they are dropped.",
                    self._sender.endpoint,
                    result.status_code,
                    result.detail,
                )
            self.backoff.success()
            if done == len(batch):
                self._last_error = None
            return True
        finally:
            self._in_flight = 0

    def _export_extra(self, batch: list[ReadableSpan]) -> None:
        for exporter in self._extra:
            try:
                exporter.export(batch)  # type: ignore[attr-defined]
            except Exception as exc:
                log_once(
                    f"extra-{type(exporter).__name__}",
                    logging.WARNING,
                    "Exporter %s failed: %r",
                    type(exporter).__name__,
                    exc,
                )

    # -- deadlines --------------------------------------------------------------------

    def _settled(self) -> bool:
        return not self._queue and self._pending is None and not self._in_flight

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver what is queued; returns False at the deadline, whatever the endpoint does."""
        deadline = time.monotonic() + timeout_millis / 1000
        if self._thread is None:
            if self._settled():
                return True
            self._start_thread()
        self._flush_waiters += 1
        try:
            with self._idle:
                while True:
                    if self._settled():
                        return self._last_error is None
                    if self._pending is not None and self.backoff.next_attempt > deadline:
                        return False  # the next attempt is after our deadline: don't wait for nothing
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._wake.set()
                    self._idle.wait(min(remaining, 0.05))
        finally:
            self._flush_waiters -= 1

    def shutdown(self, timeout: float = 5.0) -> bool:
        ok = self.force_flush(int(timeout * 1000))
        self._stopping = True
        self._stopped = True
        self._wake.set()
        for exporter in self._extra:
            try:
                exporter.shutdown()  # type: ignore[attr-defined]
            except Exception as exc:
                log_once("extra-shutdown", logging.WARNING, "Exporter shutdown failed: %r", exc)
        if self._thread is None or not self._thread.is_alive():
            self._discard_remaining()
            self._sender.close()
        return ok

    @property
    def queued(self) -> int:
        return len(self._queue) + (len(self._pending) if self._pending else 0)


# --------------------------------------------------------------------------- the pipeline


class ExportPipeline:
    """A private tracer provider wired to the queue processor for one destination.

    The recorder builds finished spans itself and hands them to ``processor``; the provider
    holds the resource and the sampler, and serves anyone who wants a tracer for this
    destination. The global tracer provider is never touched.
    """

    def __init__(self, destination: Destination, maintenance: Callable[[], None] | None = None) -> None:
        self.destination = destination
        resource = {
            "service.name": destination.service_name,
            "telemetry.sdk.name": "sentry-llm-callbacks",
            "telemetry.sdk.version": __version__,
            "telemetry.sdk.language": "python",
        }
        if destination.environment:
            resource[attr.DEPLOYMENT_ENVIRONMENT] = destination.environment
        if destination.release:
            resource["service.version"] = destination.release
        self.sender = OtlpHttpSender(
            destination.endpoint, destination.request_headers(), timeout=destination.export_timeout
        )
        self.processor = QueueSpanProcessor(
            self.sender,
            extra_exporters=destination.exporters,
            max_queue_size=destination.max_queue_size,
            max_batch_size=destination.max_batch_size,
            maintenance=maintenance,
        )
        self.sampler = ALWAYS_ON if destination.sample_rate >= 1.0 else TraceIdRatioBased(destination.sample_rate)
        self.provider = TracerProvider(resource=Resource.create(resource), sampler=self.sampler, shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.resource = self.provider.resource
        self.scope = InstrumentationScope("sentry_llm_callbacks", __version__)
        self._always = destination.sample_rate >= 1.0

    def is_sampled(self, trace_id: int) -> bool:
        """Per trace, from the trace id alone, so every span of a trace agrees (in any process)."""
        if self._always:
            return True
        return self.sampler.should_sample(None, trace_id, "root").decision.is_sampled()

    def flush(self, timeout: float) -> bool:
        return self.processor.force_flush(int(timeout * 1000))

    def shutdown(self, timeout: float) -> bool:
        return self.processor.shutdown(timeout)
