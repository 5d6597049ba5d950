"""Why the export pipeline is ours, not OpenTelemetry's BatchSpanProcessor + OTLPSpanExporter.

Four measurements, each on the same spans through both pipelines, against the local receiver:

1. flush deadline with the endpoint hanging: how long ``flush(2 s)`` / ``force_flush(2000)`` blocks;
2. batches kept across an outage: spans delivered after the endpoint was down for a while;
3. request size against Sentry's 12 MiB body limit: the largest body each sends for a batch of
   spans with large content;
4. encoding cost: spans/s encoding the same batch with :mod:`sentry_llm_callbacks.export.otlp` and with
   ``opentelemetry-exporter-otlp-proto-common``.

    python benchmarks/pipeline_vs_sdk.py            # all four
    python benchmarks/pipeline_vs_sdk.py encode     # one of: flush, outage, size, encode
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.core.recorder import CHAIN
from sentry_llm_callbacks.devtools.receiver import DEFAULT_KEY, LocalReceiver, Reply
from sentry_llm_callbacks.export.otlp import encode_request

SENTRY_BODY_LIMIT = 12 * 1024 * 1024
RESOURCE = Resource.create({"service.name": "bench"})
SCOPE = InstrumentationScope("bench", "1")


class HangingReceiver(LocalReceiver):
    """The local receiver, waiting ``hang`` seconds before it answers each request."""

    hang = 0.0

    def respond(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        time.sleep(self.hang)
        return super().respond(body, headers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sdk_span(i: int, content: str = "") -> ReadableSpan:
    """A span shaped like ours: a dozen attributes, one of them content."""
    attributes: dict[str, Any] = {
        "sentry.op": "gen_ai.chat",
        "sentry.description": f"chat model-{i % 3}",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": f"model-{i % 3}",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 120 + i,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.total_tokens": 150 + i,
        "gen_ai.request.temperature": 0.2,
        "user.id": "user_12345",
        "session.id": "session_abc",
        "gen_ai.input.messages": content or f'[{{"role":"user","parts":[{{"type":"text","content":"q {i}"}}]}}]',
    }
    return ReadableSpan(
        name=f"chat model-{i % 3}",
        context=SpanContext(0x1234 + i // 10, 0x99 + i, False, TraceFlags(1)),
        parent=None,
        resource=RESOURCE,
        attributes=attributes,
        kind=SpanKind.INTERNAL,
        start_time=1_700_000_000_000_000_000 + i,
        end_time=1_700_000_000_100_000_000 + i,
        instrumentation_scope=SCOPE,
    )


def official(endpoint: str) -> BatchSpanProcessor:
    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))


def ours_make_spans(count: int) -> None:
    recorder = _state.recorder
    for i in range(count):
        key = ("bench", i, time.monotonic_ns())
        recorder.start_run(
            key, None, kind=CHAIN, name=f"run {i}", explicit_name=True, handler_layer=None, run_metadata=None
        )
        recorder.end_run(key)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


# --------------------------------------------------------------------------- 1. flush deadline


def flush_deadline(hang: float = 20.0, deadline: float = 2.0) -> None:
    print(f"\n## 1. flush({deadline:g} s) with the endpoint hanging {hang:g} s per request")
    with HangingReceiver() as receiver:
        receiver.hang = hang
        slc.configure(dsn=receiver.dsn)
        ours_make_spans(50)
        ok, took = timed(lambda: slc.flush(timeout=deadline))
        print(f"ours:     flush returned {ok} after {took:.2f} s")
        _state.reset()
        bsp = official(receiver.plain_endpoint)
        for i in range(50):
            bsp.on_end(sdk_span(i))
        ok, took = timed(lambda: bsp.force_flush(timeout_millis=int(deadline * 1000)))
        print(f"official: force_flush returned {ok} after {took:.2f} s")
        receiver.hang = 0.0
        bsp.shutdown()


# --------------------------------------------------------------------------- 2. outage


def outage(down: float = 20.0, spans: int = 200) -> None:
    print(f"\n## 2. endpoint refusing connections for {down:g} s, {spans} spans made at its start")
    port = free_port()
    dsn = f"http://{DEFAULT_KEY}@127.0.0.1:{port}/1"
    slc.configure(dsn=dsn)
    ours_make_spans(spans)
    bsp = official(f"http://127.0.0.1:{port}/v1/traces")
    for i in range(spans):
        bsp.on_end(sdk_span(i))
    time.sleep(down)
    with LocalReceiver(port=port) as receiver:
        _state.get_pipeline().processor.backoff.success()  # retry now rather than at the next backoff step
        slc.flush(timeout=15)
        bsp.force_flush()
        time.sleep(2)
        ours = sum(1 for s in receiver.spans if s.name.startswith("run "))
        theirs = sum(1 for s in receiver.spans if s.name.startswith("chat "))
    print(f"ours:     {ours}/{spans} delivered after the outage (stats: {slc.stats()['spans_dropped']} dropped)")
    print(f"official: {theirs}/{spans} delivered after the outage")
    bsp.shutdown()
    _state.reset()


# --------------------------------------------------------------------------- 3. body size


def body_size(spans: int = 512, content_chars: int = 40_000) -> None:
    print(f"\n## 3. one batch of {spans} spans with {content_chars:,}-character content each")
    import random

    rng = random.Random(1)
    content = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(content_chars))
    batch = [sdk_span(i, content + str(i)) for i in range(spans)]
    with LocalReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.plain_endpoint)
        exporter.export(batch)
        theirs = [len(b) for b in receiver.bodies]
        receiver.clear()
        slc.configure(otlp_endpoint=receiver.plain_endpoint)
        processor = _state.get_pipeline().processor
        for span in batch:
            processor.on_end(span)
        slc.flush(timeout=30)
        ours = [len(b) for b in receiver.bodies]
        _state.reset()
    mib = 1024 * 1024
    print(
        f"official: {len(theirs)} request(s), largest {max(theirs) / mib:.1f} MiB on the wire "
        f"(no compression by default; limit 64 MiB), {sum(b > SENTRY_BODY_LIMIT for b in theirs)} over 12 MiB"
    )
    print(
        f"ours:     {len(ours)} request(s), largest {max(ours) / mib:.1f} MiB uncompressed "
        f"(gzip on the wire; kept under 10 MiB), {sum(b > SENTRY_BODY_LIMIT for b in ours)} over 12 MiB"
    )


# --------------------------------------------------------------------------- 4. encoding


def encoding(spans: int = 512, rounds: int = 20) -> None:
    print(f"\n## 4. encoding the same batch of {spans} spans, best of {rounds}")
    batch = [sdk_span(i) for i in range(spans)]
    assert len(encode_request(batch)) > 0
    results = {}
    for name, encode in (
        ("ours", lambda: encode_request(batch)),
        ("official", lambda: encode_spans(batch).SerializeToString()),
    ):
        best = min(timed(encode)[1] for _ in range(rounds))
        results[name] = spans / best
        print(f"{name + ':':9} {spans / best:,.0f} spans/s ({best * 1e6 / spans:.1f} us per span)")
    print(f"ratio:    {results['ours'] / results['official']:.1f}x")


def main() -> None:
    parts = {"flush": flush_deadline, "outage": outage, "size": body_size, "encode": encoding}
    chosen = sys.argv[1:] or list(parts)
    print(f"Python {sys.version.split()[0]}, opentelemetry-sdk / exporter as installed")
    for name in chosen:
        parts[name]()


if __name__ == "__main__":
    main()
