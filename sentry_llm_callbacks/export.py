"""The process-wide export pipeline: spans in, OTLP/HTTP requests to Sentry out.

Parts, each with one job:

* :class:`OtlpHttpSender` encodes finished spans as OTLP protobuf in pieces under
  :data:`~sentry_llm_callbacks.config.MAX_REQUEST_BYTES`, gzips requests and POSTs them,
  classifying the answer (:func:`classify_status`) as delivered, retryable (429, 5xx, network)
  or rejected.
* :class:`Backoff` decides when to try again: exponential backoff honouring ``Retry-After``,
  and a circuit breaker that stops trying for a while after repeated failures.
* :class:`QueueSpanProcessor` takes finished spans on the application's thread (an append to a
  deque, never blocking) and exports them from one background thread, within a backlog bounded
  in spans and bytes (full means whole traces dropped and counted). ``flush`` and ``shutdown``
  wait on a deadline, never on the network.
* :class:`ExportPipeline` owns a private ``TracerProvider`` (the global one is never touched)
  wired to the processor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import attributes as attr
from ._logging import DROP_ADVICE, UNAUTHORIZED, fork_safe, log_once, redact_url, warn_user
from ._version import __version__
from .config import MAX_REQUEST_BYTES
from .content import RenderCache, resolve_content
from .options import default
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
        # Sampling decisions, one per trace (see sampling.py); none while sample_rate is 1.0.
        "traces_kept_by_head",
        "traces_kept_by_parent",
        "traces_kept_by_errors",
        "traces_kept_by_slower_than",
        "traces_kept_by_costlier_than",
        "traces_dropped_by_sampling",
        "traces_decided_early",
    )

    def __init__(self) -> None:
        fork_safe(self, "_lock")  # taken on every span start: a child forked mid-update must not hang
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


@dataclass(frozen=True, slots=True)
class StatusClass:
    """What an HTTP status from an OTLP endpoint means, for the exporter and for ``test_connection``."""

    delivered: bool
    retryable: bool
    #: One of :data:`sentry_llm_callbacks.connection.REASONS`.
    reason: str


def classify_status(status: int) -> StatusClass:
    """Any 2xx is success; 429 and 5xx are retried; anything else is rejected.

    >>> classify_status(503)
    StatusClass(delivered=False, retryable=True, reason='server_error')
    """
    if 200 <= status < 300:
        return StatusClass(True, False, "ok")
    if status == 429:
        return StatusClass(False, True, "rate_limited")
    if status >= 500:
        return StatusClass(False, True, "server_error")
    if status in (401, 403):
        return StatusClass(False, False, "unauthorized")
    if status == 404:
        return StatusClass(False, False, "not_found")
    return StatusClass(False, False, "invalid_config")


#: How much of an error response's body is kept for a log line or a message.
SERVER_TEXT_CHARS = 200


def server_text(body: bytes, content_type: str, secrets: Sequence[str] = ()) -> str:
    """What an error response says, in one short line: a JSON body's ``detail``/``message``/
    ``error``, else its text; cut to :data:`SERVER_TEXT_CHARS`, with ``secrets`` masked.

    >>> server_text(b'{"detail": "invalid span"}', "application/json")
    'invalid span'
    """
    text = body[: SERVER_TEXT_CHARS * 8].decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            pass
        else:
            if isinstance(data, dict):
                for key in ("detail", "message", "error"):
                    value = data.get(key)
                    if isinstance(value, dict):
                        value = value.get("message", value)
                    if value:
                        text = value if isinstance(value, str) else json.dumps(value)
                        break
    if "html" in content_type:
        return ""  # a proxy's error page says nothing useful in one line
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= SERVER_TEXT_CHARS else text[: SERVER_TEXT_CHARS - 1] + "\u2026"


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
        #: Header values a server might echo back, masked in what we log from its answers.
        self._secrets = tuple(v for k, v in headers.items() if k.lower() not in ("content-type",))
        self._session: requests.Session | None = None
        self._template: tuple[requests.PreparedRequest, dict[str, Any]] | None = None

    @property
    def max_request_bytes(self) -> int:
        return self._max_request_bytes

    def warm_up(self) -> None:
        """Import the HTTP client, create the session and prepare the request now (a failure is
        left for ``post`` to report)."""
        with contextlib.suppress(Exception):
            self._request_template()

    def _request_template(self) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        """The request, prepared once with the settings ``requests`` would otherwise look up again
        for every request (``.netrc``, proxy environment): file system calls that each give the
        interpreter lock away, which the export thread may wait long to get back under load."""
        if self._template is None:
            import requests

            session = self._get_session()
            prepared = session.prepare_request(requests.Request("POST", self.endpoint, headers=self._headers))
            settings = session.merge_environment_settings(self.endpoint, {}, None, None, None)
            self._template = (prepared, settings)
        return self._template

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def encode(self, spans: Sequence[ReadableSpan]) -> tuple[list[tuple[bytes, int]], int]:
        """Request pieces (uncompressed, each a whole request under the size limit) with the number
        of spans in each, and the number of spans left out for being over the limit alone.
        Concatenated pieces are one valid request."""
        pieces: list[tuple[bytes, int]] = []
        oversize = 0
        for i in range(0, len(spans), self.CHUNK):
            oversize += self._encode_chunk(spans[i : i + self.CHUNK], pieces)
        return pieces, oversize

    def _encode_chunk(self, chunk: Sequence[ReadableSpan], out: list[tuple[bytes, int]]) -> int:
        data = encode_request(chunk)
        if len(data) <= self.max_request_bytes:
            out.append((data, len(chunk)))
            return 0
        if len(chunk) == 1:
            return 1
        mid = len(chunk) // 2
        return self._encode_chunk(chunk[:mid], out) + self._encode_chunk(chunk[mid:], out)

    def post(self, data: bytes, *, timeout: float | None = None) -> SendResult:
        """POST one gzipped body and classify the answer. Never raises: a request that cannot be
        built (a header value the HTTP library refuses, say) is a rejection, with its reason."""
        import requests

        try:
            template, settings = self._request_template()
            prepared = template.copy()
            prepared.prepare_body(data, None)
            response = self._get_session().send(prepared, timeout=timeout or self._timeout, **settings)
        except requests.RequestException as exc:
            return SendResult(False, True, None, None, type(exc).__name__)
        except Exception as exc:
            return SendResult(False, False, None, None, type(exc).__name__)
        try:
            status = classify_status(response.status_code)
            retry_after = parse_retry_after(response.headers.get("Retry-After")) if status.retryable else None
            detail = response.reason or ""
            if not status.delivered and not status.retryable:
                said = server_text(response.content, response.headers.get("Content-Type", ""), self._secrets)
                detail = f"{detail}: {said}" if said else detail
        finally:
            response.close()
        return SendResult(status.delivered, status.retryable, response.status_code, retry_after, detail)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


_CRC_POLY = 0xEDB88320  # CRC-32 (gzip), reflected


def _crc_multiply(a: int, b: int) -> int:
    """``a * b`` modulo the CRC-32 polynomial (bit-reflected, as zlib does it)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _crc_powers() -> list[int]:
    """x^(2^n) modulo the polynomial, n = 0..31."""
    powers = [1 << 30]  # x^1
    for _ in range(31):
        powers.append(_crc_multiply(powers[-1], powers[-1]))
    return powers


