"""The export pipeline's parts, each doing its one job: the content stage, taps, extra exporters
with their own batching, the recorder's reaper, request compression, and the standard OTLP
exporter environment variables, against the real receiver on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import ContentPolicy, LazyContent
from sentry_llm_callbacks.core.finishing import finish_span
from sentry_llm_callbacks.core.reaper import RunReaper
from sentry_llm_callbacks.devtools.receiver import DEFAULT_KEY, LocalReceiver
from sentry_llm_callbacks.export import extra_exporters
from sentry_llm_callbacks.export.compression import Compression, adler32_combine
from sentry_llm_callbacks.export.taps import TAPS
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.fault_receiver import Fault, FaultyReceiver
from tests.support.invariants import check_trace, check_traces
from tests.support.spans import by_name, delivered

SPANS_PER_CHAIN = 4  # the sequence, the prompt, the chat model, the parser


def run_chain(question: str = "What is OTLP?", *, count: int = 1) -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "Be terse."), ("human", "{q}")])
    chain = prompt | FakeListChatModel(responses=["A protocol."]) | StrOutputParser()
    handler = SentryCallbackHandler()
    for _ in range(count):
        chain.invoke({"q": question}, config={"callbacks": [handler]})


# --------------------------------------------------------------------------- the content stage


def _span(attributes: dict[str, Any]) -> ReadableSpan:
    return ReadableSpan(name="s", context=SpanContext(1, 2, False, TraceFlags(1)), attributes=attributes)


def test_finishing_renders_content_into_a_new_span_and_leaves_the_recorded_one_alone() -> None:
    policy = ContentPolicy(max_chars=10, mask=lambda text: text.replace("secret", "******"))
    lazy = LazyContent({"q": "secret question"}, policy)
    empty = LazyContent(None, policy)
    span = _span({"keep": 1, attr.INPUT_MESSAGES: lazy, attr.OUTPUT_MESSAGES: empty})
    finished = finish_span(span)
    assert finished is not span
    assert dict(finished.attributes) == {
        "keep": 1,
        attr.INPUT_MESSAGES: '{"q":"****...[truncated 13 chars]',
    }
    assert span.attributes[attr.INPUT_MESSAGES] is lazy  # what the recorder made is unchanged
    assert finished.context is span.context and finished.name == span.name


def test_finishing_a_span_without_content_is_the_span_itself() -> None:
    span = _span({"keep": 1})
    assert finish_span(span) is span


def test_the_recorded_span_is_never_edited_on_its_way_out(sentry: LocalReceiver) -> None:
    recorded: list[ReadableSpan] = []
    TAPS.add(recorded.append)
    try:
        run_chain()
        spans = delivered(sentry, SPANS_PER_CHAIN)
    finally:
        TAPS.remove(recorded.append)
    check_trace(spans, generations=1)
    sent = by_name(spans, "chat FakeListChatModel").attributes[attr.INPUT_MESSAGES]
    assert "What is OTLP?" in sent
    (tapped,) = [s for s in recorded if s.name == "chat FakeListChatModel"]
    assert type(tapped.attributes[attr.INPUT_MESSAGES]) is LazyContent


# --------------------------------------------------------------------------- taps


def test_a_tap_sees_every_span_and_one_that_raises_costs_nothing(sentry: LocalReceiver) -> None:
    seen: list[str] = []

    def failing(span: ReadableSpan) -> None:
        raise RuntimeError("tap bug")

    TAPS.add(failing)
    TAPS.add(lambda span: seen.append(span.name))
    try:
        run_chain(count=2)
        spans = delivered(sentry, 2 * SPANS_PER_CHAIN)
    finally:
        TAPS._taps = ()
    check_traces(spans, 2, generations=1)
    assert sorted(seen) == sorted(s.name for s in spans)


# --------------------------------------------------------------------------- extra exporters


class Gated(SpanExporter):
    """An exporter that hangs until released, then records what it was given."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.spans: list[ReadableSpan] = []
        self.exported = threading.Event()

    def export(self, spans: Any) -> SpanExportResult:
        self.release.wait(30)
        self.spans.extend(spans)
        self.exported.set()
        return SpanExportResult.SUCCESS


def test_a_hanging_extra_exporter_does_not_hold_up_delivery_to_sentry(receiver: LocalReceiver) -> None:
    gated = Gated()
    slc.configure(dsn=receiver.dsn, exporters=[gated])
    try:
        run_chain(count=3)
        assert slc.flush(timeout=1.0)  # the OTLP queue delivered; the extra one is still stuck
        check_traces(receiver.wait_for_spans(3 * SPANS_PER_CHAIN), 3, generations=1)
        assert not gated.spans
    finally:
        gated.release.set()
    assert gated.exported.wait(10)
    assert slc.flush(timeout=10)
    assert len(gated.spans) == 3 * SPANS_PER_CHAIN


