"""The work that turns queued spans into request bodies: encoding (lazily captured content rendered
as it is written, :mod:`.otlp`), compression in segments, sealing.

Done by the export thread, and by the application threads that end spans when the export thread
has fallen behind: a single export thread gets too small a share of the interpreter lock against
many busy threads, and this way each thread pays for the spans it makes. No lock is held while
encoding or compressing: the backlog (:mod:`.backlog`) takes each result in a
short locked step, and drops it if what was held was discarded meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sentry_llm_callbacks.core.content import RenderCache
from sentry_llm_callbacks.export.backlog import Backlog, SealedRequest
from sentry_llm_callbacks.export.transport import OtlpHttpSender


class SpanEncoder:
    """Moves spans along the backlog's stages: queue -> encoded pieces -> compressed segments in
    the request being built -> sealed requests. Requests are sealed at the request size limit:
    bigger batches when behind."""

    SEGMENT_BYTES = 128 * 1024  #: encoded bytes compressed in one call (one gzip segment)
    HELP_AFTER_BATCHES = 4  #: how many batches behind the export thread must be before threads help
    LONG_WORK = 0.001  #: seconds of encoding after which the encoder lets the application in

    def __init__(self, backlog: Backlog, sender: OtlpHttpSender, *, max_batch_size: int) -> None:
        self._backlog = backlog
        self._sender = sender
        self._compression = sender.compression
        self._batch = max_batch_size

    def encode_some(self, limit: int) -> int:
        """Take up to ``limit`` spans from the queue and encode them into pieces to be compressed.
        Returns how many spans were taken."""
        backlog = self._backlog
        chunk, epoch = backlog.take(limit)
        if not chunk:
            return 0
        taken = len(chunk)
        try:
            if backlog.cut_traces:
                kept = [s for s in chunk if s.context.trace_id not in backlog.cut_traces]
                backlog.drop_held(taken - len(kept), "the rest of their trace was dropped at the backlog bound")
                chunk = kept
            pieces, oversize = self._sender.encode(chunk, RenderCache(), self._pause_after_a_while())
        except Exception as exc:  # a span the encoder cannot read must not stop the others
            backlog.drop_held(len(chunk), f"they could not be encoded ({type(exc).__name__})")
            backlog.last_error = type(exc).__name__
            return taken
        if oversize:
            limit_bytes = self._sender.max_request_bytes
            backlog.drop_held(oversize, f"each was larger than the {limit_bytes}-byte request limit")
        backlog.add_encoded(pieces, sum(len(data) for data, _ in pieces), epoch)
        return taken

    def help_compress(self) -> None:
        """On an application thread, when the queue is behind: compress a segment once enough is
        encoded, and when the export thread has no request ready, seal one for it, so that under
        load it only sends."""
        if self._backlog.raw_bytes >= self.SEGMENT_BYTES:
            self.compress_one()
        self._backlog.seal_if_none_ready(min_spans=self._batch)

    def compress_pending(self) -> None:
        """Compress everything encoded (on the export thread: before sending, or while waiting)."""
        while self.compress_one():
            pass

    def compress_one(self) -> bool:
        """Compress up to a segment's worth of encoded pieces into the request being built. Any
        thread can compress at the same time, and one that waits long for the interpreter lock
        after zlib holds up only itself. False when nothing was encoded."""
        max_request_bytes = self._sender.max_request_bytes
        run = self._backlog.take_encoded(min(self.SEGMENT_BYTES, max_request_bytes))
        if run is None:
            return False
        segment, crc = self._compression.segment(b"".join(run.pieces))
        self._backlog.add_segment(segment, crc, run, max_request_bytes=max_request_bytes)
        return True

    def next_request(self) -> SealedRequest | None:
        """The oldest sealed request (a request to retry first), else the one being built, sealed
        now."""
        backlog = self._backlog
        if not backlog.has_ready:
            if not backlog.open_spans or backlog.raw_bytes >= self.SEGMENT_BYTES:
                self.compress_pending()  # else send what is compressed: small segments compress badly
            backlog.seal_if_none_ready()
        return backlog.next_ready()

    def _pause_after_a_while(self) -> Callable[[], None]:
        """A ``pause`` for the encoder to call every few spans: it pauses (:meth:`pause`) once
        ``LONG_WORK`` seconds of work have gone by since the last one. A chunk of light spans
        runs through (each pause hands the interpreter lock over, and getting it back costs CPU
        and the application's time); content that takes long to render still lets the
        application in every millisecond or so."""
        last = time.perf_counter()

        def pause_after_a_while() -> None:
            nonlocal last
            now = time.perf_counter()
            if now - last >= self.LONG_WORK:
                self.pause()
                last = time.perf_counter()

        return pause_after_a_while

    def pause(self) -> None:
        """Between chunks of export work: yield the interpreter lock to the application while the
        backlog is what steady traffic leaves (so the app's tail latency stays low). Once it is
        several batches behind (the point where application threads start to help), keep going:
        against busy threads every yield costs this thread a long wait for the lock."""
        if self._backlog.queued < self.HELP_AFTER_BATCHES * self._batch:
            time.sleep(0)
