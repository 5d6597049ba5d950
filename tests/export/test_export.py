"""The export pipeline and connection checks, against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import gzip
import random
import socket
import threading
import time
import zlib

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.core.recorder import CHAIN, CHAT
from sentry_llm_callbacks.devtools.receiver import DEFAULT_KEY, LocalReceiver, decode_request, gunzip_one_member
from sentry_llm_callbacks.export.compression import GzipRequest, crc32_combine, deflate_segment
from tests.support.fault_receiver import Fault, FaultyReceiver
from tests.support.spans import delivered
from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_spans(count: int, *, kind: str = CHAIN) -> None:
    """Open and close ``count`` root runs through the real recorder."""
    recorder = _state.recorder
    for i in range(count):
        key = ("test", i, time.monotonic_ns())
        recorder.start_run(
            key, None, kind=kind, name=f"run {i}", explicit_name=True, handler_layer=None, run_metadata=None
        )
        recorder.end_run(key)


# --------------------------------------------------------------------------- test_connection


def test_connection_ok(receiver: LocalReceiver) -> None:
    result = slc.test_connection(dsn=receiver.dsn)
    assert result.ok and result.reason == "ok" and result.status_code == 200
    assert result.latency_s > 0
    assert receiver.headers[0]["x-sentry-auth"].startswith(f"Sentry sentry_key={DEFAULT_KEY}")


@pytest.mark.parametrize(
    ("fault", "dsn_key", "project", "reason", "status"),
    [
        (None, "wrongkey", "1", "unauthorized", 403),
        (None, DEFAULT_KEY, "999", "not_found", 404),
        (Fault(status=429, retry_after="30"), DEFAULT_KEY, "1", "rate_limited", 429),
        (Fault(status=500), DEFAULT_KEY, "1", "server_error", 500),
        (Fault(status=503), DEFAULT_KEY, "1", "server_error", 503),
    ],
)
def test_connection_classifies_answers(
    receiver: FaultyReceiver, fault: Fault | None, dsn_key: str, project: str, reason: str, status: int
) -> None:
    receiver.fault = fault
    result = slc.test_connection(dsn=f"http://{dsn_key}@127.0.0.1:{receiver.port}/{project}")
    assert (result.ok, result.reason, result.status_code) == (False, reason, status)
    assert result.message and dsn_key not in result.message
    if reason == "rate_limited":
        assert "30" in result.message


def test_connection_unauthorized_without_header(receiver: LocalReceiver) -> None:
    result = slc.test_connection(otlp_endpoint=receiver.endpoint)  # no DSN: no auth header
    assert result.reason == "unauthorized" and result.status_code == 401


def test_connection_unreachable_and_timeout(receiver: FaultyReceiver) -> None:
    refused = slc.test_connection(dsn=f"http://{DEFAULT_KEY}@127.0.0.1:{free_port()}/1", timeout=2)
    assert (refused.ok, refused.reason, refused.status_code) == (False, "unreachable", None)
    assert "refused" in refused.message
    receiver.fault = Fault(hang=30)
    started = time.monotonic()
    hung = slc.test_connection(dsn=receiver.dsn, timeout=0.5)
    assert hung.reason == "unreachable" and "0.5 s" in hung.message
    assert time.monotonic() - started < 15  # the endpoint hangs 30 s: returning at all is the deadline


def test_connection_invalid_config_never_raises() -> None:
    result = slc.test_connection(dsn="https://o1.ingest.sentry.io/1")
    assert (result.ok, result.reason) == (False, "invalid_config")
    assert "public key" in result.message


def test_send_test_trace_delivers_a_root_and_a_generation(sentry: LocalReceiver) -> None:
    result = slc.send_test_trace(timeout=5)
    assert result.ok, result.message
    assert len(result.trace_id) == 32
    spans = sentry.spans
    assert {s.trace_id for s in spans} == {result.trace_id}
    root = next(s for s in spans if not s.parent_span_id)
    generation = next(s for s in spans if s.parent_span_id)
    assert generation.parent_span_id == root.span_id
    assert generation.attributes["sentry.op"] == "gen_ai.chat"
    assert generation.attributes["gen_ai.usage.input_tokens"] == 12
    assert result.trace_id in result.message


def test_send_test_trace_reports_failure(receiver: LocalReceiver) -> None:
    slc.configure(dsn=f"http://wrongkey@127.0.0.1:{receiver.port}/1")
    result = slc.send_test_trace(timeout=2)
    # The cause itself, as soon as the endpoint answered (it used to point to test_connection()).
    assert not result.ok and "rejected the DSN's public key (HTTP 403)" in result.message
    assert "wrongkey" not in result.message


# --------------------------------------------------------------------------- the wire format


def test_requests_are_gzip_protobuf_with_the_sentry_auth_header(sentry: LocalReceiver) -> None:
    make_spans(3)
    spans = delivered(sentry, 3)
    assert len(spans) == 3
    headers = sentry.headers[0]
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["content-encoding"] == "gzip"
    assert headers["x-sentry-auth"] == (
        f"Sentry sentry_key={DEFAULT_KEY}, sentry_version=7, sentry_client=sentry-llm-callbacks/{slc.__version__}"
    )
    for span in spans:
        assert len(span.trace_id) == 32 and len(span.span_id) == 16
        assert span.start_ns <= span.end_ns and span.name
        assert span.resource["service.name"] == "llm-app"


def test_plain_otlp_endpoint_with_custom_headers(receiver: LocalReceiver) -> None:
    slc.configure(otlp_endpoint=receiver.plain_endpoint, headers={"X-Collector-Token": "t0k"})
    make_spans(1)
    delivered(receiver, 1)
    assert receiver.headers[0]["x-collector-token"] == "t0k"
    assert "x-sentry-auth" not in receiver.headers[0]


def test_large_batches_are_split_under_the_request_limit(sentry: LocalReceiver) -> None:
    pipeline = _state.get_pipeline()
    assert pipeline is not None
    pipeline.sender._max_request_bytes = 64 * 1024  # shrink the 10 MiB limit to make splitting observable
    recorder = _state.recorder
    big = "x" * 4000
    for i in range(100):
        run = recorder.start_run(
            ("big", i), None, kind=CHAIN, name="big", explicit_name=True, handler_layer=None, run_metadata=None
        )
        assert run is not None
        recorder.set_content(run, "input.value", big)
        recorder.end_run(("big", i))
    spans = delivered(sentry, 100)
    assert len(spans) == 100
    assert len(sentry.bodies) >= 6
    assert all(len(body) <= 64 * 1024 for body in sentry.bodies)


def test_global_tracer_provider_is_never_touched(sentry: LocalReceiver) -> None:
    before = otel_trace.get_tracer_provider()
    make_spans(1)
    delivered(sentry, 1)
    assert otel_trace.get_tracer_provider() is before


def test_custom_exporter_receives_spans_beside_otlp(receiver: LocalReceiver) -> None:
    seen: list[str] = []

    class Collecting(SpanExporter):
        def export(self, spans):
            seen.extend(s.name for s in spans)
            return SpanExportResult.SUCCESS

    slc.configure(dsn=receiver.dsn, exporters=[Collecting()])
    make_spans(2)
    delivered(receiver, 2)
    assert sorted(seen) == ["run 0", "run 1"]


# --------------------------------------------------------------------------- faults


def test_endpoint_down_the_app_is_unharmed_and_flush_keeps_its_deadline() -> None:
    slc.configure(dsn=f"http://{DEFAULT_KEY}@127.0.0.1:{free_port()}/1")
    make_spans(50)
    started = time.monotonic()
    assert slc.flush(timeout=2) is False
    assert (
        time.monotonic() - started < 10
    )  # flush(timeout=2) with the endpoint refusing: bounded, not waiting on backoff
    assert slc.stats()["exports_failed"] >= 1


def test_hanging_endpoint_flush_and_shutdown_keep_their_deadlines(receiver: FaultyReceiver) -> None:
    slc.configure(dsn=receiver.dsn, export_timeout=3)
    receiver.fault = Fault(hang=40)
    make_spans(5)
    started = time.monotonic()
    assert slc.flush(timeout=1) is False
    assert time.monotonic() - started < 10  # the endpoint hangs 40 s
    started = time.monotonic()
    slc.shutdown(timeout=1)
    assert time.monotonic() - started < 10


def test_spans_queued_during_a_5xx_outage_are_delivered_after_recovery(receiver: FaultyReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    receiver.fault = Fault(status=503)
    make_spans(10)
    assert slc.flush(timeout=0.5) is False
    assert receiver.spans == []
    receiver.fault = None
    spans = delivered(receiver, 10, timeout=10)
    assert len(spans) == 10
    assert slc.stats()["exports_failed"] >= 1


def test_plain_500_is_retried_too(receiver: FaultyReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    receiver.fault = Fault(status=500)
    make_spans(2)
    assert slc.flush(timeout=0.3) is False
    receiver.fault = None
    assert len(delivered(receiver, 2)) == 2


def test_retry_after_is_honoured(receiver: FaultyReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    receiver.fault = Fault(status=429, retry_after="2")
    make_spans(1)
    first = time.monotonic()
    assert slc.flush(timeout=0.5) is False
    requests_during_backoff = receiver.requests
    receiver.fault = None
    time.sleep(1.0)  # a window in which nothing may be sent: its length is the behaviour under test
    assert receiver.requests == requests_during_backoff, "retried before Retry-After elapsed"
    assert len(delivered(receiver, 1, timeout=5)) == 1
    assert time.monotonic() - first >= 1.9


def test_circuit_breaker_stops_retry_storms(receiver: FaultyReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    pipeline = _state.get_pipeline()
    assert pipeline is not None
    backoff = pipeline.processor.backoff
    backoff.base, backoff.breaker_threshold, backoff.breaker_cooldown = 0.01, 3, 30.0
    receiver.fault = Fault(status=502)
    make_spans(1)
    wait_until(lambda: backoff.breaker_open, timeout=3)
    assert backoff.breaker_open
    attempts = receiver.requests
    time.sleep(1.0)  # a window in which nothing may be sent: its length is the behaviour under test
    assert receiver.requests == attempts, "the open breaker still sent requests"


def test_rejected_batches_are_dropped_and_counted(receiver: FaultyReceiver) -> None:
    _wait_for_export_threads_to_end()  # counters are process-wide: earlier tests' stragglers count too
    slc.configure(dsn=receiver.dsn)
    receiver.fault = Fault(status=400)
    before = slc.stats()
    make_spans(4)
    assert slc.flush(timeout=3) is False
    after = slc.stats()
    assert after["spans_dropped"] - before["spans_dropped"] == 4
    assert after["spans_queued"] == 0


def test_full_queue_drops_and_counts_without_blocking(receiver: FaultyReceiver) -> None:
    slc.configure(dsn=receiver.dsn, max_queue_size=10, max_batch_size=5)
    receiver.fault = Fault(hang=30)
    before = slc.stats()["spans_dropped"]
    started = time.monotonic()
    make_spans(200)
    assert time.monotonic() - started < 10  # never waits for the endpoint, which hangs 30 s
    assert slc.stats()["spans_dropped"] - before >= 180


def test_flush_without_spans_is_immediate(sentry: LocalReceiver) -> None:
    assert slc.flush(timeout=0)  # True with no time to wait: nothing was waited for


def test_not_configured_is_a_no_op_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    make_spans(3)
    assert slc.flush(1) is True
    warnings = [r for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warnings) == 1


def test_environment_dsn_is_used_without_configure(receiver: LocalReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", receiver.dsn)
    make_spans(1)
    assert len(delivered(receiver, 1)) == 1


def test_decoder_reads_what_the_sender_wrote(sentry: LocalReceiver) -> None:
    pipeline = _state.get_pipeline()
    assert pipeline is not None
    recorder = _state.recorder
    recorder.start_run("k", None, kind=CHAT, name="m", explicit_name=False, handler_layer=None, run_metadata=None)
    recorder.end_run("k")
    delivered(sentry, 1)
    body = sentry.bodies[0]
    assert decode_request(body)[0].name == "chat m"
    assert sentry.headers[0]["content-encoding"] == "gzip"
    assert int(sentry.headers[0]["content-length"]) != len(body)  # sent compressed, decoded from gzip


def test_segments_compressed_apart_make_one_gzip_member() -> None:
    """Threads compress their own segments of a request; the body must still be one gzip member
    with the right CRC and length (Relay reads one member), whatever the segment sizes."""
    rng = random.Random(7)
    for _ in range(40):
        request, whole = GzipRequest(), b""
        for _ in range(rng.randint(1, 6)):
            data = rng.randbytes(rng.randint(0, 2000)) + b"span " * rng.randint(0, 40_000)
            request.add(deflate_segment(data), zlib.crc32(data), len(data), 1)
            whole += data
        body = request.seal()
        assert gunzip_one_member(body) == whole
        assert request.size == len(body)
    assert crc32_combine(zlib.crc32(b"abc"), zlib.crc32(b"defgh"), 5) == zlib.crc32(b"abcdefgh")


def test_the_receiver_refuses_a_body_of_two_gzip_members(receiver: LocalReceiver) -> None:
    import requests

    slc.configure(dsn=receiver.dsn)
    make_spans(1)
    delivered(receiver, 1)
    body = receiver.bodies[0]
    url = receiver.plain_endpoint
    two = gzip.compress(body) + gzip.compress(body)
    assert requests.post(url, data=two, headers={"Content-Encoding": "gzip"}, timeout=5).status_code == 400
    assert requests.post(url, data=gzip.compress(body), headers={"Content-Encoding": "gzip"}, timeout=5).ok


def _export_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "sentry-llm-callbacks-export"}


def _wait_for_export_threads_to_end(limit: float = 15.0) -> None:
    for thread in _export_threads():
        thread.join(limit)


def test_export_thread_is_shared_by_every_handler(sentry: LocalReceiver) -> None:
    from langchain_core.runnables import RunnableLambda

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    before = _export_threads()
    chain = RunnableLambda(lambda x: x + 1)
    for user in ("a", "b", "c"):
        chain.invoke(1, config={"callbacks": [SentryCallbackHandler(user=user)]})
    assert len(delivered(sentry, 3)) == 3
    assert len(_export_threads() - before) == 1


def test_shutdown_stops_the_export_thread_and_counts_what_was_left() -> None:
    slc.configure(dsn=f"http://{DEFAULT_KEY}@127.0.0.1:{free_port()}/1")
    before = _export_threads()
    make_spans(3)
    dropped = slc.stats()["spans_dropped"]
    slc.shutdown(timeout=0.5)
    wait_until(lambda: not (_export_threads() - before), timeout=3)
    assert not (_export_threads() - before)
    assert slc.stats()["spans_dropped"] - dropped == 3


def test_flush_waits_for_a_batch_that_is_being_prepared(sentry: LocalReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export thread renders content and encodes between taking a batch and sending it; flush()
    must not report success in that window (a process exiting right after would lose the batch)."""
    from sentry_llm_callbacks.export.transport import OtlpHttpSender

    original = OtlpHttpSender.encode
    preparing = threading.Event()

    def slow_encode(self, batch, cache=None, pause=None):
        preparing.set()
        time.sleep(0.3)  # a slow preparation is the behaviour under test
        return original(self, batch, cache, pause)

    monkeypatch.setattr(OtlpHttpSender, "encode", slow_encode)
    make_spans(5)
    pipeline = _state.get_pipeline()
    assert pipeline is not None
    pipeline.processor._worker.wake.set()  # the worker takes the batch now and spends 0.3 s preparing it
    assert preparing.wait(5), "the export thread never took the batch"
    assert slc.flush(timeout=5)
    assert len(sentry.spans) == 5  # already delivered when flush() returned
