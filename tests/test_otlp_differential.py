"""Property test: our OTLP encoder and OpenTelemetry's produce the same message for any span
(every attribute value type, arrays, events, links, statuses, trace states, several resources
and scopes); shapes we leave to OpenTelemetry's encoder are covered by the same comparison.
The one documented difference: a link's flags also carry the linked context's trace flags
(bits 0-7, as OTLP defines them; Sentry reads the sampled bit), which OpenTelemetry's Python
encoder leaves out."""

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


plain_contexts = st.builds(
    SpanContext,
    trace_id=trace_ids,
    span_id=span_ids,
    is_remote=st.booleans(),
    trace_flags=st.sampled_from([TraceFlags(0), TraceFlags(1)]),
)


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
    linked = contexts(remote=draw(st.booleans())) if rare else plain_contexts
    links = draw(st.lists(st.builds(Link, context=linked, attributes=attributes), max_size=2))
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


def link_trace_flags(message: ExportTraceServiceRequest) -> list[tuple[bytes, bytes, bytes, int]]:
    """Each link's (span id, linked trace id, linked span id, trace flags in its flags), and clears
    those bits: the rest of the message must equal OpenTelemetry's, which writes none of them."""
    found = []
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for link in span.links:
                    found.append((span.span_id, link.trace_id, link.span_id, link.flags & 0xFF))
                    link.flags &= ~0xFF
    return sorted(found)


def expected_link_trace_flags(batch: list[ReadableSpan]) -> list[tuple[bytes, bytes, bytes, int]]:
    return sorted(
        (
            span.context.span_id.to_bytes(8, "big"),
            link.context.trace_id.to_bytes(16, "big"),
            link.context.span_id.to_bytes(8, "big"),
            int(link.context.trace_flags),
        )
        for span in batch
        for link in span.links
    )


def assert_same_message(batch: list[ReadableSpan]) -> None:
    ours = decode(encode_request(batch))
    assert link_trace_flags(ours) == expected_link_trace_flags(batch)
    assert ours == encode_spans(batch)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(rare=False), min_size=1, max_size=6))
def test_our_encoder_writes_what_opentelemetry_writes(batch: list[ReadableSpan]) -> None:
    assert_same_message(batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(rare=True), min_size=1, max_size=6))
def test_batches_with_rare_shapes_are_equal_too(batch: list[ReadableSpan]) -> None:
    assert_same_message(batch)
