"""CPU time of our two halves on their own, steady enough to decide by on a shared machine.

    python benchmarks/cpu.py render [--workload lg_agent] [--invocations 300] [--profile out.prof]
    python benchmarks/cpu.py encode [--workload lg_agent] [--invocations 300] [--profile out.prof]
    python benchmarks/cpu.py callbacks [--workload lg_agent] [--invocations 2000] [--profile out.prof]
    python benchmarks/cpu.py callbacks --workload lc_chain --without counters,backlog_bound
    python benchmarks/cpu.py upb [--workload lg_agent] [--invocations 300]

``render``: records the spans of N invocations (content captured, not yet rendered), then times
what the export thread does with them, ``finished_attributes`` in chunks of 64 spans as the
export thread takes them, with orjson and with the standard encoder; thread CPU time, the best of 15
repetitions, per invocation. ``encode``: the same spans, whole, taken through what the export
thread does with each chunk of 64, content rendered and the OTLP request encoded (in a tree
whose encoder does not render, ``finish_span`` first, as that tree's export thread did), and
compressed. ``callbacks``: records the callbacks LangChain makes for one
invocation and replays them on our handler (fresh run ids each time), timing the application
thread's CPU; with ``--profile``, a cProfile of those replays (our functions by total time);
with ``--without``, the same with some of the per-span and per-trace bookkeeping turned off
(:data:`WITHOUT`), to measure what each piece costs (never a configuration to run with).
``upb``: the same spans with their content rendered (as the extra exporters get them), encoded
three ways, each checked to give the same message: our encoder, the protobuf runtime's generated
OTLP classes filled directly (``upb``, in C, where installed), and OpenTelemetry's encoder.

To compare two trees, run the same command with ``PYTHONPATH`` pointing at each.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from sink import Sink
from workloads import LANGCHAIN_WORKLOADS, WORKLOADS

CHUNK = 64  # spans the export thread renders with one cache


def record(workload: str, invocations: int) -> list[dict[str, Any]]:
    """The attributes of every span of ``invocations`` runs, as the export thread receives them."""
    from sentry_llm_callbacks.export.taps import TAPS

    captured: list[dict[str, Any]] = []

    def tap(span: Any) -> None:
        captured.append(dict(span._attributes))

    run, config = traced(workload)
    for _ in range(10):
        run(config)
    TAPS.add(tap)
    try:
        for _ in range(invocations):
            run(config)
    finally:
        TAPS.remove(tap)
    return captured


def traced(workload: str) -> tuple[Any, dict[str, Any]]:
    import sentry_llm_callbacks as slc

    sink = Sink()
    slc.configure(otlp_endpoint=f"http://127.0.0.1:{sink.port}/v1/traces")
    run = WORKLOADS[workload]()
    if workload in LANGCHAIN_WORKLOADS:
        from sentry_llm_callbacks.langchain import SentryCallbackHandler

        return run, {"callbacks": [SentryCallbackHandler()]}
    slc.set_global_handler(frameworks=("llamaindex",))
    return run, {}


def render_once(spans: list[dict[str, Any]]) -> int:
    from sentry_llm_callbacks.core.content import RenderCache, finished_attributes

    started = time.thread_time_ns()
    for i in range(0, len(spans), CHUNK):
        cache = RenderCache()
        for attributes in spans[i : i + CHUNK]:
            finished_attributes(attributes, cache)
    return time.thread_time_ns() - started


def profile(work: Any, path: str) -> None:
    """cProfile five runs of ``work`` into ``path``, and print its functions by total time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        work()
    profiler.disable()
    profiler.dump_stats(path)
    pstats.Stats(path).sort_stats("tottime").print_stats(30)


