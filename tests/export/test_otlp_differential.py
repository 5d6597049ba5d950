"""Property test: our OTLP encoder and OpenTelemetry's produce the same message for any span
(every attribute value type, arrays, events, links, statuses, trace states, several resources
and scopes); shapes we leave to OpenTelemetry's encoder are covered by the same comparison."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from sentry_llm_callbacks.export.otlp import encode_request

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)  # no lone surrogates: not UTF-8
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False)  # NaN != NaN would make equal messages compare unequal
scalars = st.one_of(text, st.booleans(), ints, floats, st.binary(max_size=32))
arrays = st.one_of(
    st.lists(text, max_size=4),
    st.lists(st.booleans(), max_size=4),
    st.lists(ints, max_size=4),
    st.lists(floats, max_size=4),
    st.tuples(text, text),
)
attributes = st.dictionaries(st.text(min_size=1, max_size=20), st.one_of(scalars, arrays), max_size=8)
trace_ids = st.integers(min_value=1, max_value=2**128 - 1)
span_ids = st.integers(min_value=1, max_value=2**64 - 1)
times = st.integers(min_value=0, max_value=2**63 - 1)

RESOURCES = [
    Resource.create({"service.name": "a"}),
    Resource.create({"service.name": "b", "deployment.environment.name": "prod"}),
    Resource({"service.name": "c"}, schema_url="https://opentelemetry.io/schemas/1.21.0"),
]
SCOPES = [
    InstrumentationScope("sentry_llm_callbacks", "1.0"),
    InstrumentationScope("other"),
    InstrumentationScope("with.schema", "2", schema_url="https://example.com/s", attributes={"k": "v"}),
]


@st.composite
def contexts(draw: st.DrawFn, *, remote: bool = False) -> SpanContext:
    state = draw(st.sampled_from([None, TraceState([("vendor", "value")])]))
    return SpanContext(draw(trace_ids), draw(span_ids), remote, TraceFlags(draw(st.sampled_from([0, 1]))), state)


@st.composite
def spans(draw: st.DrawFn, *, rare: bool) -> ReadableSpan:
    context = draw(contexts()) if rare else SpanContext(draw(trace_ids), draw(span_ids), False, TraceFlags(1))
    parent = draw(st.one_of(st.none(), contexts(remote=draw(st.booleans()))))
    status = draw(
        st.sampled_from(
            [
                Status(StatusCode.UNSET),
                Status(StatusCode.OK),
                Status(StatusCode.ERROR, "boom"),
                Status(StatusCode.ERROR),
            ]
        )
    )
    events = draw(st.lists(st.builds(Event, name=text, attributes=attributes, timestamp=times), max_size=3).map(tuple))
    links = draw(st.lists(st.builds(Link, context=contexts(), attributes=attributes), max_size=2)) if rare else []
    start = draw(times)
    return ReadableSpan(
        name=draw(text),
        context=context,
        parent=parent,
        resource=draw(st.sampled_from(RESOURCES if rare else RESOURCES[:2])),
        attributes=draw(attributes),
        events=events,
        links=tuple(links),
        kind=draw(st.sampled_from(list(SpanKind))),
        status=status,
        start_time=start,
        end_time=draw(st.integers(min_value=start, max_value=2**63 - 1)),
        instrumentation_scope=draw(st.sampled_from(SCOPES if rare else SCOPES[:2])),
    )


def decode(body: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    return message


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(rare=False), min_size=1, max_size=6))
def test_our_encoder_writes_what_opentelemetry_writes(batch: list[ReadableSpan]) -> None:
    assert decode(encode_request(batch)) == encode_spans(batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(rare=True), min_size=1, max_size=6))
def test_batches_with_rare_shapes_are_equal_too(batch: list[ReadableSpan]) -> None:
    assert decode(encode_request(batch)) == encode_spans(batch)
