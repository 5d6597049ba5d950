"""A local OTLP/HTTP receiver that behaves like Sentry's OTLP endpoint.

It serves ``/api/<project>/integration/otlp/v1/traces`` (checking the ``X-Sentry-Auth`` key
when one is set) and the plain ``/v1/traces`` path, decodes gzip + protobuf with
``opentelemetry-proto``, and keeps what arrived. It powers the zero-setup demo and the
``serve`` command, and serves the traces it received as web pages. A subclass that overrides
:meth:`LocalReceiver.respond` can answer like an unhealthy endpoint instead (the tests' fault
injection does so).

Example::

    with LocalReceiver() as receiver:
        slc.configure(dsn=receiver.dsn)
        ...
        slc.flush()
        print(format_trace_tree(receiver.spans))
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools import trace_page, waterfall
from sentry_llm_callbacks.devtools.trees import group_traces, walk

__all__ = [
    "DEFAULT_KEY",
    "LocalReceiver",
    "ReceivedLink",
    "ReceivedSpan",
    "Reply",
    "decode_request",
    "format_trace_tree",
    "group_traces",
    "gunzip_one_member",
]

DEFAULT_KEY = "0123456789abcdef0123456789abcdef"
_TRACE_PATH = re.compile(r"/trace/([0-9a-fA-F]{32})/?")


@dataclass
class ReceivedLink:
    """One span link as it arrived: the linked span, whether the link says it was sampled (the
    W3C sampled bit of its flags, as Sentry reads it), and the link's attributes."""

    trace_id: str
    span_id: str
    sampled: bool
    attributes: dict[str, Any]


@dataclass
class ReceivedSpan:
    """One span as it arrived over the wire."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    parent_is_remote: bool | None = None
    links: list[ReceivedLink] = field(default_factory=list)

    @property
    def parent_id(self) -> str:
        """The parent's span id (``parent_span_id``), under the name the tree walker reads."""
        return self.parent_span_id

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def op(self) -> str:
        return str(self.attributes.get(attr.SENTRY_OP, ""))


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_request(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                remote = None
                if span.parent_span_id:
                    # OTLP flags bit 8 says "has is_remote info", bit 9 says "is remote".
                    remote = bool(span.flags & 0x200) if span.flags & 0x100 else None
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={kv.key: any_value(kv.value) for kv in span.attributes},
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=[(e.name, {kv.key: any_value(kv.value) for kv in e.attributes}) for e in span.events],
                        resource=resource,
                        parent_is_remote=remote,
                        links=[
                            ReceivedLink(
                                trace_id=link.trace_id.hex(),
                                span_id=link.span_id.hex(),
                                sampled=bool(link.flags & 0x01),
                                attributes={kv.key: any_value(kv.value) for kv in link.attributes},
                            )
                            for link in span.links
                        ],
                    )
                )
    return spans


class Reply(NamedTuple):
    """The receiver's answer to one POST; ``Content-Type`` is protobuf unless ``headers`` say otherwise."""

    status: int
    headers: dict[str, str]
    payload: bytes


@dataclass
class _Store:
    spans: list[ReceivedSpan] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0
    rejected: int = 0


