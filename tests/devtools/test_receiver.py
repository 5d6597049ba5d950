"""The local receiver against what other clients send, over real HTTP: OTLP exporters (the
OpenTelemetry SDK's own, OTLP/JSON), values of every OTLP type anywhere in a request, and hostile
requests (broken framing, oversized and bomb bodies, garbage). Each gets an answer, a refusal
says why in a short body, nothing prints a traceback, and the receiver keeps serving."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools.intake import INFLATE_STEP, MAX_BODY_BYTES
from sentry_llm_callbacks.devtools.receiver import SERVER_NAME, LocalReceiver, decode_request, format_trace_tree
from tests.support.raw_http import raw_post
from tests.support.serve_process import serve_process

PROTOBUF = {"Content-Type": "application/x-protobuf"}
TRACE_ID = bytes(range(1, 17))

# --------------------------------------------------------------------------- requests


def value(python: Any) -> AnyValue:
    """An OTLP ``AnyValue`` from a Python value (lists and dicts nest)."""
    if python is None:
        return AnyValue()
    if isinstance(python, bool):
        return AnyValue(bool_value=python)
    if isinstance(python, int):
        return AnyValue(int_value=python)
    if isinstance(python, float):
        return AnyValue(double_value=python)
    if isinstance(python, bytes):
        return AnyValue(bytes_value=python)
    if isinstance(python, list):
        return AnyValue(array_value=ArrayValue(values=[value(v) for v in python]))
    if isinstance(python, dict):
        return AnyValue(kvlist_value=KeyValueList(values=pairs(python)))
    return AnyValue(string_value=python)


def pairs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in attributes.items()]


#: One value of each OTLP type, nested ones included.
EVERY_TYPE: dict[str, Any] = {
    "s": "text",
    "b": True,
    "i": -(2**63),
    "d": 0.25,
    "bytes": b"\x00\xff",
    "empty": None,
    "array": [1, "two", [3.0], {"four": False}],
    "kvlist": {"a": [b"\x01"], "b": {"c": None}},
}


def one_span_request(attributes: dict[str, Any] | None = None, *, name: str = "root") -> ExportTraceServiceRequest:
    """A request of one root span carrying ``attributes`` (and every type in its event, link,
    resource and scope)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(pairs({"service.name": "client", **EVERY_TYPE}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "other.client"
    scope_spans.scope.attributes.extend(pairs(EVERY_TYPE))
    span = scope_spans.spans.add(trace_id=TRACE_ID, span_id=b"\x01" * 8, name=name)
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000_000_000, 1_250_000_000
    span.attributes.extend(pairs(attributes or {}))
    span.events.add(name="event", time_unix_nano=1_100_000_000).attributes.extend(pairs(EVERY_TYPE))
    span.links.add(trace_id=bytes(16), span_id=b"\x02" * 8, flags=0x101).attributes.extend(pairs(EVERY_TYPE))
    return request


VALID = one_span_request().SerializeToString()


def as_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """``request`` in OTLP/JSON as other clients write it: lowerCamelCase keys, enums as numbers,
    trace and span ids in hex (where protobuf's own JSON mapping has base64)."""
    data = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for holder in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex()
    return json.dumps(data).encode("utf-8")


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip member of zeros: about 1/1000 of ``inflated_bytes``."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(inflated_bytes >> 20)]
    return b"".join([*parts, compressor.flush()])


def assert_still_serving(receiver: LocalReceiver) -> None:
    before = len(receiver.spans)
    assert requests.post(receiver.plain_endpoint, data=VALID, headers=PROTOBUF, timeout=10).status_code == 200
    assert len(receiver.spans) == before + 1


@pytest.fixture
def quiet(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The receiver's threads print nothing (no traceback) while the test runs."""
    capfd.readouterr()
    yield
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- broken framing


@pytest.mark.parametrize(
    ("header_lines", "status", "says"),
    [
        (["Content-Length: -1"], 400, "Content-Length must be a number of bytes, not '-1'"),
        (["Content-Length: abc"], 400, "Content-Length must be a number of bytes, not 'abc'"),
        (["Content-Length: 1e3"], 400, "Content-Length must be a number of bytes"),
        (["Content-Length: 3", "Content-Length: 4"], 400, "several different Content-Length headers"),
        (["Content-Length: 99999999999999999999999"], 413, "larger than the receiver's limit of 12 MiB"),
        ([f"Content-Length: {'9' * 5000}"], 413, "a 5000-digit number of bytes"),
        ([f"Content-Length: {MAX_BODY_BYTES + 1}"], 413, f"{MAX_BODY_BYTES + 1:,} bytes"),
        ([], 411, "needs a Content-Length header"),
        (["Transfer-Encoding: chunked"], 411, "chunked transfer encoding is not accepted"),
    ],
    ids=["negative", "not-a-number", "float", "two-lengths", "huge", "5000-digits", "over-limit", "missing", "chunked"],
)
def test_a_broken_content_length_gets_a_status_and_a_reason(
    receiver: LocalReceiver, quiet: None, header_lines: list[str], status: int, says: str
) -> None:
    answer = raw_post(receiver.port, [*header_lines, "Content-Type: application/x-protobuf"], stop_sending=True)
    assert answer.status == status
    assert says in answer.detail
    assert answer.headers["connection"] == "close"  # the body's framing is unknown: nothing else on it
    assert answer.headers["server"].startswith(SERVER_NAME)
    assert_still_serving(receiver)


def test_a_body_shorter_than_its_content_length_is_refused(receiver: LocalReceiver, quiet: None) -> None:
    answer = raw_post(receiver.port, ["Content-Length: 100"], VALID[:10], stop_sending=True)
    assert answer.status == 400 and "ended after 10 of the 100 bytes" in answer.detail
    assert_still_serving(receiver)


def test_a_client_sending_an_oversized_body_reads_the_413(receiver: LocalReceiver, quiet: None) -> None:
    """Answered before the body is read, then the rest is read and thrown away: a client still
    sending sees the answer, not a reset connection."""
    answer = requests.post(receiver.plain_endpoint, data=bytes(MAX_BODY_BYTES + 1), headers=PROTOBUF, timeout=30)
    assert answer.status_code == 413 and "larger than the receiver's limit" in answer.json()["detail"]
    assert_still_serving(receiver)


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (gzip_bomb(16 << 20), {"Content-Encoding": "gzip"}, 413, "inflates to more than the receiver's limit"),
        (zlib.compress(bytes(16 << 20)), {"Content-Encoding": "deflate"}, 413, "inflates to more than"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, 400, "is not valid gzip"),
        (gzip.compress(VALID)[:-12], {"Content-Encoding": "gzip"}, 400, "is cut short"),
        (gzip.compress(VALID) * 2, {"Content-Encoding": "gzip"}, 400, "not exactly one gzip member"),
        (VALID, {"Content-Encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
        (b"\x0a\x05\xff\xff\xff", {}, 400, "not an OTLP ExportTraceServiceRequest in protobuf"),
        (VALID, {"Content-Type": "text/plain"}, 415, "send application/x-protobuf or application/json"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "is an object"),
        (b'{"resourceSpans": 3}', {"Content-Type": "application/json"}, 400, "in JSON"),
        (b"[" * 100_000, {"Content-Type": "application/json"}, 400, "not valid JSON"),
    ],
    ids=[
        "gzip-bomb",
        "deflate-bomb",
        "bad-gzip",
        "truncated-gzip",
        "two-gzip-members",
        "brotli",
        "bad-protobuf",
        "text-plain",
        "bad-json",
        "json-array",
        "json-wrong-shape",
        "json-deep",
    ],
)
def test_a_body_that_cannot_be_taken_gets_a_status_and_a_reason(
    receiver: LocalReceiver, quiet: None, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    answer = requests.post(receiver.plain_endpoint, data=body, headers={**PROTOBUF, **headers}, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert says in answer.json()["detail"]
    assert receiver.spans == []
    assert_still_serving(receiver)


def test_sentry_checks_come_with_a_reason(receiver: LocalReceiver) -> None:
    wrong_path = requests.post(receiver.plain_endpoint.replace("/v1/", "/v2/"), data=VALID, headers=PROTOBUF)
    assert wrong_path.status_code == 404 and "/v1/traces" in wrong_path.json()["detail"]
    no_key = requests.post(receiver.endpoint, data=VALID, headers=PROTOBUF)
    assert no_key.status_code == 401 and "X-Sentry-Auth" in no_key.json()["detail"]
    other_key = requests.post(
        receiver.endpoint, data=VALID, headers={**PROTOBUF, "X-Sentry-Auth": "Sentry sentry_key=" + "0" * 32}
    )
    assert other_key.status_code == 403 and "not this receiver's key" in other_key.json()["detail"]


def test_the_inflation_limit_is_exact(receiver: LocalReceiver) -> None:
    """A body that inflates to the limit is decoded; one step more is refused (both as gzip)."""
    request = one_span_request({"pad": ""})
    padding = request.resource_spans[0].scope_spans[0].spans[0].attributes[0].value
    at_limit = request.SerializeToString()
    while len(at_limit) != MAX_BODY_BYTES:  # length prefixes grow with the padding: converge on it
        padding.string_value = "x" * (len(padding.string_value) + MAX_BODY_BYTES - len(at_limit))
        at_limit = request.SerializeToString()
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    assert requests.post(receiver.plain_endpoint, data=gzip.compress(at_limit), headers=headers).status_code == 200
    over = gzip.compress(at_limit + b"\x00" * INFLATE_STEP)
    assert requests.post(receiver.plain_endpoint, data=over, headers=headers).status_code == 413


# --------------------------------------------------------------------------- other clients


@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
def test_the_opentelemetry_sdk_exporter_delivers_every_attribute_type(
    receiver: LocalReceiver, compression: str
) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link

    values = {
        attr.COST_TOTAL: "0.5 USD",
        attr.USAGE_INPUT_TOKENS: 12.5,
        attr.USAGE_OUTPUT_TOKENS: "many",
        attr.REQUEST_MODEL: ["a", "list"],
        "s": "x",
        "b": True,
        "i": -7,
        "f": 1.5,
        "ss": ("a", "b"),
        "bs": (True, False),
        "is": (1, 2),
        "fs": (0.5,),
    }
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "other-app", "tier": 3, "on": (True,)}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("other.client", "1.0")
    with tracer.start_as_current_span("outer", attributes=values) as outer:
        outer.add_event("thing", attributes=values)
        with tracer.start_as_current_span("inner", links=[Link(outer.get_span_context(), attributes=values)]):
            pass
    exporter = OTLPSpanExporter(endpoint=receiver.plain_endpoint, compression=Compression(compression))
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()

    expected = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    spans = {s.name: s for s in receiver.spans}
    assert spans["outer"].attributes == expected
    assert spans["outer"].events == [("thing", expected)]
    assert spans["inner"].links[0].attributes == expected
    assert spans["outer"].resource["tier"] == 3 and spans["outer"].resource["on"] == [True]
    tree = format_trace_tree(receiver.spans)
    assert "cost 0.5 USD" in tree and "tokens 12.5 in / many out" in tree and "['a', 'list']" in tree


def test_otlp_json_is_accepted_and_answered_in_json(receiver: LocalReceiver) -> None:
    request = one_span_request({**EVERY_TYPE, attr.COST_TOTAL: "free"})
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.parent_span_id = b"\x09" * 8
    span.kind = Span.SPAN_KIND_CLIENT
    span.status.code = 2
    span.status.message = "boom"
    body = as_otlp_json(request)
    assert b'"traceId": "0102030405060708090a0b0c0d0e0f10"' in body  # hex, as OTLP/JSON writes ids
    answer = requests.post(
        receiver.plain_endpoint,
        data=gzip.compress(body),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Content-Encoding": "gzip",
        },
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {}
    assert receiver.spans == decode_request(request.SerializeToString())
    assert receiver.spans[0].trace_id == TRACE_ID.hex() and receiver.spans[0].attributes["bytes"] == b"\x00\xff"


def test_otlp_json_with_base64_ids_as_early_clients_sent_them(receiver: LocalReceiver) -> None:
    data = MessageToDict(one_span_request(), use_integers_for_enums=True)  # ids in base64
    answer = requests.post(receiver.plain_endpoint, data=json.dumps(data), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert receiver.spans[0].trace_id == TRACE_ID.hex()


def test_terminal_output_cannot_be_redrawn_by_a_span_name(receiver: LocalReceiver) -> None:
    request = one_span_request({attr.USER_ID: "u\x1b[2J", attr.REQUEST_MODEL: "m\r\nfake line"}, name="\x1b[2Jboom")
    requests.post(receiver.plain_endpoint, data=request.SerializeToString(), headers=PROTOBUF)
    tree = format_trace_tree(receiver.spans)
    assert "\x1b" not in tree and "\r" not in tree
    assert "\\x1b[2Jboom" in tree and "m\\r\\nfake line" in tree and "user.id=u\\x1b[2J" in tree
    assert len(tree.splitlines()) == 2


# --------------------------------------------------------------------------- every value, anywhere

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # valid UTF-8, as OTLP requires
CONSTANTS = {name: v for name, v in vars(attr).items() if name.isupper() and isinstance(v, str)}
KNOWN_KEYS = sorted(v for name, v in CONSTANTS.items() if not name.startswith("OP_"))
OPS = sorted(v for name, v in CONSTANTS.items() if name.startswith("OP_"))
#: The keys the text tree and the page read a value from (and may format as a number).
SHOWN_KEYS = [
    attr.COST_TOTAL,
    attr.USAGE_INPUT_TOKENS,
    attr.USAGE_OUTPUT_TOKENS,
    attr.REQUEST_MODEL,
    attr.RESPONSE_MODEL,
    attr.SENTRY_OP,
    attr.PROMPT_NAME,
    attr.PROMPT_VERSION,
    attr.USER_ID,
    attr.SESSION_ID,
    attr.EVALUATION_NAME,
    attr.EVALUATION_SCORE_LABEL,
    attr.EVALUATION_SCORE_VALUE,
    attr.INPUT_MESSAGES,
    attr.OUTPUT_MESSAGES,
]
keys = st.one_of(st.sampled_from(SHOWN_KEYS), st.sampled_from(KNOWN_KEYS), text)
leaves = st.one_of(
    st.one_of(text, st.sampled_from(OPS)).map(lambda v: AnyValue(string_value=v)),
    st.booleans().map(lambda v: AnyValue(bool_value=v)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda v: AnyValue(int_value=v)),
    st.floats().map(lambda v: AnyValue(double_value=v)),  # NaN and infinities included
    st.binary(max_size=12).map(lambda v: AnyValue(bytes_value=v)),
    st.just(AnyValue()),
)
any_values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(keys, inner), max_size=3).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
        ),
    ),
    max_leaves=8,
)
attribute_lists = st.lists(st.tuples(keys, any_values), max_size=6).map(
    lambda kvs: [KeyValue(key=k, value=v) for k, v in kvs]
)
TRACE_IDS = [bytes([i]) * 16 for i in (1, 2)]
SPAN_IDS = [bytes([i]) * 8 for i in range(1, 5)]
times = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def otlp_spans(draw: st.DrawFn) -> Span:
    span = Span(
        trace_id=draw(st.sampled_from(TRACE_IDS)),
        span_id=draw(st.sampled_from(SPAN_IDS)),
        parent_span_id=draw(st.sampled_from([b"", *SPAN_IDS])),
        name=draw(text),
        kind=draw(st.integers(min_value=0, max_value=5)),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times),
        flags=draw(st.integers(min_value=0, max_value=2**32 - 1)),
    )
    span.attributes.extend(draw(attribute_lists))
    span.status.code = draw(st.sampled_from([0, 1, 2, 7]))  # an open enum: unknown values are valid
    span.status.message = draw(text)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        event = span.events.add(name=draw(text), time_unix_nano=draw(times))
        event.attributes.extend(draw(attribute_lists))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        link = span.links.add(trace_id=draw(st.sampled_from(TRACE_IDS)), span_id=draw(st.sampled_from(SPAN_IDS)))
        link.flags = draw(st.integers(min_value=0, max_value=2**32 - 1))
        link.attributes.extend(draw(attribute_lists))
    return span


