"""What the local receiver accepts, and how it refuses the rest: one OTLP/HTTP traces request
read, inflated and parsed within fixed bounds, whatever a client sends.

Each step raises :class:`Refused` with the HTTP status and a short reason to answer with:

* :func:`read_body`: the body as ``Content-Length`` frames it (411 without one, 400 for a length
  that is not a number of bytes or a body that ends early, 413 over :data:`MAX_BODY_BYTES`);
* :func:`inflate`: ``Content-Encoding`` undone in steps of :data:`INFLATE_STEP` bytes, refused
  (413) as soon as the output passes :data:`MAX_BODY_BYTES`, so a small gzip bomb costs at
  most that much memory; 400 for a body that is not valid gzip / deflate, 415 for another encoding;
* :func:`parse_request`: the ``ExportTraceServiceRequest`` in protobuf or in OTLP/JSON (ids as
  hex, as the OTLP specification writes them; base64 accepted too), as Sentry accepts both;
  415 for another ``Content-Type``, 400 for a body that does not parse.

Example::

    try:
        raw = read_body(handler.headers, handler.rfile)
        message = parse_request(inflate(raw, headers.get("content-encoding")), headers.get("content-type"))
    except Refused as refused:
        answer(refused.status, refused.reason)
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from email.message import Message
from typing import Any, BinaryIO

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = [
    "INFLATE_STEP",
    "MAX_BODY_BYTES",
    "Refused",
    "drain",
    "gunzip_one_member",
    "inflate",
    "is_json",
    "parse_request",
    "read_body",
]

#: The largest body accepted, before and after decompression: Sentry's default body limit.
MAX_BODY_BYTES = 12 * 1024 * 1024
#: Bytes inflated per step: what a compressed body can make the receiver hold beyond the limit.
INFLATE_STEP = 256 * 1024
#: ``Content-Length`` values longer than this are over any limit (and ``int()`` of a 5,000-digit
#: string raises): refused without converting them.
_MAX_LENGTH_DIGITS = 18
#: Bytes of an over-long body read and thrown away after the 413 is sent, so that a client still
#: sending sees the answer instead of a reset connection; a longer one is not read at all.
_DRAIN_LIMIT = 4 * MAX_BODY_BYTES
_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
_JSON_TYPE = "application/json"


class Refused(ValueError):
    """A request the receiver will not take: the HTTP ``status`` to answer and the ``reason``
    (one short sentence, sent as ``{"detail": reason}`` as Sentry words its errors). ``unread``:
    bytes of the body the client is still sending, to read and throw away after answering (so
    that it sees the answer rather than a reset connection)."""

    def __init__(self, status: int, reason: str, *, unread: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.unread = unread


def _limit_text() -> str:
    return f"{MAX_BODY_BYTES // (1024 * 1024)} MiB"


# --------------------------------------------------------------------------- framing


def read_body(headers: Message, rfile: BinaryIO) -> bytes:
    """The request body as ``Content-Length`` frames it. Raises :class:`Refused`; after a
    refusal the connection cannot be reused (the body may be partly unread)."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        raise Refused(411, "send the body with a Content-Length; chunked transfer encoding is not accepted")
    values = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not values:
        raise Refused(411, "a POST to the traces endpoint needs a Content-Length header")
    if len(values) > 1:
        raise Refused(400, "the request has several different Content-Length headers")
    text = values.pop()
    if not (text.isascii() and text.isdigit()):
        raise Refused(400, f"Content-Length must be a number of bytes, not {text[:40]!r}")
    if len(text) > _MAX_LENGTH_DIGITS or int(text) > MAX_BODY_BYTES:
        unread = int(text) if len(text) <= _MAX_LENGTH_DIGITS and int(text) <= _DRAIN_LIMIT else 0
        raise Refused(
            413, f"the body ({_size(text)}) is larger than the receiver's limit of {_limit_text()}", unread=unread
        )
    length = int(text)
    body = rfile.read(length) if length else b""
    if len(body) < length:
        raise Refused(400, f"the body ended after {len(body)} of the {length} bytes its Content-Length announced")
    return body


def _size(digits: str) -> str:
    return f"{int(digits):,} bytes" if len(digits) <= _MAX_LENGTH_DIGITS else f"a {len(digits)}-digit number of bytes"