_CRC_POWERS = _crc_powers()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's
    ``crc32_combine``, which Python's zlib does not expose).

    >>> crc32_combine(zlib.crc32(b"abc"), zlib.crc32(b"def"), 3) == zlib.crc32(b"abcdef")
    True
    """
    shift = 1 << 31  # x^0
    n, k = len2, 3  # len2 bytes: x^(8 * len2)
    while n:
        if n & 1:
            shift = _crc_multiply(_CRC_POWERS[k & 31], shift)
        n >>= 1
        k += 1
    return _crc_multiply(shift, crc1) ^ crc2


def deflate_segment(data: bytes) -> bytes:
    """``data`` as raw deflate ending on a byte boundary with no final block: segments made
    apart, by any thread, concatenate into one deflate stream (:class:`GzipRequest`)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # level 1: fast; -15: no header
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time
_FINAL_BLOCK = zlib.compressobj(1, zlib.DEFLATED, -15).flush()  # an empty last block


class GzipRequest:
    """One request body held compressed, as deflate segments (:func:`deflate_segment`) with
    the running CRC: sealed, it is ONE gzip member (what Relay decompresses). A backlog held this
    way takes about a tenth of the memory of the encoded spans (and a twentieth of the span
    objects'). Segments are compressed by whichever thread made them, with no lock held:
    compression gives the interpreter lock away, and under load getting it back can take
    seconds, during which nobody else must be kept from compressing."""

    __slots__ = ("_crc", "_parts", "count", "raw_bytes", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._crc = 0
        self.count = 0  #: spans in it
        self.raw_bytes = 0  #: uncompressed size (the request limit applies to it)
        self.size = 0  #: compressed bytes held

    def add(self, segment: bytes, crc: int, raw: int, count: int) -> None:
        """Append one compressed segment (pure Python: the caller may hold a lock)."""
        self._parts.append(segment)
        self._crc = crc32_combine(self._crc, crc, raw)
        self.count += count
        self.raw_bytes += raw
        self.size += len(segment)

    def seal(self) -> bytes:
        """The finished gzip body (``size`` then counts all of it)."""
        trailer = _FINAL_BLOCK + struct.pack("<II", self._crc, self.raw_bytes & 0xFFFFFFFF)
        body = b"".join([_GZIP_HEADER, *self._parts, trailer])
        self._parts = []
        self.size = len(body)
        return body


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
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._clock = clock
        self._jitter = jitter
        self.base = base
        self.maximum = maximum
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.max_retry_after = max_retry_after
        self.failures = 0
        self.next_attempt = 0.0

    @property
    def breaker_open(self) -> bool:
        return self.failures >= self.breaker_threshold and self._clock() < self.next_attempt

    def ready(self, now: float | None = None) -> bool:
        return (now if now is not None else self._clock()) >= self.next_attempt

    def success(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0

    def failure(self, retry_after: float | None = None) -> float:
        """Record a failure; returns the delay before the next attempt."""
        self.failures += 1
        if retry_after is not None:
            delay = min(retry_after, self.max_retry_after)
        else:
            delay = min(self.maximum, self.base * 2 ** (self.failures - 1)) * self._jitter(0.8, 1.2)
        if self.failures >= self.breaker_threshold:
            delay = max(delay, self.breaker_cooldown)
        self.next_attempt = self._clock() + delay
        return delay


# --------------------------------------------------------------------------- queue and worker


class QueueSpanProcessor(SpanProcessor):
    """Bounded backlog on the app side, one export thread on the other.

    Finished spans go through three stages: the span queue (``on_end`` appends to a deque),
    encoded pieces (protobuf bytes) compressed in segments into the next request body
    (:class:`GzipRequest`, sealed at the request size limit: bigger batches when behind), and
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
        extra_exporters: Sequence[object] = (),
        max_queue_size: int = default("max_queue_size"),
        max_queue_bytes: int = default("max_queue_bytes"),
        max_batch_size: int = default("max_batch_size"),
        schedule_delay: float = 1.0,
        maintenance: Callable[[], None] | None = None,
        maintenance_interval: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._sender = sender
        self._extra = tuple(extra_exporters)
        self._queue: deque[ReadableSpan] = deque()
        self._max_queue = max_queue_size
        self._max_bytes = max_queue_bytes
        self._batch = max_batch_size
        self._delay = schedule_delay
        self._maintenance = maintenance
        self._maintenance_interval = maintenance_interval
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
        self._open = GzipRequest()
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
        self._flush_waiters = 0
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None

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
            if waiting >= self.HELP_AFTER_BATCHES * self._batch and not self._extra:
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
                self._thread = threading.Thread(target=self._run, name="sentry-llm-callbacks-export", daemon=True)
                self._thread.start()

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
            if self._extra:
                self._export_extra(chunk)
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
        segment = deflate_segment(data)
        crc = zlib.crc32(data)
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
        self._open = GzipRequest()

    def _has_outgoing(self) -> bool:
        return bool(self._ready or self._encoded or self._open.count)

    def _release(self, spans: int, size: int) -> None:
        with self._lock:
            self._held_spans -= spans
            self._held_bytes -= size

    def _resolve_content(self, batch: list[ReadableSpan]) -> None:
        """Render lazily captured content, a few spans at a time."""
        cache: RenderCache = {}
        for i, span in enumerate(batch):
            attributes = span._attributes
            if isinstance(attributes, dict):
                resolve_content(attributes, cache)
            if i % 16 == 15:
                self._pause()

    def _pause(self) -> None:
        """Between chunks of export work: yield the interpreter lock to the application while the
        backlog is what steady traffic leaves (so the app's tail latency stays low). Once it is
        several batches behind (the point where application threads start to help), keep going:
        against busy threads every yield costs this thread a long wait for the lock."""
        if len(self._queue) + self._held_spans < self.HELP_AFTER_BATCHES * self._batch:
            time.sleep(0)

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

    # -- export thread ------------------------------------------------------------------

    def _run(self) -> None:
        next_maintenance = time.monotonic() + self._maintenance_interval
        while True:
            wait = self._delay
            if self.backoff.failures and self._has_outgoing():
                wait = min(wait, max(0.01, self.backoff.next_attempt - time.monotonic()))
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
            self._open = GzipRequest()
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
        self._flush_waiters += 1
        try:
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
        finally:
            self._flush_waiters -= 1

    def shutdown(self, timeout: float = 5.0) -> bool:
        ok = self.flush_within(timeout)
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
        return len(self._queue) + self._held_spans

    @property
    def queued_bytes(self) -> int:
        """Bytes held for sending as counted against ``max_queue_bytes``: compressed bytes, plus
        encoded ones not yet compressed at the running compression ratio."""
        return int(self._held_bytes + self._raw_bytes * self._ratio)


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
            attr.SERVICE_NAME: destination.service_name,
            attr.TELEMETRY_SDK_NAME: "sentry-llm-callbacks",
            attr.TELEMETRY_SDK_VERSION: __version__,
            attr.TELEMETRY_SDK_LANGUAGE: "python",
        }
        if destination.environment:
            resource[attr.DEPLOYMENT_ENVIRONMENT] = destination.environment
        if destination.release:
            resource[attr.SERVICE_VERSION] = destination.release
        self.sender = OtlpHttpSender(
            destination.endpoint, destination.request_headers(), timeout=destination.export_timeout
        )
        # Import the HTTP stack here, once, rather than on the export thread at its first request:
        # under a burst that thread waits for the interpreter lock at every step of an import.
        self.sender.warm_up()
        self.processor = QueueSpanProcessor(
            self.sender,
            extra_exporters=destination.exporters,
            max_queue_size=destination.max_queue_size,
            max_queue_bytes=destination.max_queue_bytes,
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
        return self.processor.flush_within(timeout)

    def shutdown(self, timeout: float) -> bool:
        return self.processor.shutdown(timeout)
