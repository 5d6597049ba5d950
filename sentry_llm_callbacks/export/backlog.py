"""The export backlog: every span between ``on_end`` and the endpoint, bounded in spans and bytes,
and every span that leaves it undelivered counted.

A span passes through four stages: the span queue (``on_end`` appends to it), encoded pieces
waiting to be compressed, the request being built from compressed segments, and sealed requests
waiting to be sent (a request to retry goes back to the front). The work that moves spans from
one stage to the next (:mod:`.encoding`, :mod:`.worker`) is done with no lock held. Each move
is a short step under this backlog's one lock, so the counts always match what is held and a
discard (``discard_held``) can never be undone by a step that began before it.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from opentelemetry.sdk.trace import ReadableSpan

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import DROP_ADVICE, fork_safe, warn_user
from sentry_llm_callbacks.export.compression import Compression


class EncodedRun(NamedTuple):
    """Encoded pieces taken together to be compressed into one segment."""

    pieces: list[bytes]
    raw: int  #: their size, uncompressed
    spans: int
    epoch: int  #: the backlog's epoch when they were taken


class SealedRequest(NamedTuple):
    """A finished request body, waiting to be sent or retried."""

    body: bytes
    spans: int
    size: int  #: what it counts in the backlog's bytes (compressed)


class Backlog:
    """What is held for export, in its stages, with the bound and the drop accounting.

    The bound is ``max_spans`` spans and ``max_bytes`` bytes: compressed bytes, plus encoded bytes
    not yet compressed at the running compression ratio (and at most ``RAW_FACTOR`` times the
    budget of those), plus an estimate for the spans still queued. ``over(factor)`` is asked on
    every span, without the lock: a count read a moment early moves the bound by a span.

    ``queue`` and ``cut_traces`` are created once and never replaced, so that the processor can
    keep them at hand for its per-span path.
    """

    #: Uncompressed bytes may reach this many times ``max_bytes`` (they are counted in the
    #: budget at the running compression ratio; this bounds them if compression falls behind).
    RAW_FACTOR = 4
    MAX_CUT_TRACES = 10_000

    def __init__(self, compression: Compression, *, max_spans: int, max_bytes: int) -> None:
        self.queue: deque[ReadableSpan] = deque()
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self._compression = compression
        # Guards every stage after the queue and the counts of what is held. Never held across a
        # call that gives the interpreter lock away: under load, getting it back can take seconds.
        fork_safe(self, "_lock")
        #: Encoded pieces (uncompressed) with their span counts, waiting to be compressed.
        self._encoded: deque[tuple[bytes, int]] = deque()
        self._open = compression.new_request()
        self._ready: deque[SealedRequest] = deque()
        #: Spans taken from the queue and not yet delivered or dropped.
        self.held_spans = 0
        #: Compressed bytes held (the request being built and the sealed ones).
        self.held_bytes = 0
        #: Encoded bytes not yet compressed (waiting in ``_encoded`` or being compressed).
        self.raw_bytes = 0
        #: Running compressed / encoded size ratio, to count uncompressed pieces in the budget.
        self.ratio = 0.25
        #: Running estimate of one encoded span's size, for the part of the backlog not yet encoded.
        self.span_bytes = 1024.0
        #: Bumped when what is held is discarded: a step that began before does not add to it.
        self._epoch = 0
        #: Traces cut at the bound (insertion-ordered, bounded): their later spans are dropped too.
        self.cut_traces: dict[int, None] = {}
        #: What the last export attempt failed with; a flush reports False while it stands.
        self.last_error: str | None = None
        self._lost_since_flush = 0

    # -- the bound ----------------------------------------------------------------------

    def over(self, factor: float) -> bool:
        """Whether the backlog is at ``factor`` times its bound, in spans or bytes."""
        queued = len(self.queue)
        if queued + self.held_spans >= self.max_spans * factor:
            return True
        raw = self.raw_bytes
        if raw >= self.max_bytes * self.RAW_FACTOR * factor:
            return True
        # budget_bytes(), inline: this is asked for every span, on the application's thread
        return self.held_bytes + raw * self.ratio + queued * self.span_bytes >= self.max_bytes * factor

    def budget_bytes(self) -> int:
        """What the backlog counts against ``max_bytes``: compressed bytes held, encoded bytes at
        the running compression ratio (under load they wait a moment for a thread to compress
        them, and would otherwise trip the bound ten times too early), and an estimate for the
        spans still queued."""
        pending = self.raw_bytes * self.ratio
        return int(self.held_bytes + pending + len(self.queue) * self.span_bytes)

    def refuse_new_trace(self) -> None:
        """Count a new trace refused at the bound, and tell the user (once)."""
        self._lost_since_flush += 1
        warn_user(
            "backlog-full",
            f"The export backlog is full ({self.max_spans} spans or {self.max_bytes} bytes); new traces are "
            f"dropped until it drains. {DROP_ADVICE}",
        )

    def cut(self, trace_id: int) -> None:
        """Drop a span past the bound, and the rest of its trace as it arrives: what is sent is
        whole traces."""
        with self._lock:
            self.cut_traces[trace_id] = None
            if len(self.cut_traces) > self.MAX_CUT_TRACES:
                del self.cut_traces[next(iter(self.cut_traces))]
        self.drop(1, "the export backlog is full")

    # -- what is lost -------------------------------------------------------------------

    def drop(self, count: int, why: str, kind: str | None = None) -> None:
        """Count spans that will not be delivered, and tell the user why (once per reason)."""
        if count <= 0:
            return
        COUNTERS.add("spans_dropped", count)
        self._lost_since_flush += count
        warn_user(kind or f"dropped-{why}", f"Dropped {count} span(s): {why}. {DROP_ADVICE}")

    def drop_held(self, count: int, why: str, *, size: int = 0, kind: str | None = None) -> None:
        """Drop spans taken from the queue (``size`` of the held bytes with them)."""
        self.release(count, size)
        self.drop(count, why, kind)

    def release(self, spans: int, size: int) -> None:
        """Stop counting spans (and their compressed bytes) that were delivered or dropped."""
        with self._lock:
            self.held_spans -= spans
            self.held_bytes -= size

    def discard_held(self, why: str) -> None:
        """Drop (and count) what was taken from the queue and not delivered."""
        with self._lock:
            held = self.held_spans
            self._epoch += 1
            self._encoded.clear()
            self._ready.clear()
            self._open = self._compression.new_request()
            self.held_spans = 0
            self.held_bytes = 0
            self.raw_bytes = 0
        self.drop(held, f"they were in hand when {why}")

    def discard_remaining(self) -> None:
        """After shutdown's deadline: what could not be delivered is dropped and counted."""
        left = len(self.queue)
        self.queue.clear()
        self.drop(left, "they could not be delivered before shutdown")
        self.discard_held("shutdown's deadline passed")

    def end_flush_period(self) -> bool:
        """True when no span was lost since the previous call and the last export went through;
        losses are counted afresh from here."""
        lost, self._lost_since_flush = self._lost_since_flush, 0
        return self.last_error is None and not lost

    # -- moves between stages -----------------------------------------------------------

    def take(self, limit: int) -> tuple[list[ReadableSpan], int]:
        """Up to ``limit`` spans off the queue, with the epoch they were taken in. They are counted
        as held in the same step: ``flush`` must not miss them while they are encoded."""
        chunk: list[ReadableSpan] = []
        popleft = self.queue.popleft
        with self._lock:
            try:
                for _ in range(limit):
                    chunk.append(popleft())
            except IndexError:
                pass
            self.held_spans += len(chunk)
            return chunk, self._epoch

    def add_encoded(self, pieces: list[tuple[bytes, int]], size: int, epoch: int) -> None:
        """Hold encoded pieces (``size`` bytes in all) until they are compressed."""
        with self._lock:
            if epoch != self._epoch or not pieces:
                return  # discarded meanwhile: already counted as dropped
            self.raw_bytes += size
            self.span_bytes = 0.9 * self.span_bytes + 0.1 * (size / sum(n for _, n in pieces))
            self._encoded.extend(pieces)

    def take_encoded(self, limit: int) -> EncodedRun | None:
        """Encoded pieces up to ``limit`` bytes (at least one), to compress as one segment; None
        when nothing is encoded. Their bytes stay counted as raw until ``add_segment``."""
        pieces: list[bytes] = []
        raw = spans = 0
        with self._lock:
            encoded = self._encoded
            while encoded and (not pieces or raw + len(encoded[0][0]) <= limit):
                data, n = encoded.popleft()
                pieces.append(data)
                raw += len(data)
                spans += n
            epoch = self._epoch
        return EncodedRun(pieces, raw, spans, epoch) if pieces else None

    def add_segment(self, segment: bytes, crc: int, run: EncodedRun, *, max_request_bytes: int) -> None:
        """Append a compressed segment to the request being built, sealing that first when the
        segment would take it over ``max_request_bytes`` (uncompressed)."""
        with self._lock:
            if run.epoch != self._epoch:
                return  # discarded meanwhile: already counted as dropped
            if self._open.count and self._open.raw_bytes + run.raw > max_request_bytes:
                self._seal_open()
            self._open.add(segment, crc, run.raw, run.spans)
            self.raw_bytes -= run.raw
            self.held_bytes += len(segment)
            if run.raw:
                self.ratio = 0.9 * self.ratio + 0.1 * (len(segment) / run.raw)

    def seal_if_none_ready(self, min_spans: int = 1) -> None:
        """Seal the request being built when no sealed one is waiting and it holds at least
        ``min_spans`` spans. Checked first without the lock: most calls find nothing to do."""
        if self._ready or self._open.count < min_spans:
            return
        with self._lock:
            if not self._ready:
                self._seal_open()

    def _seal_open(self) -> None:
        """Finish the request being built (holding ``_lock``) and queue it for sending: joining
        bytes, never giving the interpreter lock away."""
        request = self._open
        if not request.count:
            return
        before = request.size
        body = request.seal()
        self.held_bytes += request.size - before
        self._ready.append(SealedRequest(body, request.count, request.size))
        self._open = self._compression.new_request()

    def next_ready(self) -> SealedRequest | None:
        """The oldest sealed request (a request to retry first), taken off the backlog's stages
        (its spans stay counted as held until ``release``)."""
        try:
            return self._ready.popleft()
        except IndexError:
            return None

    def retry_first(self, request: SealedRequest) -> None:
        """Put back a request that must be retried, to be sent before the others."""
        self._ready.appendleft(request)

    # -- what is held ---------------------------------------------------------------------

    @property
    def has_ready(self) -> bool:
        return bool(self._ready)

    @property
    def open_spans(self) -> int:
        """Spans in the request being built."""
        return self._open.count

    def has_outgoing(self) -> bool:
        """Whether anything taken from the queue waits to be sent."""
        return bool(self._ready or self._encoded or self._open.count)

    def settled(self) -> bool:
        """Nothing queued and nothing held: everything was delivered or dropped."""
        return not self.queue and not self.held_spans

    @property
    def queued(self) -> int:
        return len(self.queue) + self.held_spans

    @property
    def queued_bytes(self) -> int:
        return int(self.held_bytes + self.raw_bytes * self.ratio)