def render(args: argparse.Namespace) -> None:
    from sentry_llm_callbacks.core import content

    spans = record(args.workload, args.invocations)
    fast = getattr(content, "_FAST", None)
    variants = {"orjson": True, "stdlib": False} if fast else {"as installed": fast}
    times: dict[str, list[int]] = {name: [] for name in variants}
    gc.disable()
    for _ in range(15):
        for name, flag in variants.items():
            if flag is not None:
                content._FAST = flag
            times[name].append(render_once(spans))
    if args.profile:  # with orjson where installed, as the export thread renders
        content._FAST = bool(fast)
        profile(lambda: render_once(spans), args.profile)
    for name, values in times.items():
        print(
            f"render {args.workload}: {name:12} best {min(values) / args.invocations / 1e3:7.1f} us, "
            f"median {statistics.median(values) / args.invocations / 1e3:7.1f} us CPU per invocation "
            f"({len(spans) / args.invocations:.0f} spans)"
        )


def record_spans(workload: str, invocations: int) -> list[Any]:
    """The finished spans of ``invocations`` runs, their content not yet rendered."""
    from sentry_llm_callbacks.export.taps import TAPS

    captured: list[Any] = []
    run, config = traced(workload)
    for _ in range(10):
        run(config)
    TAPS.add(captured.append)
    try:
        for _ in range(invocations):
            run(config)
    finally:
        TAPS.remove(captured.append)
    return captured


def encode_once(spans: list[Any]) -> tuple[int, int, int]:
    """Thread CPU of rendering and encoding ``spans`` in chunks, of compressing the result, and
    the encoded size."""
    import inspect

    from sentry_llm_callbacks.core.content import RenderCache
    from sentry_llm_callbacks.export.compression import GZIP
    from sentry_llm_callbacks.export.otlp import encode_request

    renders_itself = len(inspect.signature(encode_request).parameters) > 1
    started = time.thread_time_ns()
    pieces = []
    for i in range(0, len(spans), CHUNK):
        chunk = spans[i : i + CHUNK]
        if renders_itself:
            pieces.append(encode_request(chunk, RenderCache()))
        else:
            from sentry_llm_callbacks.core.finishing import finish_spans

            pieces.append(encode_request(finish_spans(chunk)))
    encoded = time.thread_time_ns()
    body = b"".join(pieces)
    for i in range(0, len(body), 128 * 1024):
        GZIP.segment(body[i : i + 128 * 1024])
    return encoded - started, time.thread_time_ns() - encoded, len(body)


def encode(args: argparse.Namespace) -> None:
    spans = record_spans(args.workload, args.invocations)
    gc.disable()
    runs = [encode_once(spans) for _ in range(15)]
    if args.profile:
        profile(lambda: encode_once(spans), args.profile)
    per = args.invocations * 1e3
    print(
        f"encode {args.workload}: render + encode best {min(r[0] for r in runs) / per:7.1f} us, median "
        f"{statistics.median(r[0] for r in runs) / per:7.1f} us; gzip best {min(r[1] for r in runs) / per:5.1f} us "
        f"CPU per invocation ({len(spans) / args.invocations:.0f} spans, {runs[0][2] / args.invocations:.0f} bytes)"
    )


class Recording:
    """The callbacks LangChain makes for one invocation, to replay on our handler alone."""

    def __init__(self, workload: str) -> None:
        from langchain_core.callbacks import BaseCallbackHandler

        calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.calls = calls

        class Recorder(BaseCallbackHandler):
            run_inline = True

            def __getattribute__(self, name: str) -> Any:
                if name.startswith("on_") and name not in ("on_text", "on_retry", "on_custom_event"):
                    return lambda *args, **kwargs: calls.append((name, args, kwargs))
                return object.__getattribute__(self, name)

        WORKLOADS[workload]()({"callbacks": [Recorder()]})

    def prepared(self) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        """The calls with fresh run ids (so that each replay is a new trace), made before timing."""
        from uuid import uuid4

        fresh: dict[Any, Any] = {}
        calls = []
        for name, args, kwargs in self.calls:
            kwargs = dict(kwargs)
            for key in ("run_id", "parent_run_id"):
                old = kwargs.get(key)
                if old is not None:
                    if old not in fresh:
                        fresh[old] = uuid4()
                    kwargs[key] = fresh[old]
            calls.append((name, args, kwargs))
        return calls


