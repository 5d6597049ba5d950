"""A lean OTLP/protobuf encoder for finished spans.

It writes the ``ExportTraceServiceRequest`` wire format directly, instead of building a protobuf
object per attribute as OpenTelemetry's encoder does. The encoder runs on the export thread,
but in CPython that thread holds the interpreter lock while it works, so its cost is paid by
the application too; this is where most of the export work goes. Attribute pairs that repeat
across spans (op, user, session, environment, model...) are encoded once and reused.

Content captured lazily (:class:`~sentry_llm_callbacks.core.content.LazyContent`) is rendered
as it is written, through the batch's :class:`~sentry_llm_callbacks.core.content.RenderCache`:
the content policy's last stage and the encoding are one pass, with no finished copy of the span
in between (an attribute that renders to nothing is left out, as ``finish_span`` leaves it out).

The output decodes with ``opentelemetry-proto`` to the same message OpenTelemetry's encoder
(``opentelemetry-exporter-otlp-proto-common``) produces: a property test generates spans with
every attribute value type, events, links, statuses, trace states and several resources and
scopes, and compares the two. The shapes this package never produces itself (a trace state,
dropped counts, schema URLs, scope attributes) are left to OpenTelemetry's encoder, for the
whole batch, rather than written twice.

One difference, on purpose: a link's ``flags`` carry the linked context's W3C trace flags in
bits 0-7, as OTLP defines them; OpenTelemetry's Python encoder (1.30 to 1.45) writes only the
remote bits there. Sentry (Relay) reads the sampled bit of a link, and its trace view offers a
"previous trace" only for a link marked sampled. Batches left to OpenTelemetry's encoder get
the same bits.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from sentry_llm_callbacks.core.content import LazyContent, RenderCache, rendered
from sentry_llm_callbacks.core.finishing import finish_spans

_pack_fixed64 = struct.Struct("<Q").pack
_pack_double = struct.Struct("<d").pack
_pack_fixed32 = struct.Struct("<I").pack

_VARINTS = [bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(0x4000)]


def _varint(n: int) -> bytes:
    if n < 0x4000:
        return _VARINTS[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


# Field tags: (field_number << 3) | wire_type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_T1 = b"\x0a"  # field 1, length-delimited
_T2 = b"\x12"
_T3 = b"\x1a"
_T4 = b"\x22"
_T5 = b"\x2a"
_ANY_BOOL = b"\x10"  # AnyValue.bool_value, varint
_ANY_INT = b"\x18"  # AnyValue.int_value, varint
_ANY_DOUBLE = b"\x21"  # AnyValue.double_value, fixed64
_ANY_BYTES = b"\x3a"  # AnyValue.bytes_value (7), length-delimited
_SPAN_KIND = b"\x30"  # Span.kind, varint
_SPAN_START = b"\x39"  # Span.start_time_unix_nano, fixed64
_SPAN_END = b"\x41"  # Span.end_time_unix_nano, fixed64
_SPAN_ATTR = b"\x4a"  # Span.attributes (9)
_SPAN_EVENT = b"\x5a"  # Span.events (11)
_SPAN_LINK = b"\x6a"  # Span.links (13)
_LINK_FLAGS = b"\x35"  # Link.flags (6), fixed32
_SPAN_STATUS = b"\x7a"  # Span.status (15)
_SPAN_FLAGS = b"\x85\x01"  # Span.flags (16), fixed32
_EVENT_TIME = b"\x09"  # Event.time_unix_nano, fixed64
_STATUS_CODE = b"\x18"  # Status.code (3), varint

_EMPTY_STATUS = _SPAN_STATUS + b"\x00"
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _any_value(value: Any) -> bytes:
    kind = type(value)
    if kind is str:
        return _len_field(_T1, value.encode("utf-8", "replace"))
    if kind is bool:
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if kind is int:
        return _ANY_INT + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return _ANY_DOUBLE + _pack_double(value)
    if kind in (list, tuple):
        return _len_field(_T5, b"".join(_len_field(_T1, _any_value(v)) for v in value))
    if kind is bytes:
        return _len_field(_ANY_BYTES, value)
    return _len_field(_T1, str(value).encode("utf-8", "replace"))


_KV_CACHE: dict[tuple[bytes, str, type, Any], bytes] = {}
_KV_CACHE_MAX = 8192


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message body."""
    return _len_field(_T1, key.encode("utf-8", "replace")) + _len_field(_T2, _any_value(value))


