"""The app's own Sentry SDK in tests: a Sentry-like envelope endpoint on 127.0.0.1, and the few
calls whose spelling differs between sentry-sdk 2.x and 3.x (detected, not read off the version)."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sentry_sdk

#: sentry-sdk 3 is spans-first: ``start_span`` opens a segment, ``start_transaction`` is gone.
HAS_TRANSACTIONS = hasattr(sentry_sdk, "start_transaction")
SDK_MAJOR = int(sentry_sdk.VERSION.split(".")[0])


@contextlib.contextmanager
def app_transaction(name: str) -> Iterator[Any]:
    """The app's own root span (a transaction in sentry-sdk 2.x, a segment span in 3.x)."""
    if HAS_TRANSACTIONS:
        with sentry_sdk.start_transaction(name=name) as transaction:
            yield transaction
    else:
        with sentry_sdk.start_span(name=name) as span:
            yield span


def ai_integrations() -> list[Any]:
    """sentry-sdk's own LangChain and LangGraph integrations, those this sentry-sdk has (its
    LangGraph one came after 2.20)."""
    import importlib

    found = []
    for module, name in (("langchain", "LangchainIntegration"), ("langgraph", "LanggraphIntegration")):
        try:
            found.append(getattr(importlib.import_module(f"sentry_sdk.integrations.{module}"), name)())
        except (ImportError, AttributeError):
            continue
    return found


def drop_everything() -> dict[str, Any]:
    """``sentry_sdk.init`` options that keep every event and span the SDK makes in the process."""
    options: dict[str, Any] = {"before_send": lambda event, hint: None}
    if HAS_TRANSACTIONS:
        options["before_send_transaction"] = lambda event, hint: None
    return options


@dataclass
class EnvelopeEndpoint:
    """Accepts ``POST /api/<project>/envelope/`` like Sentry and keeps the error events."""

    events: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def dsn(self) -> str:
        assert self.server is not None
        return f"http://publickey@127.0.0.1:{self.server.server_port}/42"

    def start(self) -> EnvelopeEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.path == "/api/42/envelope/"
                if ok:
                    endpoint.receive(body, self.headers.get("Content-Encoding", ""))
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def receive(self, body: bytes, encoding: str) -> None:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        self.raw.append(body)
        for item_type, payload in parse_envelope(body):
            if item_type == "event":
                self.events.append(json.loads(payload))

    def ours(self) -> list[dict[str, Any]]:
        """The events this package captured (its mechanism), not the app's or the SDK's own."""
        return [e for e in self.events if mechanism_of(e) == "sentry_llm_callbacks"]


def parse_envelope(body: bytes) -> Iterator[tuple[str, bytes]]:
    """(item type, payload) for each item of an envelope: a header line, then per item a header
    line and a payload of ``length`` bytes (or up to the next newline)."""
    _, _, rest = body.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        length = header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1 :]
        yield header.get("type", ""), payload


def mechanism_of(event: dict[str, Any]) -> str | None:
    values = event.get("exception", {}).get("values") or [{}]
    return values[-1].get("mechanism", {}).get("type")
