"""One benchmark process: set up one tracing mode, run one workload, print timings as JSON.

python benchmarks/worker.py MODE WORKLOAD ITERATIONS PORT
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

sys.path.insert(0, os.path.dirname(__file__))

from workloads import DELIVERED_SPANS, FAIL, LANGCHAIN_WORKLOADS, PACING, WORKLOADS

WARMUP = 30
#: ours_tail: one invocation in this many raises (caught here), so the tail rule has errors to keep.
FAIL_EVERY = 100
TAIL_KEEP = {"errors": True, "slower_than": 30.0, "costlier_than": 0.05}


class Unsupported(Exception):
    """This mode cannot run this workload (yet); reported as such instead of a figure."""


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def otel_provider(port: int) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")))
    return provider


def floor_run(run: Callable[[dict[str, Any]], Any], tracer: Any, workload: str) -> Callable[[dict[str, Any]], Any]:
    """The no-dispatch floor: the workload untraced, and as many spans as we deliver for it
    created directly with the SDK, nested (each under the one before it in a binary tree),
    2 attributes each; each trace's root spans the invocation."""
    from opentelemetry import trace

    traces, per_trace = DELIVERED_SPANS[workload]

    def invoke(config: dict[str, Any]) -> Any:
        roots = [tracer.start_span("invocation", attributes={"bench.kind": "root", "bench.index": 0})]
        roots += [
            tracer.start_span("invocation", attributes={"bench.kind": "root", "bench.index": 0})
            for _ in range(traces - 1)
        ]
        result = run(config)
        for root in roots:
            spans = [root]
            for i in range(1, per_trace):
                parent = trace.set_span_in_context(spans[(i - 1) // 2])
                spans.append(
                    tracer.start_span(f"step {i}", context=parent, attributes={"bench.kind": "step", "bench.index": i})
                )
            for span in reversed(spans):
                span.end()
        return result

    return invoke


class BareOtelHandler:
    """The floor: one OpenTelemetry SDK span per LangChain run, parented by run id, nothing else."""

    def __new__(cls, tracer: Any) -> Any:
        from langchain_core.callbacks import BaseCallbackHandler
        from opentelemetry import trace

        class Handler(BaseCallbackHandler):
            run_inline = True

            def __init__(self) -> None:
                self.spans: dict[UUID, Any] = {}

            def _start(self, run_id: UUID, parent_run_id: UUID | None, name: str) -> None:
                parent = self.spans.get(parent_run_id) if parent_run_id else None
                context = trace.set_span_in_context(parent) if parent is not None else None
                self.spans[run_id] = tracer.start_span(name, context=context)

            def _end(self, run_id: UUID, *args: Any, **kwargs: Any) -> None:
                span = self.spans.pop(run_id, None)
                if span is not None:
                    span.end()

            def on_chain_start(
                self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
            ) -> None:
                self._start(run_id, parent_run_id, kw.get("name") or "chain")

            def on_chat_model_start(
                self, serialized: Any, messages: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
            ) -> None:
                self._start(run_id, parent_run_id, "chat")

            def on_tool_start(
                self, serialized: Any, input_str: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
            ) -> None:
                self._start(run_id, parent_run_id, "tool")

            def on_chain_end(self, outputs: Any, *, run_id: UUID, **kw: Any) -> None:
                self._end(run_id)

            on_llm_end = on_tool_end = on_chain_end

            def on_chain_error(self, error: Any, *, run_id: UUID, **kw: Any) -> None:
                self._end(run_id)

            on_llm_error = on_tool_error = on_chain_error

        return Handler()


def setup(mode: str, workload: str, port: int) -> tuple[dict[str, Any], Callable[[], None]]:
    """Install tracing for ``mode``; returns the invocation config and a flush function."""
    langchain = workload in LANGCHAIN_WORKLOADS
    if mode == "none":
        return {}, lambda: None
    if mode == "noop":
        if not langchain:
            return {}, lambda: None
        from langchain_core.callbacks import BaseCallbackHandler

        class Noop(BaseCallbackHandler):
            run_inline = True

        return {"callbacks": [Noop()]}, lambda: None
    if mode == "otel_bare":
        provider = otel_provider(port)
        tracer = provider.get_tracer("bare")
        if langchain:
            return {"callbacks": [BareOtelHandler(tracer)]}, lambda: provider.force_flush()
        from llama_index.core.instrumentation import get_dispatcher
        from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
        from opentelemetry import trace

        open_spans: dict[str, Any] = {}

        class BareSpans(BaseSpanHandler):
            """One SDK span per LlamaIndex dispatcher span, parented by span id."""

            def span_enter(
                self,
                id_: str,
                bound_args: Any,
                instance: Any = None,
                parent_id: Any = None,
                tags: Any = None,
                **kw: Any,
            ) -> None:
                parent = open_spans.get(parent_id) if parent_id else None
                context = trace.set_span_in_context(parent) if parent is not None else None
                open_spans[id_] = tracer.start_span(id_[:-37], context=context)

            def span_exit(self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kw: Any) -> None:
                span = open_spans.pop(id_, None)
                if span is not None:
                    span.end()

            span_drop = span_exit

            def new_span(self, *a: Any, **k: Any) -> None:
                return None

            def prepare_to_exit_span(self, *a: Any, **k: Any) -> None:
                return None

            def prepare_to_drop_span(self, *a: Any, **k: Any) -> None:
                return None

        get_dispatcher().add_span_handler(BareSpans())
        return {}, lambda: provider.force_flush()
    if mode in ("ours", "ours_privacy", "ours_tail"):
        import sentry_llm_callbacks as slc

        endpoint = f"http://127.0.0.1:{port}/v1/traces"
        if mode == "ours_tail":
            import inspect

            if "keep" not in inspect.signature(slc.configure).parameters:
                raise Unsupported("configure(keep=...) does not exist yet")
            if not langchain:
                raise Unsupported("no error injection for LlamaIndex workloads")
            slc.configure(otlp_endpoint=endpoint, sample_rate=0.1, keep=TAIL_KEEP)  # type: ignore[call-arg]
        else:
            slc.configure(otlp_endpoint=endpoint, privacy_mode=mode == "ours_privacy")
        if langchain:
            from sentry_llm_callbacks.langchain import SentryCallbackHandler

            return {"callbacks": [SentryCallbackHandler()]}, lambda: slc.flush(30)
        slc.set_global_handler(frameworks=("llamaindex",))
        return {}, lambda: slc.flush(30)
    if mode == "openinference":
        provider = otel_provider(port)
        if langchain:
            from openinference.instrumentation.langchain import LangChainInstrumentor

            LangChainInstrumentor().instrument(tracer_provider=provider)
        else:
            from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

            LlamaIndexInstrumentor().instrument(tracer_provider=provider)
        return {}, lambda: provider.force_flush()
    if mode == "openllmetry":
        provider = otel_provider(port)
        if langchain:
            from opentelemetry.instrumentation.langchain import LangchainInstrumentor

            LangchainInstrumentor().instrument(tracer_provider=provider)
        else:
            from opentelemetry.instrumentation.llamaindex import LlamaIndexInstrumentor

            LlamaIndexInstrumentor().instrument(tracer_provider=provider)
        return {}, lambda: provider.force_flush()
    if mode == "langfuse":
        os.environ.update(
            LANGFUSE_PUBLIC_KEY="pk-lf-bench",
            LANGFUSE_SECRET_KEY="sk-lf-bench",
            LANGFUSE_HOST=f"http://127.0.0.1:{port}",
            LANGFUSE_TRACING_ENVIRONMENT="bench",
        )
        from langfuse import get_client

        client = get_client()
        if langchain:
            from langfuse.langchain import CallbackHandler

            return {"callbacks": [CallbackHandler()]}, client.flush
        from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

        LlamaIndexInstrumentor().instrument()  # Langfuse's documented LlamaIndex path
        return {}, client.flush
    if mode == "sentry_sdk":
        import sentry_sdk
        from sentry_sdk.integrations.langchain import LangchainIntegration

        sentry_sdk.init(
            dsn=f"http://publickey@127.0.0.1:{port}/1",
            traces_sample_rate=1.0,
            send_default_pii=True,
            integrations=[LangchainIntegration()],
        )
        return {}, lambda: sentry_sdk.flush(30)
    raise SystemExit(f"unknown mode {mode}")


def prepare(mode: str, workload: str, port: int) -> tuple[Callable[[dict[str, Any]], Any], dict[str, Any], Callable]:
    """The invocation to time, its config and the flush function for ``mode``."""
    run = WORKLOADS[workload]()
    if mode == "otel_floor":
        provider = otel_provider(port)
        return floor_run(run, provider.get_tracer("floor"), workload), {}, lambda: provider.force_flush()
    config, flush = setup(mode, workload, port)
    if mode != "ours_tail":
        return run, config, flush
    failing = {**config, "metadata": {**config.get("metadata", {}), FAIL: True}}
    count = 0

    def sometimes_failing(config: dict[str, Any]) -> Any:
        nonlocal count
        count += 1
        if count % FAIL_EVERY:
            return run(config)
        try:
            return run(failing)
        except Exception:  # the application handles it; the trace keeps its error
            return None

    return sometimes_failing, config, flush


def main() -> None:
    mode, workload, iterations, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        run, config, flush = prepare(mode, workload, port)
    except Unsupported as exc:
        print(json.dumps({"mode": mode, "workload": workload, "unsupported": str(exc)}))
        return
    pacing = PACING.get(workload, 0.0)
    for _ in range(WARMUP):
        run(config)
    flush()  # the warm-up's export is not counted in the CPU time below
    gc.collect()
    rss_before = rss_mb()
    times = []
    perf = time.perf_counter_ns
    cpu_started = time.process_time_ns()
    app_cpu_started = time.thread_time_ns()
    for _ in range(iterations):
        if pacing:
            time.sleep(pacing)
        start = perf()
        run(config)
        times.append(perf() - start)
    app_cpu_ns = time.thread_time_ns() - app_cpu_started  # the application's thread alone
    rss_after = rss_mb()
    started = time.monotonic()
    flush()
    flush_s = time.monotonic() - started
    # process CPU (every thread: the export thread's rendering, encoding and sending included)
    cpu_ns = time.process_time_ns() - cpu_started
    print(
        json.dumps(
            {
                "mode": mode,
                "workload": workload,
                "times_ns": times,
                "invocations": WARMUP + iterations,
                "cpu_ns_per_invocation": cpu_ns / iterations,
                "app_cpu_ns_per_invocation": app_cpu_ns / iterations,
                "rss_before_mb": rss_before,
                "rss_after_mb": rss_after,
                "flush_s": flush_s,
            }
        )
    )


if __name__ == "__main__":
    main()
