"""Our OTLP encoder against OpenTelemetry's: the same message, decoded with opentelemetry-proto."""

from __future__ import annotations

import random

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from sentry_llm_callbacks.export.otlp import encode_request

RESOURCE = Resource.create({"service.name": "svc", "deployment.environment.name": "prod"})
SCOPE = InstrumentationScope("sentry_llm_callbacks", "1.2.3")


def make_span(rng: random.Random, *, parent_remote: bool | None, status: Status) -> ReadableSpan:
    ctx = SpanContext(rng.getrandbits(128) or 1, rng.getrandbits(64) or 1, False, TraceFlags(1))
    parent = (
        None
        if parent_remote is None
        else SpanContext(ctx.trace_id, rng.getrandbits(64) or 1, parent_remote, TraceFlags(1))
    )
    attributes = {
        "sentry.op": "gen_ai.chat",
        "user.id": "user_12345",
        "flag": True,
        "zero": 0,
        "neg": -5,
        "big": 2**62,
        "ratio": 0.25,
        "text": "héllo ✓ " * rng.randint(1, 40),
        "list": ["a", "b"],
        "ints": [1, 2, 3],
        "empty": "",
        "one_int": 1,
        "one_bool": False,
    }
    events = (Event("exception", {"exception.type": "ValueError", "exception.message": "bad"}, timestamp=123456789),)
    return ReadableSpan(
        name=f"chat gpt-4o {rng.random()}",
        context=ctx,
        parent=parent,
        resource=RESOURCE,
        attributes=attributes,
        events=events,
        kind=SpanKind.INTERNAL,
        status=status,
        start_time=1_700_000_000_000_000_000 + rng.randint(0, 10**9),
        end_time=1_700_000_001_000_000_000,
        instrumentation_scope=SCOPE,
    )


def decode(body: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    return message


def test_same_message_as_opentelemetry_encoder() -> None:
    rng = random.Random(7)
    spans = [
        make_span(rng, parent_remote=remote, status=status)
        for remote in (None, False, True)
        for status in (Status(StatusCode.UNSET), Status(StatusCode.OK), Status(StatusCode.ERROR, "ValueError: x"))
    ]
    ours = decode(encode_request(spans))
    theirs = encode_spans(spans)
    assert ours == theirs


def test_repeated_encodings_hit_the_cache_but_stay_correct() -> None:
    rng = random.Random(1)
    spans = [make_span(rng, parent_remote=False, status=Status(StatusCode.UNSET)) for _ in range(3)]
    assert decode(encode_request(spans)) == encode_spans(spans)
    assert decode(encode_request(spans)) == encode_spans(spans)  # second time from the cache
    flip = make_span(rng, parent_remote=False, status=Status(StatusCode.UNSET))
    flip._attributes = {"x": 1, "y": True, "z": 1.0}  # equal as dict keys, different types on the wire
    decoded = decode(encode_request([flip])).resource_spans[0].scope_spans[0].spans[0].attributes
    kinds = {kv.key: kv.value.WhichOneof("value") for kv in decoded}
    assert kinds == {"x": "int_value", "y": "bool_value", "z": "double_value"}