def test_spans_a_stuck_extra_exporter_has_no_room_for_are_counted(
    receiver: LocalReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extra_exporters, "EXTRA_QUEUE_SIZE", 8)
    gated = Gated()
    slc.configure(dsn=receiver.dsn, exporters=[gated], max_batch_size=4)
    before = slc.stats()["extra_exporter_spans_dropped"]
    try:
        run_chain(count=5)
        assert slc.flush(timeout=5.0)  # Sentry got everything; the extra exporter is stuck
        check_traces(receiver.wait_for_spans(5 * SPANS_PER_CHAIN), 5, generations=1)
    finally:
        gated.release.set()
    assert gated.exported.wait(10)
    slc.flush(timeout=10)
    dropped = slc.stats()["extra_exporter_spans_dropped"] - before
    assert dropped > 0
    assert len(gated.spans) + dropped == 5 * SPANS_PER_CHAIN  # every span delivered or counted


def test_an_extra_exporter_gets_finished_content_as_sentry_does(receiver: LocalReceiver) -> None:
    gated = Gated()
    gated.release.set()
    slc.configure(dsn=receiver.dsn, exporters=[gated])
    run_chain()
    spans = delivered(receiver, SPANS_PER_CHAIN)
    check_trace(spans, generations=1)
    by_id = {format(s.context.span_id, "016x"): s for s in gated.spans}
    for span in spans:
        mine = dict(by_id[span.span_id].attributes)
        assert not [k for k, v in mine.items() if isinstance(v, LazyContent)]
        for key in (attr.INPUT_MESSAGES, attr.OUTPUT_MESSAGES):
            assert mine.get(key) == span.attributes.get(key)


