"""A local OTLP/HTTP receiver that behaves like Sentry's OTLP endpoint.

It serves ``/api/<project>/integration/otlp/v1/traces`` (checking the ``X-Sentry-Auth`` key
when one is set) and the plain ``/v1/traces`` path, decodes protobuf or OTLP/JSON, plain, gzip or
deflate, with ``opentelemetry-proto``, and keeps what arrived. It powers the zero-setup demo and
the ``serve`` command, and serves the traces it received as web pages. A subclass that overrides
:meth:`LocalReceiver.respond` can answer like an unhealthy endpoint instead (the tests' fault
injection does so).

Whatever a client sends, the receiver answers and keeps serving: every valid OTLP value type is
accepted anywhere, and a request it will not take gets a 4xx status with a one-line reason
(:mod:`~sentry_llm_callbacks.devtools.intake`), within bounded memory.

Example::

    with LocalReceiver() as receiver:
        slc.configure(dsn=receiver.dsn)
        ...
        slc.flush()
        print(format_trace_tree(receiver.spans))
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from sentry_llm_callbacks._version import __version__
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools import trace_page, waterfall
from sentry_llm_callbacks.devtools.intake import (
    MAX_BODY_BYTES,
    Refused,
    drain,
    gunzip_one_member,
    inflate,
    is_json,
    parse_request,
    read_body,
)
from sentry_llm_callbacks.devtools.trees import group_traces, walk

__all__ = [
    "DEFAULT_KEY",
    "MAX_BODY_BYTES",
    "SERVER_NAME",
    "LocalReceiver",
    "ReceivedLink",
    "ReceivedSpan",
    "Reply",
    "decode_request",
    "format_trace_tree",
    "group_traces",
    "gunzip_one_member",
    "spans_of",
]

DEFAULT_KEY = "0123456789abcdef0123456789abcdef"
#: The ``Server`` header of every answer (``SERVER_NAME/VERSION``): how a client tells this
#: receiver from another endpoint on the same machine.
SERVER_NAME = "sentry-llm-callbacks-receiver"
#: Seconds a connection may stay silent (mid-request or between requests) before it is closed:
#: a client that stops sending holds a thread that long at most.
IDLE_TIMEOUT = 60.0
#: Seconds of silence after which the rest of a refused body is no longer waited for.
DRAIN_TIMEOUT = 2.0
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
    """An OTLP ``AnyValue`` as Python: str, bool, int, float, bytes, a list, a dict, or None when empty."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_request(body: bytes, content_type: str | None = None) -> list[ReceivedSpan]:
    """The spans of an (uncompressed) ``ExportTraceServiceRequest``: protobuf, or OTLP/JSON when
    ``content_type`` says so. Raises :class:`~sentry_llm_callbacks.devtools.intake.Refused` (a
    ``ValueError``) for a body that does not parse."""
    return spans_of(parse_request(body, content_type))


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def spans_of(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Every span of ``request``, with its resource's attributes; values of every OTLP type."""
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
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
                        attributes=_attributes(span.attributes),
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                        resource=resource,
                        parent_is_remote=remote,
                        links=[
                            ReceivedLink(
                                trace_id=link.trace_id.hex(),
                                span_id=link.span_id.hex(),
                                sampled=bool(link.flags & 0x01),
                                attributes=_attributes(link.attributes),
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

    def _record(self, body: bytes, spans: list[ReceivedSpan], headers: dict[str, str]) -> None:
        with self._cond:
            self._store.spans.extend(spans)
            self._store.bodies.append(body)
            self._store.headers.append(headers)
            self._cond.notify_all()
        if self.on_spans is not None and spans:
            try:
                self.on_spans(spans)
            except Exception as exc:  # what arrived is kept and acknowledged whatever showing it does
                print(f"{SERVER_NAME}: could not show the spans that arrived ({exc!r})", file=sys.stderr, flush=True)

    # -- serving ------------------------------------------------------------------------

    def start(self) -> LocalReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = IDLE_TIMEOUT

            def version_string(self) -> str:
                return f"{SERVER_NAME}/{__version__}"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, text = receiver._page_or_error(self.path)
                payload = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                try:
                    raw = read_body(self.headers, self.rfile)
                except Refused as refused:
                    # The body is unread or cut short: the connection cannot carry another request.
                    self.close_connection = True
                    self._answer(receiver._refuse_unread(refused), Connection="close")
                    if refused.unread:  # a client still sending reads the answer when it is done
                        self.connection.settimeout(DRAIN_TIMEOUT)
                        with contextlib.suppress(OSError):
                            drain(self.rfile, refused.unread)
                    return
                self._answer(receiver._post(self.path, {k.lower(): v for k, v in self.headers.items()}, raw))

            def _answer(self, reply: Reply, **more: str) -> None:
                self.send_response(reply.status)
                extra = {**reply.headers, **more}
                self.send_header("Content-Type", extra.pop("Content-Type", "application/x-protobuf"))
                self.send_header("Content-Length", str(len(reply.payload)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(reply.payload)

        self._server = _QuietServer((self.host, self.port), Handler)
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

    def _post(self, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """The answer to a POST whose body was read: Sentry's checks of path and key, then
        :meth:`respond`. ``headers``' names are in lower case."""
        self._store.requests += 1
        status, reason = self._check(path, headers)
        reply = self.respond(raw, headers) if status == 200 else _refusal(Refused(status, reason))
        if reply.status != 200:
            self._store.rejected += 1
        return reply

    def _refuse_unread(self, refused: Refused) -> Reply:
        """The answer to a POST whose body could not be read (its framing, or its size)."""
        self._store.requests += 1
        self._store.rejected += 1
        return _refusal(refused)

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
        answer in the request's encoding; a 4xx with its reason (:class:`Refused`) when the body
        cannot be decompressed or decoded, or is over :data:`MAX_BODY_BYTES` once inflated.

        ``headers`` are the request's, their names in lower case. A subclass may override this
        to answer like an unhealthy endpoint (hang, 429, 5xx), calling ``super().respond`` for
        the healthy answer::

            class Hanging(LocalReceiver):
                def respond(self, body, headers):
                    time.sleep(30)
                    return super().respond(body, headers)
        """
        content_type = headers.get("content-type")
        try:
            inflated = inflate(body, headers.get("content-encoding"))
            spans = spans_of(parse_request(inflated, content_type))
        except Refused as refused:
            return _refusal(refused)
        self._record(inflated, spans, dict(headers))
        if is_json(content_type):
            return Reply(200, {"Content-Type": "application/json"}, b"{}")
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

    def _page_or_error(self, path: str) -> tuple[int, str]:
        """:meth:`page`, or a short 500 page when it cannot be drawn (never a traceback)."""
        try:
            return self.page(path)
        except Exception as exc:
            why = html.escape(type(exc).__name__)
            text = f'<p>This page could not be drawn ({why}). <a href="/">All traces</a></p>'
            return 500, waterfall.page("Error", text)

    def _check(self, path: str, headers: Mapping[str, str]) -> tuple[int, str]:
        """What Sentry answers before reading the body, with why: 404 for another path, 401
        without a key, 403 for another key; ``(200, "")`` to go on."""
        path = path.split("?", 1)[0].rstrip("/")
        if path == "/v1/traces":
            return 200, ""
        expected = f"/api/{self.project_id}/integration/otlp/v1/traces"
        if path != expected:
            return 404, f"no OTLP traces endpoint here; POST to /v1/traces or {expected}"
        if self.public_key is None:
            return 200, ""
        auth = headers.get("x-sentry-auth") or ""
        if not auth:
            return 401, "missing the X-Sentry-Auth header with the DSN's sentry_key"
        if f"sentry_key={self.public_key}" not in auth:
            return 403, "the sentry_key of X-Sentry-Auth is not this receiver's key"
        return 200, ""


def _refusal(refused: Refused) -> Reply:
    """A refusal as Sentry words one: its status and ``{"detail": reason}``."""
    payload = json.dumps({"detail": refused.reason}).encode("utf-8")
    return Reply(refused.status, {"Content-Type": "application/json"}, payload)


class _QuietServer(ThreadingHTTPServer):
    """Never prints a traceback: a client that goes away mid-answer is its own business, and a
    request the handler could not answer has already been told so (or lost its connection)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        print(f"{SERVER_NAME}: a request from {client_address[0]} failed ({exc!r})", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- showing traces


#: Characters of one name or value shown on a line of the text tree.
_SHOWN_CHARS = 200


def _shown(value: Any) -> str:
    """``value`` on one line of a terminal: any OTLP value type (bytes as ``b'..'``, arrays and
    key-value lists as Python shows them), control characters escaped (a span named with an
    escape sequence cannot redraw the terminal), cut to :data:`_SHOWN_CHARS`."""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, bytes) else str(value)
    text = text[: _SHOWN_CHARS * 2]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "\u2026"


def _finite(value: Any) -> float | None:
    """A number that can be formatted as one (not a bool, a string, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _describe(span: ReceivedSpan) -> str:
    """One line of the text tree; whatever type each attribute arrived as, it is shown."""
    a = span.attributes
    bits = [f"{span.duration_s * 1000:.1f} ms"]
    if span.op:
        bits.insert(0, _shown(span.op))
    model = a.get(attr.RESPONSE_MODEL) or a.get(attr.REQUEST_MODEL)
    if model:
        bits.append(_shown(model))
    if a.get(attr.PROMPT_NAME):
        bits.append("prompt " + _shown(waterfall.fmt_prompt(_shown(a[attr.PROMPT_NAME]), a.get(attr.PROMPT_VERSION))))
    if attr.USAGE_INPUT_TOKENS in a or attr.USAGE_OUTPUT_TOKENS in a:
        tokens_in, tokens_out = (_shown(a.get(key, "?")) for key in (attr.USAGE_INPUT_TOKENS, attr.USAGE_OUTPUT_TOKENS))
        bits.append(f"tokens {tokens_in} in / {tokens_out} out")
    if attr.COST_TOTAL in a:
        cost = _finite(a[attr.COST_TOTAL])
        bits.append(f"${cost:.6f}" if cost is not None else f"cost {_shown(a[attr.COST_TOTAL])}")
    if span.status_code == 2:
        bits.append(f"ERROR {_shown(span.status_message)}")
    return f"{_shown(span.name)}  [{', '.join(bits)}]"


def format_trace_tree(spans: Iterable[ReceivedSpan]) -> str:
    """Each trace as an indented tree: name, op, duration, model, prompt, tokens, cost, status."""
    lines: list[str] = []
    for trace_id, members in group_traces(spans).items():
        rows = walk(members)
        first = rows[0][1]  # the earliest root
        extras = [
            f"{key}={_shown(first.attributes[key])}"
            for key in (attr.USER_ID, attr.SESSION_ID, attr.SENTRY_ENVIRONMENT, attr.SENTRY_RELEASE)
            if key in first.attributes
        ]
        lines.append(f"trace {trace_id}" + (f"  ({', '.join(extras)})" if extras else ""))
        lines.extend("  " * (depth + 1) + _describe(span) for depth, span in rows)
    return "\n".join(lines)