class LocalReceiver:
    """Sentry-like OTLP/HTTP endpoint on 127.0.0.1 (a free port unless ``port`` is given)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        project_id: str = "1",
        public_key: str | None = DEFAULT_KEY,
        on_spans: Callable[[list[ReceivedSpan]], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.project_id = project_id
        self.public_key = public_key
        self.on_spans = on_spans
        self._store = _Store()
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- addresses ----------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        return f"http://{self.public_key or 'public'}@{self.host}:{self.port}/{self.project_id}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/api/{self.project_id}/integration/otlp/v1/traces"

    @property
    def plain_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/v1/traces"

    # -- what arrived -------------------------------------------------------------------

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._store.spans)

    @property
    def bodies(self) -> list[bytes]:
        with self._cond:
            return list(self._store.bodies)

    @property
    def headers(self) -> list[dict[str, str]]:
        with self._cond:
            return list(self._store.headers)

    @property
    def requests(self) -> int:
        return self._store.requests

    def clear(self) -> None:
        with self._cond:
            self._store = _Store()

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``count`` spans arrived (or the timeout); returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._store.spans) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._store.spans)

    def _record(self, body: bytes, headers: dict[str, str]) -> None:
        spans = decode_request(body)
        with self._cond:
            self._store.spans.extend(spans)
            self._store.bodies.append(body)
            self._store.headers.append(headers)
            self._cond.notify_all()
        if self.on_spans is not None and spans:
            self.on_spans(spans)

    # -- serving ------------------------------------------------------------------------

    def start(self) -> LocalReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, text = receiver.page(self.path)
                payload = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                receiver._store.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._check(self.path, headers)
                reply = receiver.respond(raw, headers) if status == 200 else Reply(status, {}, b"")
                if reply.status != 200:
                    receiver._store.rejected += 1
                self.send_response(reply.status)
                extra = dict(reply.headers)
                self.send_header("Content-Type", extra.pop("Content-Type", "application/x-protobuf"))
                self.send_header("Content-Length", str(len(reply.payload)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(reply.payload)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sentry-llm-callbacks-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """The answer to a POST that reached the traces path with the right key: the body
        (``headers``' ``content-encoding`` undone) decoded and kept, and OTLP's empty success
        answer; HTTP 400 when the body cannot be decompressed or decoded.

        ``headers`` are the request's, their names in lower case. A subclass may override this
        to answer like an unhealthy endpoint (hang, 429, 5xx), calling ``super().respond`` for
        the healthy answer::

            class Hanging(LocalReceiver):
                def respond(self, body, headers):
                    time.sleep(30)
                    return super().respond(body, headers)
        """
        try:
            self._record(_decompress(body, headers.get("content-encoding")), dict(headers))
        except Exception:
            return Reply(400, {}, b"")
        return Reply(200, {}, ExportTraceServiceResponse().SerializeToString())

    #: Makes the link to a trace elsewhere (its page in Sentry) that its page shows; None: no link.
    trace_link: Callable[[str], str | None] | None = None

    def page(self, path: str) -> tuple[int, str]:
        """The local web page (see :mod:`~sentry_llm_callbacks.devtools.trace_page`): ``/`` lists
        the traces received (newest first), ``/trace/<id>`` draws one as a waterfall with a
        details panel (``?open=all`` with every row's input and output preview opened)."""
        path, _, query = path.partition("?")
        traces = group_traces(self.spans)
        if path in ("/", "/index.html"):
            return 200, trace_page.trace_list(traces, endpoint=self.plain_endpoint, dsn=self.dsn)
        match = _TRACE_PATH.fullmatch(path)
        if match is None:
            return trace_page.not_found()
        trace_id = match.group(1).lower()
        link = self.trace_link(trace_id) if self.trace_link is not None else None
        return trace_page.trace_view(trace_id, traces.get(trace_id), expanded="open=all" in query.split("&"), link=link)

    def _check(self, path: str, headers: Mapping[str, str]) -> int:
        """What Sentry answers before reading the body: 404 for another path, 401 without a key, 403 for another key."""
        path = path.split("?", 1)[0].rstrip("/")
        if path == "/v1/traces":
            return 200
        expected = f"/api/{self.project_id}/integration/otlp/v1/traces"
        if path != expected:
            return 404
        if self.public_key is None:
            return 200
        auth = headers.get("x-sentry-auth") or ""
        if not auth:
            return 401
        if f"sentry_key={self.public_key}" not in auth:
            return 403
        return 200


def _decompress(raw: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gunzip_one_member(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    return raw


def gunzip_one_member(raw: bytes) -> bytes:
    """Relay reads the first gzip member of a body and nothing after it: a body that is not
    exactly one complete member is refused here, so that tests see what Relay would lose."""
    decompressor = zlib.decompressobj(31)
    body = decompressor.decompress(raw)
    if not decompressor.eof or decompressor.unused_data:
        raise ValueError("the body is not exactly one complete gzip member")
    return body


# --------------------------------------------------------------------------- showing traces


def _describe(span: ReceivedSpan) -> str:
    a = span.attributes
    bits = [f"{span.duration_s * 1000:.1f} ms"]
    if span.op:
        bits.insert(0, span.op)
    model = a.get(attr.RESPONSE_MODEL) or a.get(attr.REQUEST_MODEL)
    if model:
        bits.append(str(model))
    if a.get(attr.PROMPT_NAME):
        bits.append("prompt " + waterfall.fmt_prompt(str(a[attr.PROMPT_NAME]), a.get(attr.PROMPT_VERSION)))
    if attr.USAGE_INPUT_TOKENS in a or attr.USAGE_OUTPUT_TOKENS in a:
        bits.append(f"tokens {a.get(attr.USAGE_INPUT_TOKENS, '?')} in / {a.get(attr.USAGE_OUTPUT_TOKENS, '?')} out")
    if attr.COST_TOTAL in a:
        bits.append(f"${a[attr.COST_TOTAL]:.6f}")
    if span.status_code == 2:
        bits.append(f"ERROR {span.status_message}")
    return f"{span.name}  [{', '.join(bits)}]"


def format_trace_tree(spans: Iterable[ReceivedSpan]) -> str:
    """Each trace as an indented tree: name, op, duration, model, prompt, tokens, cost, status."""
    lines: list[str] = []
    for trace_id, members in group_traces(spans).items():
        rows = walk(members)
        first = rows[0][1]  # the earliest root
        extras = [
            f"{key}={first.attributes[key]}"
            for key in (attr.USER_ID, attr.SESSION_ID, attr.SENTRY_ENVIRONMENT, attr.SENTRY_RELEASE)
            if key in first.attributes
        ]
        lines.append(f"trace {trace_id}" + (f"  ({', '.join(extras)})" if extras else ""))
        lines.extend("  " * (depth + 1) + _describe(span) for depth, span in rows)
    return "\n".join(lines)