def test_an_extra_exporter_that_raises_is_logged_and_sentry_still_gets_everything(
    receiver: LocalReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            raise ValueError("exporter bug")

    slc.configure(dsn=receiver.dsn, exporters=[Broken()])
    run_chain()
    check_trace(delivered(receiver, SPANS_PER_CHAIN), generations=1)
    assert any("Exporter Broken failed" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- the reaper


def test_the_reaper_sweeps_on_its_own_timer_until_stopped() -> None:
    calls: list[float] = []
    swept = threading.Event()

    def reap(max_age: float) -> int:
        calls.append(max_age)
        swept.set()
        return 0

    reaper = RunReaper(reap, interval=0.01)
    assert reaper.sweep() == 0 and not calls  # not started: nothing to sweep for
    reaper.start(max_age=42.0)
    thread = reaper._thread
    assert thread is not None and swept.wait(5)
    reaper.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert calls[0] == 42.0


def test_a_flush_delivers_runs_past_their_time_limit(sentry: LocalReceiver) -> None:
    slc.configure(dsn=sentry.dsn, run_timeout=0.05)
    handler = SentryCallbackHandler()
    import uuid

    handler.on_chain_start(None, {"x": 1}, run_id=uuid.uuid4(), name="Never ends")
    time.sleep(0.1)  # the run must be older than run_timeout: its age is the behaviour under test
    spans = delivered(sentry, 1)
    check_trace(spans, root_error=True)
    assert spans[0].attributes[attr.RUN_ABANDONED] is True
    assert slc.stats()["runs_open"] == 0


# --------------------------------------------------------------------------- compression


@pytest.mark.parametrize("name", ["gzip", "deflate", "none"])
def test_request_bodies_built_from_segments_decode_whole(name: str) -> None:
    compression = Compression(name)
    body, whole = compression.new_request(), b""
    for i in range(6):
        data = (b"span %d " % i) * (50 * i + 1)
        segment, check = compression.segment(data)
        body.add(segment, check, len(data), 1)
        whole += data
    sealed = body.seal()
    decoded = {"gzip": lambda b: zlib.decompress(b, 31), "deflate": zlib.decompress, "none": bytes}[name](sealed)
    assert decoded == whole
    assert body.count == 6 and body.raw_bytes == len(whole)


def test_adler32_combine() -> None:
    assert adler32_combine(zlib.adler32(b"abc"), zlib.adler32(b"defgh"), 5) == zlib.adler32(b"abcdefgh")
    big = bytes(range(256)) * 1000
    assert adler32_combine(zlib.adler32(big), zlib.adler32(big[:77]), 77) == zlib.adler32(big + big[:77])


# --------------------------------------------------------------------------- OTLP environment variables


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "HEADERS",
        "TIMEOUT",
        "COMPRESSION",
        "CERTIFICATE",
        "CLIENT_CERTIFICATE",
        "CLIENT_KEY",
    ):
        monkeypatch.delenv(f"OTEL_EXPORTER_OTLP_{name}", raising=False)
        monkeypatch.delenv(f"OTEL_EXPORTER_OTLP_TRACES_{name}", raising=False)
    return monkeypatch


def test_env_headers_are_sent_and_explicit_headers_win(receiver: LocalReceiver, otlp_env: pytest.MonkeyPatch) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=ignored")
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=ml%20ops,X-Api-Key=from-env")
    slc.configure(dsn=receiver.dsn, headers={"X-API-KEY": "explicit"})
    run_chain()
    check_trace(delivered(receiver, SPANS_PER_CHAIN), generations=1)
    sent = receiver.headers[-1]
    assert sent["x-team"] == "ml ops"
    assert sent["x-api-key"] == "explicit"
    assert "x-generic" not in sent
    assert sent["x-sentry-auth"].startswith(f"Sentry sentry_key={DEFAULT_KEY}")


def test_generic_env_headers_apply_when_no_traces_ones_are_set(
    receiver: LocalReceiver, otlp_env: pytest.MonkeyPatch
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=yes")
    slc.configure(dsn=receiver.dsn)
    assert slc.test_connection().ok
    assert receiver.headers[-1]["x-generic"] == "yes"


def test_an_unusable_env_header_value_is_a_configuration_error(otlp_env: pytest.MonkeyPatch) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-name=caf%C3%A9%E2%82%AC")
    with pytest.raises(slc.ConfigurationError, match="OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        slc.configure(dsn=f"http://{DEFAULT_KEY}@127.0.0.1:9/1")


def test_env_timeout_applies_to_each_request(receiver: FaultyReceiver, otlp_env: pytest.MonkeyPatch) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.3")
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")
    destination = slc.configure(dsn=receiver.dsn)
    assert destination.export_timeout == 0.3
    receiver.fault = Fault(hang=3)
    failed = slc.stats()["exports_failed"]
    run_chain()
    # A 10 s request timeout would still be waiting at this flush's deadline; 0.3 s has failed.
    assert slc.flush(timeout=2.0) is False
    assert slc.stats()["exports_failed"] > failed


def test_explicit_export_timeout_wins_over_env(otlp_env: pytest.MonkeyPatch) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "7")
    dsn = f"http://{DEFAULT_KEY}@127.0.0.1:9/1"
    assert slc.configure(dsn=dsn).export_timeout == 7.0
    assert slc.configure(dsn=dsn, export_timeout=3).export_timeout == 3.0
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")
    assert slc.configure(dsn=dsn).export_timeout == 10.0  # unusable: ignored, with a warning


@pytest.mark.parametrize(("value", "encoding"), [("deflate", "deflate"), ("none", None), ("GZIP", "gzip")])
def test_env_compression_over_the_wire(
    receiver: LocalReceiver, otlp_env: pytest.MonkeyPatch, value: str, encoding: str | None
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", value)
    slc.configure(dsn=receiver.dsn)
    run_chain(count=3)
    check_traces(delivered(receiver, 3 * SPANS_PER_CHAIN), 3, generations=1)
    assert {h.get("content-encoding") for h in receiver.headers} == {encoding}


def test_gzip_is_the_default_and_an_unknown_compression_keeps_it(
    receiver: LocalReceiver, otlp_env: pytest.MonkeyPatch
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "brotli")
    slc.configure(dsn=receiver.dsn)
    run_chain()
    check_trace(delivered(receiver, SPANS_PER_CHAIN), generations=1)
    assert receiver.headers[-1]["content-encoding"] == "gzip"


# --------------------------------------------------------------------------- TLS from the environment


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _certificate(subject: str, key: Any, issuer: tuple[str, Any] | None, *, ca: bool = False) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # key identifiers and a CA's key usage: Python 3.13 verifies with VERIFY_X509_STRICT
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, *objects: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    parts = []
    for obj in objects:
        if hasattr(obj, "private_bytes"):
            parts.append(
                obj.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        else:
            parts.append(obj.public_bytes(serialization.Encoding.PEM))
    path.write_bytes(b"".join(parts))
    return str(path)


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    pytest.importorskip("cryptography")
    ca_key = _key()
    ca = _certificate("test CA", ca_key, None, ca=True)
    server_key, client_key = _key(), _key()
    return {
        "ca": _write(tmp_path / "ca.pem", ca),
        "server": _write(tmp_path / "server.pem", _certificate("server", server_key, ("test CA", ca_key)), server_key),
        "client": _write(tmp_path / "client.pem", _certificate("client", client_key, ("test CA", ca_key))),
        "client_key": _write(tmp_path / "client.key", client_key),
    }


@pytest.fixture
def tls_receiver(tls_files: dict[str, str]) -> Iterator[LocalReceiver]:
    """The receiver behind TLS, asking for a client certificate signed by the test CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files["server"])
    context.load_verify_locations(tls_files["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    with LocalReceiver() as receiver:
        server = receiver._server
        assert server is not None
        server.socket = context.wrap_socket(server.socket, server_side=True)
        yield receiver


def _https_dsn(receiver: LocalReceiver) -> str:
    return f"https://{DEFAULT_KEY}@127.0.0.1:{receiver.port}/{receiver.project_id}"


def test_env_certificates_reach_a_tls_endpoint_with_mutual_tls(
    tls_receiver: LocalReceiver, tls_files: dict[str, str], otlp_env: pytest.MonkeyPatch
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", tls_files["ca"])
    otlp_env.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", tls_files["client"])
    otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", tls_files["client_key"])
    slc.configure(dsn=_https_dsn(tls_receiver))
    assert slc.test_connection().ok
    run_chain()
    check_trace(delivered(tls_receiver, SPANS_PER_CHAIN), generations=1)


def test_without_the_env_certificates_the_tls_endpoint_is_unreachable(
    tls_receiver: LocalReceiver, tls_files: dict[str, str], otlp_env: pytest.MonkeyPatch
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls_files["ca"])  # trusted, but no client certificate
    slc.configure(dsn=_https_dsn(tls_receiver))
    result = slc.test_connection(timeout=5)
    assert not result.ok and result.reason == "unreachable"
    run_chain()
    assert slc.flush(timeout=2) is False
    assert not tls_receiver.spans
    assert _state.get_pipeline() is not None


# --------------------------------------------------------------------------- requests that can never be sent


def test_a_header_value_starting_with_a_space_is_refused_at_configure() -> None:
    with pytest.raises(slc.ConfigurationError, match="must not start with a space") as info:
        slc.configure(dsn=f"http://{DEFAULT_KEY}@127.0.0.1:9/1", headers={"X-Api-Key": " abc"})
    assert info.value.field == "headers"


def test_a_request_the_http_library_refuses_is_a_rejection_not_a_retry(receiver: LocalReceiver) -> None:
    from sentry_llm_callbacks.export.transport import OtlpHttpSender

    sender = OtlpHttpSender(receiver.endpoint, {"X-Api-Key": " abc"}, timeout=2.0)
    try:
        result = sender.post(b"")
    finally:
        sender.close()
    assert (result.delivered, result.retryable, result.detail) == (False, False, "InvalidHeader")
    assert not receiver.headers  # nothing reached the server


# --------------------------------------------------------------------------- a replaced pipeline


def test_flush_waits_for_what_a_replaced_pipeline_still_holds(receiver: FaultyReceiver) -> None:
    receiver.fault = Fault(hang=1.0)  # the old pipeline's delivery takes a while
    slc.configure(dsn=receiver.dsn)
    run_chain()
    with LocalReceiver() as second:
        slc.configure(dsn=second.dsn)  # the old pipeline is retired on a thread of its own
        assert slc.flush(timeout=10) is True  # returns once the old pipeline has delivered
        assert len(receiver.spans) == SPANS_PER_CHAIN
        check_trace(receiver.spans, generations=1)


def test_flush_says_false_when_a_replaced_pipeline_could_not_deliver_in_time(receiver: FaultyReceiver) -> None:
    receiver.fault = Fault(hang=3.0)
    slc.configure(dsn=receiver.dsn, exit_timeout=2.0)
    run_chain()
    with LocalReceiver() as second:
        slc.configure(dsn=second.dsn)
        assert slc.flush(timeout=0.5) is False


def test_the_encoder_lets_the_application_in_after_a_while_of_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """While it encodes, the export thread hands the interpreter lock over once ``LONG_WORK`` of
    work has gone by (content that is slow to render), not at every few spans (light spans run
    through: each hand-over costs CPU and the application's time)."""
    from sentry_llm_callbacks.export.backlog import Backlog
    from sentry_llm_callbacks.export.encoding import SpanEncoder
    from sentry_llm_callbacks.export.transport import OtlpHttpSender

    sender = OtlpHttpSender("http://127.0.0.1:9/v1/traces", {}, timeout=1.0)
    encoder = SpanEncoder(Backlog(Compression(), max_spans=100, max_bytes=1 << 20), sender, max_batch_size=8)
    pauses: list[float] = []
    monkeypatch.setattr(encoder, "pause", lambda: pauses.append(time.perf_counter()))
    monkeypatch.setattr(SpanEncoder, "LONG_WORK", 0.05)  # wide enough for a busy test machine

    light = encoder._pause_after_a_while()
    for _ in range(100):
        light()
    assert pauses == []  # 100 checks take well under LONG_WORK

    slow = encoder._pause_after_a_while()
    for _ in range(3):
        time.sleep(encoder.LONG_WORK * 1.5)  # stands for a chunk of content that is slow to render
        slow()
    assert len(pauses) == 3