def drain(rfile: BinaryIO, length: int) -> None:
    """Read and forget up to ``length`` bytes, a step at a time, until the client stops sending
    (end of stream, or the socket's timeout, left to the caller to catch)."""
    while length > 0:
        chunk = rfile.read(min(length, INFLATE_STEP))
        if not chunk:
            return
        length -= len(chunk)


# --------------------------------------------------------------------------- decompression


def inflate(raw: bytes, encoding: str | None, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """``raw`` with its ``Content-Encoding`` undone (none, ``identity``, ``gzip``, ``deflate``),
    never holding more than ``limit`` + :data:`INFLATE_STEP` inflated bytes. Raises :class:`Refused`."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return raw
    if name in ("gzip", "x-gzip"):
        return gunzip_one_member(raw, limit=limit)
    if name == "deflate":
        return _inflate(raw, zlib.decompressobj(), "deflate (zlib)", limit)
    raise Refused(415, f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or no encoding")


def gunzip_one_member(raw: bytes, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """Relay reads the first gzip member of a body and nothing after it: a body that is not
    exactly one complete member is refused here (a :class:`Refused`, a ``ValueError``), so that
    tests see what Relay would lose."""
    decompressor = zlib.decompressobj(31)
    body = _inflate(raw, decompressor, "gzip", limit)
    if decompressor.unused_data:
        raise Refused(400, "the body is not exactly one gzip member: bytes follow its end")
    return body


def _inflate(raw: bytes, decompressor: Any, what: str, limit: int) -> bytes:
    out = bytearray()
    pending = raw
    try:
        while not decompressor.eof:
            chunk = decompressor.decompress(pending, INFLATE_STEP)
            before, pending = len(pending), decompressor.unconsumed_tail
            if len(out) + len(chunk) > limit:
                raise Refused(413, f"the {what} body inflates to more than the receiver's limit of {_limit_text()}")
            out += chunk
            if not chunk and len(pending) == before:
                break  # no progress: the input ended before the stream did
    except zlib.error as exc:
        raise Refused(400, f"the body is not valid {what} ({exc})") from None
    if not decompressor.eof:
        raise Refused(400, f"the {what} body is cut short: it ends before its compressed stream does")
    return bytes(out)


# --------------------------------------------------------------------------- decoding


def is_json(content_type: str | None) -> bool:
    """True when ``content_type`` names OTLP/JSON (parameters such as ``charset`` aside)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == _JSON_TYPE


def parse_request(body: bytes, content_type: str | None) -> ExportTraceServiceRequest:
    """The ``ExportTraceServiceRequest`` in ``body``: protobuf (also when no ``Content-Type`` is
    given, as the receiver always took it) or OTLP/JSON. Raises :class:`Refused`."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == _JSON_TYPE:
        return _from_json(body)
    if media and media not in _PROTOBUF_TYPES:
        raise Refused(
            415, f"Content-Type {media!r} is not accepted; send application/x-protobuf or application/json (OTLP/JSON)"
        )
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        why = _first_line(exc)
        raise Refused(400, f"the body is not an OTLP ExportTraceServiceRequest in protobuf ({why})") from None
    return message


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Refused(400, f"the body is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise Refused(400, "an OTLP/JSON body is an object (an ExportTraceServiceRequest), not a JSON array or value")
    _ids_from_hex(data)
    try:
        return json_format.ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise Refused(400, f"the body is not an OTLP ExportTraceServiceRequest in JSON ({_first_line(exc)})") from None


_SPAN_IDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_LINK_IDS = ("traceId", "trace_id", "spanId", "span_id")


def _ids_from_hex(data: Mapping[str, Any]) -> None:
    """OTLP/JSON writes trace and span ids as hex where protobuf's JSON mapping has base64:
    rewrite them, in place, for ``json_format``. A value that is not hex is left for it to read
    as base64 (what early OTLP/JSON clients sent)."""
    for resource_spans in _objects(data, "resourceSpans", "resource_spans"):
        for scope_spans in _objects(resource_spans, "scopeSpans", "scope_spans"):
            for span in _objects(scope_spans, "spans"):
                _rewrite(span, _SPAN_IDS)
                for link in _objects(span, "links"):
                    _rewrite(link, _LINK_IDS)


def _objects(data: Mapping[str, Any], *keys: str) -> list[dict[str, Any]]:
    for key in keys:
        value = data.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


def _rewrite(obj: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and len(value) % 2 == 0:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                continue


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:159] + "\u2026"