def _attributes(tag: bytes, attributes: Any, cache: RenderCache | None) -> bytes:
    """Each attribute as a ``tag`` field holding its ``KeyValue``. The fields of short, repeating
    pairs (op, user, session, environment, model...) are encoded once and reused."""
    if not attributes:
        return b""
    out = []
    append = out.append
    cached_field = _KV_CACHE.get
    for key, value in attributes.items():
        kind = type(value)
        if kind is LazyContent:
            value = rendered(value, cache)
            if value is None:
                continue
            kind = str
        if kind is list or kind is tuple or (kind is str and len(value) > 64):
            pair = _key_value(key, value)
            size = len(pair)
            append(tag + (_VARINTS[size] if size < 0x4000 else _varint(size)) + pair)
            continue
        cache_key = (tag, key, kind, value)  # the type too: True == 1 == 1.0 as dict keys
        field = cached_field(cache_key)
        if field is None:
            field = _len_field(tag, _key_value(key, value))
            if len(_KV_CACHE) >= _KV_CACHE_MAX:
                _KV_CACHE.clear()
            _KV_CACHE[cache_key] = field
        append(field)
    return b"".join(out)


_TRACE_ID = b"\x0a\x10"  # Span.trace_id (1), 16 bytes
_SPAN_ID = b"\x12\x08"  # Span.span_id (2), 8 bytes
_PARENT_ID = b"\x22\x08"  # Span.parent_span_id (4), 8 bytes
_KINDS = {kind: _SPAN_KIND + _varint(kind.value + 1) for kind in SpanKind}
_FLAGS = {
    None: _SPAN_FLAGS + _pack_fixed32(_HAS_IS_REMOTE),  # as OpenTelemetry's encoder: no trace flags
    False: _SPAN_FLAGS + _pack_fixed32(_HAS_IS_REMOTE),
    True: _SPAN_FLAGS + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE),
}


def encode_span(span: ReadableSpan, cache: RenderCache | None = None) -> bytes:
    """One ``Span`` message body (lazily captured content rendered through ``cache``)."""
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    name = span.name.encode("utf-8", "replace")
    parts = [
        _TRACE_ID,
        ctx.trace_id.to_bytes(16, "big"),
        _SPAN_ID,
        ctx.span_id.to_bytes(8, "big"),
        b"" if parent is None else _PARENT_ID + parent.span_id.to_bytes(8, "big"),
        _T5,
        _varint(len(name)),
        name,
        _KINDS[span.kind],
        _SPAN_START,
        _pack_fixed64(span.start_time or 0),
        _SPAN_END,
        _pack_fixed64(span.end_time or 0),
        _attributes(_SPAN_ATTR, span.attributes, cache),
    ]
    for event in span.events:
        body = _EVENT_TIME + _pack_fixed64(event.timestamp or 0)
        body += _len_field(_T2, event.name.encode("utf-8", "replace"))
        body += _attributes(_T3, event.attributes, cache)
        parts.append(_len_field(_SPAN_EVENT, body))
    for link in span.links:
        linked = link.context
        body = _len_field(_T1, linked.trace_id.to_bytes(16, "big")) + _len_field(_T2, linked.span_id.to_bytes(8, "big"))
        body += _attributes(_T4, link.attributes, cache)
        body += _LINK_FLAGS + _pack_fixed32(_link_flags(linked))
        parts.append(_len_field(_SPAN_LINK, body))
    status = span.status
    if status is None or status.status_code is StatusCode.UNSET:
        parts.append(_EMPTY_STATUS)  # written even when unset, as OpenTelemetry's encoder does
    else:
        body = b""
        if status.description:
            body += _len_field(_T2, status.description.encode("utf-8", "replace"))
        body += _STATUS_CODE + _varint(status.status_code.value)
        parts.append(_len_field(_SPAN_STATUS, body))
    parts.append(_FLAGS[None if parent is None else parent.is_remote])
    return b"".join(parts)


def _link_flags(linked: SpanContext) -> int:
    """A link's ``flags``: the remote bits, and the linked context's trace flags (bits 0-7)."""
    return _HAS_IS_REMOTE | (_IS_REMOTE if linked.is_remote else 0) | (int(linked.trace_flags) & 0xFF)


_HEADERS: dict[tuple[int, int], tuple[object, object, tuple[bytes, bytes] | None]] = {}


