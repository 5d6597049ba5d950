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


def test_content_held_lazily_is_written_as_the_finished_span_would_be() -> None:
    """The encoder renders lazily captured content as it writes it: the same message as rendering
    first (``finish_span``) and encoding the finished copy, in the span and in its events, with an
    attribute that renders to nothing left out, and content repeated across the batch rendered once."""
    from sentry_llm_callbacks.core.content import ContentPolicy, LazyContent, RenderCache
    from sentry_llm_callbacks.core.finishing import finish_spans

    policy = ContentPolicy(max_chars=12, mask=lambda text: text.replace("secret", "******"))
    rng = random.Random(3)
    conversions: list[object] = []

    def convert(value: object) -> object:
        conversions.append(value)
        return {"asked": value}

    shared = ["a secret question"]
    spans = []
    for i in range(3):
        span = make_span(rng, parent_remote=False, status=Status(StatusCode.ERROR, "ValueError: x"))
        attributes = dict(span.attributes)
        attributes["gen_ai.input.messages"] = LazyContent(shared, policy, convert, source=id(shared))
        attributes["gen_ai.output.messages"] = LazyContent(None, policy)  # renders to nothing
        attributes["gen_ai.tool.call.result"] = LazyContent({"n": i}, policy)
        event = Event(
            "exception",
            {"exception.type": "ValueError", "exception.message": LazyContent(f"{i} secret", policy)},
            timestamp=5,
        )
        span._attributes = attributes
        span._events = (event,)
        spans.append(span)

    ours = decode(encode_request(spans, RenderCache()))
    assert ours == encode_spans(finish_spans(spans))
    assert len(conversions) == 2  # once for the encoding above, once for finish_spans: not per span
    written = {kv.key: kv.value.string_value for kv in ours.resource_spans[0].scope_spans[0].spans[0].attributes}
    assert written["gen_ai.input.messages"] == '{"asked":["a...[truncated 19 chars]'
    assert "gen_ai.output.messages" not in written
    assert b"secret" not in encode_request(spans)


def test_the_encoder_lets_the_application_in_every_few_spans() -> None:
    """Rendering content can take a while: the export thread's ``pause`` (where it lets the
    application have the interpreter lock) is called after every ``PAUSE_EVERY`` spans."""
    from sentry_llm_callbacks.core.content import RenderCache
    from sentry_llm_callbacks.export.otlp import PAUSE_EVERY

    rng = random.Random(5)
    spans = [make_span(rng, parent_remote=None, status=Status(StatusCode.UNSET)) for _ in range(2 * PAUSE_EVERY + 3)]
    pauses: list[int] = []
    body = encode_request(spans, RenderCache(), lambda: pauses.append(1))
    assert len(pauses) == 2
    assert decode(body) == encode_spans(spans)