@st.composite
def otlp_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(draw(attribute_lists))
        for _ in range(draw(st.integers(min_value=1, max_value=2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name, scope_spans.scope.version = draw(text), draw(text)
            scope_spans.scope.attributes.extend(draw(attribute_lists))
            scope_spans.spans.extend(draw(st.lists(otlp_spans(), min_size=1, max_size=3)))
    return request


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[LocalReceiver]:
    with LocalReceiver() as receiver:
        yield receiver


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=otlp_requests(), as_json=st.booleans(), compress=st.booleans())
def test_every_valid_value_type_anywhere_is_accepted_printed_and_drawn(
    shared_receiver: LocalReceiver, request: ExportTraceServiceRequest, as_json: bool, compress: bool
) -> None:
    receiver = shared_receiver
    receiver.clear()
    body = as_otlp_json(request) if as_json else request.SerializeToString()
    headers = {"Content-Type": "application/json" if as_json else "application/x-protobuf"}
    if compress:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    answer = requests.post(receiver.plain_endpoint, data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    sent = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    received = receiver.spans
    assert [(s.name, s.span_id) for s in received] == [(s.name, s.span_id.hex()) for s in sent]
    tree = format_trace_tree(received)
    base = f"http://127.0.0.1:{receiver.port}"
    for trace_id in {s.trace_id for s in received}:
        assert f"trace {trace_id}" in tree
        page = requests.get(f"{base}/trace/{trace_id}?open=all", timeout=10)
        assert page.status_code == 200, page.text[:300]
    assert requests.get(f"{base}/", timeout=10).status_code == 200


ODD_VALUES = [
    float("inf"),
    float("-inf"),
    float("nan"),
    -1,
    2**63 - 1,
    True,
    "text",
    b"\xff",
    [1.5, "x"],
    {"k": 2},
    None,
]


def test_every_shown_attribute_with_every_odd_value_is_printed_and_drawn(shared_receiver: LocalReceiver) -> None:
    """Each attribute the views read, with each kind of value it should not have: a count that is
    infinite, a cost that is text, a model that is a list... on a span and a score span."""
    receiver = shared_receiver
    base = f"http://127.0.0.1:{receiver.port}"
    for key in SHOWN_KEYS:
        for odd in ODD_VALUES:
            receiver.clear()
            span_ops = (
                {attr.SENTRY_OP: attr.OP_EVALUATE, attr.EVALUATION_NAME: "helpful"} if key != attr.SENTRY_OP else {}
            )
            request = one_span_request({**span_ops, key: odd})
            answer = requests.post(receiver.plain_endpoint, data=request.SerializeToString(), headers=PROTOBUF)
            assert answer.status_code == 200, (key, odd)
            assert "trace " in format_trace_tree(receiver.spans)
            page = requests.get(f"{base}/trace/{TRACE_ID.hex()}?open=all", timeout=10)
            assert page.status_code == 200, (key, odd, page.text[:300])
            assert requests.get(f"{base}/", timeout=10).status_code == 200, (key, odd)


# --------------------------------------------------------------------------- serve, in its own process


def test_serve_answers_200_and_prints_a_trace_whose_cost_is_a_string() -> None:
    """The reported request: Sentry's cost attribute as a string. It was stored but answered 400
    with an empty body (an exporter drops the batch for good) and never printed."""
    request = one_span_request({attr.COST_TOTAL: "0.0042", attr.SENTRY_OP: "gen_ai.chat"}, name="chat m")
    with serve_process() as serve:
        url = f"http://127.0.0.1:{serve.port}/v1/traces"
        answer = requests.post(url, data=request.SerializeToString(), headers=PROTOBUF, timeout=10)
        assert answer.status_code == 200
        assert serve.wait_for_output("chat m  [gen_ai.chat, 250.0 ms, cost 0.0042]"), serve.output
    assert serve.stderr == ""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak resident memory from /proc")
def test_a_gzip_bomb_costs_serve_bounded_memory_and_a_413() -> None:
    """0.26 MB of gzip that inflates to 256 MiB: refused once 12 MiB are out, and the process's
    peak memory grows by a small part of that (it grew by 512 MB when the body was inflated whole)."""
    bomb = gzip_bomb(256 << 20)
    assert len(bomb) < 300_000
    with serve_process() as serve:
        url = f"http://127.0.0.1:{serve.port}/v1/traces"
        assert requests.post(url, data=VALID, headers=PROTOBUF, timeout=10).status_code == 200  # warm
        before = serve.peak_rss_bytes()
        assert before is not None
        answer = requests.post(url, data=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}, timeout=60)
        after = serve.peak_rss_bytes()
        assert answer.status_code == 413 and "inflates to more than" in answer.json()["detail"]
        assert requests.post(url, data=VALID, headers=PROTOBUF, timeout=10).status_code == 200
    assert after is not None and after - before < 48 << 20, (before, after)
    assert "Traceback" not in serve.stderr