def _resource_and_scope(span: ReadableSpan) -> tuple[bytes, bytes] | None:
    """Encoded ``Resource`` and ``InstrumentationScope``, or None when they have a shape left to
    OpenTelemetry's encoder (cached: a pipeline has one of each; the cache holds the objects
    themselves, so an id is never reused for another one while cached)."""
    resource, scope = span.resource, span.instrumentation_scope
    key = (id(resource), id(scope))
    cached = _HEADERS.get(key)
    if cached is not None and cached[0] is resource and cached[1] is scope:
        return cached[2]
    bodies: tuple[bytes, bytes] | None = None
    if not (resource is not None and resource.schema_url) and not (
        scope is not None and (scope.schema_url or scope.attributes)
    ):
        resource_body = _attributes(_T1, resource.attributes if resource is not None else None, None)
        scope_body = b""
        if scope is not None:
            scope_body = _len_field(_T1, scope.name.encode("utf-8"))
            if scope.version:
                scope_body += _len_field(_T2, scope.version.encode("utf-8"))
        bodies = (resource_body, scope_body)
    if len(_HEADERS) > 64:
        _HEADERS.clear()
    _HEADERS[key] = (resource, scope, bodies)
    return bodies


def _needs_official_encoder(span: ReadableSpan) -> bool:
    """Shapes this package never produces itself in a span (a trace state, dropped counts):
    OpenTelemetry's encoder writes them."""
    return bool(
        span.context.trace_state
        or span.dropped_attributes
        or span.dropped_events
        or span.dropped_links
        or (span.links and any(link.context.trace_state or link.dropped_attributes for link in span.links))
        or (span.events and any(event.dropped_attributes for event in span.events))
    )


#: Spans written between two calls of ``encode_request``'s ``pause``.
PAUSE_EVERY = 16


def encode_request(
    spans: Iterable[ReadableSpan], cache: RenderCache | None = None, pause: Callable[[], None] | None = None
) -> bytes:
    """An ``ExportTraceServiceRequest`` holding ``spans``, grouped by resource, then scope, their
    lazily captured content rendered (through ``cache``, one per batch, when given). ``pause`` is
    called after every ``PAUSE_EVERY`` spans (the export thread lets the application have the
    interpreter lock there: rendering content can take a while)."""
    spans = list(spans)
    groups: dict[bytes, dict[bytes, list[bytes]]] = {}
    for i, span in enumerate(spans):
        if pause is not None and i and not i % PAUSE_EVERY:
            pause()
        bodies = _resource_and_scope(span)
        if bodies is None or _needs_official_encoder(span):
            return _official_encoding(spans)
        encoded = encode_span(span, cache)
        size = len(encoded)
        groups.setdefault(bodies[0], {}).setdefault(bodies[1], []).append(
            _T2 + (_VARINTS[size] if size < 0x4000 else _varint(size)) + encoded
        )
    out = []
    for resource_body, scopes in groups.items():
        resource_spans = _len_field(_T1, resource_body)
        for scope_body, encoded_spans in scopes.items():
            resource_spans += _len_field(_T2, _len_field(_T1, scope_body) + b"".join(encoded_spans))
        out.append(_len_field(_T1, resource_spans))
    return b"".join(out)


def _official_encoding(spans: list[ReadableSpan]) -> bytes:
    """The whole batch, its content rendered, written by OpenTelemetry's encoder."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = finish_spans(spans)
    message = encode_spans(spans)
    _add_link_trace_flags(message, spans)
    return message.SerializeToString()


def _add_link_trace_flags(message: Any, spans: list[ReadableSpan]) -> None:
    """Write the linked contexts' trace flags into the links OpenTelemetry's encoder wrote (it
    writes only the remote bits), so that both encoders send the same links. Its message holds
    the spans grouped by resource, then scope, in the order they came: they are paired so."""
    if not any(int(link.context.trace_flags) for span in spans for link in span.links):
        return
    groups: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    for span in spans:
        groups.setdefault(span.resource, {}).setdefault(span.instrumentation_scope or None, []).append(span)
    ordered = [span for scopes in groups.values() for group in scopes.values() for span in group]
    encoded = [span for resource in message.resource_spans for scope in resource.scope_spans for span in scope.spans]
    for span, written in zip(ordered, encoded, strict=False):
        for link, written_link in zip(span.links, written.links, strict=False):
            written_link.flags |= int(link.context.trace_flags) & 0xFF