def upb_request(spans: list[Any]) -> bytes:
    """``spans`` as an ``ExportTraceServiceRequest`` built with the generated OTLP classes, as
    directly as Python can fill them (one resource and scope, as our pipeline's spans have)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _upb_attributes(resource_spans.resource.attributes, spans[0].resource.attributes)
    scope_spans = resource_spans.scope_spans.add()
    scope = spans[0].instrumentation_scope
    scope_spans.scope.name = scope.name
    if scope.version:
        scope_spans.scope.version = scope.version
    add = scope_spans.spans.add
    for span in spans:
        ctx, parent = span.context, span.parent
        out = add(
            trace_id=ctx.trace_id.to_bytes(16, "big"),
            span_id=ctx.span_id.to_bytes(8, "big"),
            name=span.name,
            kind=span.kind.value + 1,
            start_time_unix_nano=span.start_time,
            end_time_unix_nano=span.end_time,
            flags=0x100 | (0x200 if parent is not None and parent.is_remote else 0),
        )
        if parent is not None:
            out.parent_span_id = parent.span_id.to_bytes(8, "big")
        _upb_attributes(out.attributes, span.attributes)
        for event in span.events:
            added = out.events.add(time_unix_nano=event.timestamp, name=event.name)
            _upb_attributes(added.attributes, event.attributes)
        for link in span.links:
            linked = link.context
            added = out.links.add(
                trace_id=linked.trace_id.to_bytes(16, "big"),
                span_id=linked.span_id.to_bytes(8, "big"),
                flags=0x100 | (0x200 if linked.is_remote else 0) | (int(linked.trace_flags) & 0xFF),
            )
            _upb_attributes(added.attributes, link.attributes)
        status = span.status
        out.status.SetInParent()
        if status is not None and status.status_code.value:
            out.status.code = status.status_code.value
            if status.description:
                out.status.message = status.description
    return request.SerializeToString()


def _upb_attributes(out: Any, attributes: Any) -> None:
    add = out.add
    for key, value in (attributes or {}).items():
        kind = type(value)
        if kind is str:
            add(key=key).value.string_value = value
        elif kind is bool:
            add(key=key).value.bool_value = value
        elif kind is int:
            add(key=key).value.int_value = value
        elif kind is float:
            add(key=key).value.double_value = value
        elif kind is list or kind is tuple:  # of strings: what make_valid leaves
            add_value = add(key=key).value.array_value.values.add
            for item in value:
                add_value().string_value = item
        else:  # a str subclass (LangChain's TextAccessor), written as its text
            add(key=key).value.string_value = str(value)


def upb(args: argparse.Namespace) -> None:
    from google.protobuf.internal import api_implementation
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from sentry_llm_callbacks.core.finishing import finish_spans
    from sentry_llm_callbacks.export.otlp import _official_encoding, encode_request

    spans = finish_spans(record_spans(args.workload, args.invocations))
    chunks = [spans[i : i + CHUNK] for i in range(0, len(spans), CHUNK)]
    encoders = {"ours": encode_request, "upb": upb_request, "opentelemetry": _official_encoding}
    for name, encoder in encoders.items():  # each gives the same message
        for chunk in chunks:
            message = ExportTraceServiceRequest.FromString(encoder(chunk))
            if message != ExportTraceServiceRequest.FromString(encode_request(chunk)):
                raise SystemExit(f"upb: {name} encodes a different message")
    times: dict[str, list[int]] = {name: [] for name in encoders}
    gc.disable()
    for _ in range(15):
        for name, encoder in encoders.items():
            started = time.thread_time_ns()
            for chunk in chunks:
                encoder(chunk)
            times[name].append(time.thread_time_ns() - started)
    gc.enable()
    for name, values in times.items():
        print(
            f"upb {args.workload}: {name:13} best {min(values) / len(spans) / 1e3:6.2f} us, median "
            f"{statistics.median(values) / len(spans) / 1e3:6.2f} us CPU per span, content rendered "
            f"({len(spans)} spans; protobuf runtime: {api_implementation.Type()})"
        )


def _without(handler: Any, piece: str) -> None:
    """Turn one piece of bookkeeping off for this process (see :data:`WITHOUT`)."""
    from sentry_llm_callbacks.base.counters import Counters
    from sentry_llm_callbacks.core import roots
    from sentry_llm_callbacks.export.backlog import Backlog

    recorder = handler._recorder
    if piece == "counters":  # spans_started and friends, each under a lock
        Counters.add = lambda self, name, n=1: None
    elif piece == "backlog_bound":  # the spans-and-bytes bound, asked per span and per trace
        Backlog.over = lambda self, factor: False
    elif piece == "last_trace":  # where each trace started and ended, for last_trace() and scores
        roots.origin = lambda: None
        recorder.last_traces.root_ended = lambda run: None
    elif piece == "nesting":  # the other framework's run, and the app's own Sentry span, at each root
        recorder._roots.ambient_parents.clear()
        recorder._roots._ambient_span = None
        recorder._roots._at_root = None
    elif piece == "errors_to_issues":  # does the app's Sentry SDK want this trace's errors
        roots.wants_failures = lambda reporter: False
    else:
        raise SystemExit(f"--without: unknown piece {piece!r} (one of {', '.join(WITHOUT)})")


#: What ``callbacks --without`` can turn off.
WITHOUT = ("counters", "backlog_bound", "last_trace", "nesting", "errors_to_issues")


def replay(handler: Any, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
    for name, args, kwargs in calls:
        getattr(handler, name)(*args, **kwargs)


def callbacks(args: argparse.Namespace) -> None:
    """Our handler's CPU on the application thread: the recorded callbacks of one invocation
    replayed on it, without the framework around them (the export thread drains between rounds
    so that application threads never help it)."""
    import sentry_llm_callbacks as slc
    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    if args.workload not in LANGCHAIN_WORKLOADS:
        raise SystemExit("callbacks: LangChain workloads only")
    recording = Recording(args.workload)
    sink = Sink()
    slc.configure(otlp_endpoint=f"http://127.0.0.1:{sink.port}/v1/traces")
    handler = SentryCallbackHandler()
    for piece in filter(None, args.without.split(",")):
        _without(handler, piece)
    per_round = 50
    for _ in range(per_round):
        replay(handler, recording.prepared())
    slc.flush(30)
    profiler = cProfile.Profile() if args.profile else None
    times: list[float] = []
    gc.disable()
    for _ in range(max(1, args.invocations // per_round)):
        replays = [recording.prepared() for _ in range(per_round)]
        if profiler is not None:
            profiler.enable()
        started = time.thread_time_ns()
        for calls in replays:
            replay(handler, calls)
        times.append((time.thread_time_ns() - started) / per_round / 1e3)
        if profiler is not None:
            profiler.disable()
        slc.flush(30)
    gc.enable()
    print(
        f"callbacks {args.workload}: {len(recording.calls)} callbacks per invocation; application-thread "
        f"CPU per invocation: best {min(times):.0f} us, median {statistics.median(times):.0f} us "
        f"({len(times)} rounds of {per_round}{', profiled' if profiler else ''}"
        f"{', without ' + args.without if args.without else ''})"
    )
    if profiler is not None:
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(r"sentry_llm_callbacks", 30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("render", "encode", "callbacks", "upb"))
    parser.add_argument("--workload", default="lg_agent", choices=sorted(WORKLOADS))
    parser.add_argument("--invocations", type=int, default=0)
    parser.add_argument("--profile", default="")
    parser.add_argument("--without", default="", help=f"callbacks: pieces to turn off ({', '.join(WITHOUT)})")
    args = parser.parse_args()
    if args.what in ("render", "encode", "upb"):
        args.invocations = args.invocations or 300
        {"render": render, "encode": encode, "upb": upb}[args.what](args)
    else:
        args.invocations = args.invocations or 2000
        callbacks(args)


if __name__ == "__main__":
    main()
