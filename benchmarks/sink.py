"""A counting sink for the benchmarks: accepts OTLP/HTTP (protobuf or JSON) on any path and Sentry
envelopes, and counts the spans that really arrived. It can also misbehave (refuse, hang, 429, 5xx)."""

from __future__ import annotations

import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def _decompress(raw: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":  # one member only, as Relay reads it: spans in a second one are not counted
        decompressor = zlib.decompressobj(31)
        return decompressor.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        return brotli.decompress(raw)
    return raw


def count_spans(path: str, content_type: str, body: bytes) -> int:
    if "/envelope" in path:  # Sentry SDK: a transaction is one span plus its children
        count = 0
        lines = body.split(b"\n")
        for i, line in enumerate(lines[1:], start=1):
            try:
                header = json.loads(line)
            except ValueError:
                continue
            if isinstance(header, dict) and header.get("type") in ("transaction", "span") and i + 1 < len(lines):
                try:
                    item = json.loads(lines[i + 1])
                except ValueError:
                    continue
                count += 1 + len(item.get("spans", [])) if header["type"] == "transaction" else 1
        return count
    if "json" in content_type:
        data = json.loads(body or b"{}")
        return sum(len(ss.get("spans", [])) for rs in data.get("resourceSpans", []) for ss in rs.get("scopeSpans", []))
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


class Sink:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode  # ok | hang | 429 | 503
        self.spans = 0
        self.requests = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    sink.requests += 1
                if sink.mode == "hang":
                    time.sleep(10)
                status = {"429": 429, "503": 503}.get(sink.mode, 200)
                if status == 200:
                    try:
                        n = count_spans(
                            self.path,
                            self.headers.get("Content-Type") or "",
                            _decompress(raw, self.headers.get("Content-Encoding")),
                        )
                    except Exception:
                        n = 0
                    with sink._lock:
                        sink.spans += n
                payload = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "5")
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self.do_POST()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
