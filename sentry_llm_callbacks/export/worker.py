"""The export thread: sends sealed requests with backoff, and encodes what the application threads
have not; ``flush_within`` and ``stop`` wait on a deadline, never on the network.

One daemon thread per pipeline, started at the first span (or the first flush with something to
deliver), in an empty context so that the app's own telemetry never sees our requests
(:mod:`sentry_llm_callbacks.base.threads`).
"""

from __future__ import annotations

import logging
import threading
import time

from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.log import UNAUTHORIZED, fork_safe, log_once, redact_url
from sentry_llm_callbacks.base.threads import start_daemon
from sentry_llm_callbacks.export.backlog import Backlog
from sentry_llm_callbacks.export.encoding import SpanEncoder
from sentry_llm_callbacks.export.transport import Backoff, OtlpHttpSender, SendResult, classify_status


class ExportWorker:
    """Drains the backlog to the endpoint from one background thread.

    ``wake`` is set by the application's side when a batch is queued; otherwise the thread looks
    every ``schedule_delay`` seconds, sooner when a retry is due.
    """

    ENCODE_CHUNK = 64  #: spans the export thread encodes between yields of the interpreter lock

    def __init__(
        self,
        backlog: Backlog,
        encoder: SpanEncoder,
        sender: OtlpHttpSender,
        *,
        max_batch_size: int,
        schedule_delay: float,
        backoff: Backoff,
    ) -> None:
        self.backoff = backoff
        self._backlog = backlog
        self._encoder = encoder
        self._sender = sender
        self._batch = max_batch_size
        self._delay = schedule_delay
        fork_safe(self, "wake", threading.Event)
        fork_safe(self, "_idle", threading.Condition)
        fork_safe(self, "_thread_lock")
        self.thread: threading.Thread | None = None
        self._stopping = False
        #: Requests that were not delivered (retried or dropped), and the last one's outcome.
        self.failed_attempts = 0
        self.last_failure: SendResult | None = None

    def start(self) -> None:
        """Start the export thread, unless it was started already."""
        with self._thread_lock:
            if self.thread is None:
                self.thread = start_daemon(self._run, "sentry-llm-callbacks-export")

    def _run(self) -> None:
        while True:
            wait = self._delay
            if self.backoff.failures and self._backlog.has_outgoing():
                wait = min(wait, max(0.01, self.backoff.next_attempt - time.monotonic()))
            self.wake.wait(wait)
            self.wake.clear()
            try:
                self._drain()
            except Exception as exc:  # last resort: whatever was in hand is lost, and counted
                log_once("export-loop", logging.ERROR, "Unexpected error in the export thread: %r", exc)
                self._backlog.last_error = type(exc).__name__
                self._backlog.discard_held(f"of an unexpected error in the export thread ({type(exc).__name__})")
            if self._stopping:
                self._backlog.discard_remaining()
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
        backlog, encoder = self._backlog, self._encoder
        while True:
            if backlog.has_outgoing() and self.backoff.ready():
                if self._send_one():
                    continue
                encoder.compress_pending()  # waiting for the endpoint: keep the backlog compact
                return
            if not backlog.queue or (backlog.has_outgoing() and backlog.over(1.0)):
                # Nothing left to encode, or the backlog is full while waiting for the endpoint
                # (what is still queued stays there, bounded by on_end).
                encoder.compress_pending()
                return
            for _ in range(max(1, self._batch // self.ENCODE_CHUNK)):
                if not encoder.encode_some(self.ENCODE_CHUNK):
                    break
                encoder.pause()

    def _send_one(self) -> bool:
        """Send one request; False if it must be retried later."""
        request = self._encoder.next_request()
        if request is None:
            return True
        result = self._sender.post(request.body)
        backlog = self._backlog
        if result.delivered:
            backlog.release(request.spans, request.size)
            COUNTERS.add("spans_exported", request.spans)
            self.backoff.success()
            backlog.last_error = None
            return True
        COUNTERS.add("exports_failed")
        self.last_failure = result
        self.failed_attempts += 1
        backlog.last_error = str(result.status_code or result.detail)
        endpoint = redact_url(self._sender.endpoint)
        if result.retryable:
            backlog.retry_first(request)
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
        why, kind = _not_delivered(result, endpoint)
        backlog.drop_held(request.spans, why, size=request.size, kind=kind)
        return True

    def flush_within(self, seconds: float, *, until_failure: bool = False) -> bool:
        """Wait until everything queued is delivered or dropped; False at the deadline (whatever
        the endpoint does), or if any span was dropped since the previous flush. ``until_failure``:
        also stop waiting (False) as soon as a request fails, rather than through its retries
        (``last_failure`` says why)."""
        deadline = time.monotonic() + seconds
        backlog = self._backlog
        failed_before = self.failed_attempts
        if self.thread is None and not backlog.settled():
            self.start()
        with self._idle:
            while True:
                if backlog.settled():
                    return backlog.end_flush_period()
                if until_failure and self.failed_attempts != failed_before:
                    return False
                if self.backoff.failures and self.backoff.next_attempt > deadline:
                    return False  # the next attempt is after our deadline: don't wait for nothing
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.wake.set()
                self._idle.wait(min(remaining, 0.05))

    def stop(self) -> None:
        """Let the thread drop (and count) what is left and close the connection, then end. With
        no thread running, that is done here."""
        self._stopping = True
        self.wake.set()
        if self.thread is None or not self.thread.is_alive():
            self._backlog.discard_remaining()
            self._sender.close()


def _not_delivered(result: SendResult, endpoint: str) -> tuple[str, str | None]:
    """Why a request that will not be retried was not delivered, and the kind of warning (a
    refused key is its own kind: the user must act on it)."""
    if result.status_code is None:
        return f"the request to {endpoint} could not be sent ({result.detail})", None
    if classify_status(result.status_code).reason == "unauthorized":
        return UNAUTHORIZED.format(endpoint=endpoint, status=result.status_code), "unauthorized"
    return f"{endpoint} rejected them with HTTP {result.status_code} {result.detail}".rstrip(), None
