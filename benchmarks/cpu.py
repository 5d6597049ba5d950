"""CPU time of our two halves on their own, steady enough to decide by on a shared machine.

    python benchmarks/cpu.py render [--workload lg_agent] [--invocations 300]
    python benchmarks/cpu.py callbacks [--workload lg_agent] [--invocations 2000] [--profile out.prof]

``render``: records the spans of N invocations (content captured, not yet rendered), then times
what the export thread does with them, ``resolve_content`` in chunks of 64 spans as the export
thread takes them, with orjson and with the standard encoder; thread CPU time, the best of 15
repetitions, per invocation. ``callbacks``: application-thread CPU time per invocation with our
handler against none, interleaved in rounds; with ``--profile``, a cProfile of the traced loop
(the callbacks' own functions sorted by their total time).

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
    from sentry_llm_callbacks.export import SPAN_TAPS

    captured: list[dict[str, Any]] = []

    def tap(span: Any) -> None:
        captured.append(dict(span._attributes))

    run, config = traced(workload)
    for _ in range(10):
        run(config)
    SPAN_TAPS.append(tap)
    try:
        for _ in range(invocations):
            run(config)
    finally:
        SPAN_TAPS.remove(tap)
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
    from sentry_llm_callbacks.content import resolve_content

    copies = [dict(a) for a in spans]
    started = time.thread_time_ns()
    for i in range(0, len(copies), CHUNK):
        cache: dict[Any, Any] = {}
        for attributes in copies[i : i + CHUNK]:
            resolve_content(attributes, cache)
    return time.thread_time_ns() - started


def render(args: argparse.Namespace) -> None:
    from sentry_llm_callbacks import content

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
    for name, values in times.items():
        print(
            f"render {args.workload}: {name:12} best {min(values) / args.invocations / 1e3:7.1f} us, "
            f"median {statistics.median(values) / args.invocations / 1e3:7.1f} us CPU per invocation "
            f"({len(spans) / args.invocations:.0f} spans)"
        )


def callbacks(args: argparse.Namespace) -> None:
    traced_run, config = traced(args.workload)
    plain_run = WORKLOADS[args.workload]()
    for _ in range(30):
        traced_run(config)
        plain_run({})
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.invocations):
            traced_run(config)
        profiler.disable()
        profiler.dump_stats(args.profile)
        stats = pstats.Stats(args.profile)
        stats.sort_stats("tottime").print_stats(r"sentry_llm_callbacks", 30)
        return
    per_round = max(1, args.invocations // 10)
    added: list[float] = []
    for _ in range(10):
        started = time.thread_time_ns()
        for _ in range(per_round):
            plain_run({})
        plain = time.thread_time_ns() - started
        started = time.thread_time_ns()
        for _ in range(per_round):
            traced_run(config)
        added.append((time.thread_time_ns() - started - plain) / per_round / 1e3)
    print(
        f"callbacks {args.workload}: application-thread CPU added per invocation: median "
        f"{statistics.median(added):.0f} us, best {min(added):.0f} us (10 rounds of {per_round})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("render", "callbacks"))
    parser.add_argument("--workload", default="lg_agent", choices=sorted(WORKLOADS))
    parser.add_argument("--invocations", type=int, default=0)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    if args.what == "render":
        args.invocations = args.invocations or 300
        render(args)
    else:
        args.invocations = args.invocations or 2000
        callbacks(args)


if __name__ == "__main__":
    main()
