"""Load cases for the export pipeline: a thread burst, and memory while the endpoint is down.

    python benchmarks/burst.py --threads 64 --invocations 200   # burst against a counting sink
    python benchmarks/burst.py --down 10000                     # endpoint refusing connections
    python benchmarks/burst.py --queue-bytes 16777216           # with another max_queue_bytes

Each case runs in its own process (``--child``) so the sink and the measured app do not share
an interpreter lock; spans are counted by the sink, ``dropped`` comes from ``slc.stats()``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WARMUP = 30
SPANS_PER_INVOCATION = 4  # lc_chain: the chain, the prompt, the model, the parser
sys.path.insert(0, str(HERE))


def rss_mb() -> float:
    import resource

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(port: int, threads: int, invocations: int, down: int, queue_bytes: int) -> None:
    from workloads import lc_chain

    import sentry_llm_callbacks as slc
    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    options = {"max_queue_bytes": queue_bytes} if queue_bytes else {}
    slc.configure(otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces", **options)
    run = lc_chain()
    config = {"callbacks": [SentryCallbackHandler()]}
    for _ in range(WARMUP):  # warm-up, also without the endpoint: imports and caches in place
        run(config)
    slc.flush(10)
    gc.collect()
    before = rss_mb()
    peak = before
    started = time.monotonic()
    if down:
        for i in range(down):
            run(config)
            if i % 500 == 0:
                peak = max(peak, rss_mb())
    else:
        barrier = threading.Barrier(threads)

        def work() -> None:
            barrier.wait()
            for _ in range(invocations):
                run(config)

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    elapsed = time.monotonic() - started
    peak = max(peak, rss_mb())
    flushed = slc.flush(30 if not down else 0.1)
    stats = slc.stats()
    print(
        json.dumps(
            {
                "elapsed_s": elapsed,
                "rss_before_mb": before,
                "rss_peak_mb": max(peak, rss_mb()),
                "flushed": flushed,
                "stats": stats,
            }
        )
    )
    sys.stdout.flush()
    os._exit(0)  # the down case must not wait for the exit flush


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--invocations", type=int, default=200)
    parser.add_argument("--down", type=int, default=0, help="invocations against a refusing endpoint")
    parser.add_argument("--queue-bytes", type=int, default=0, help="max_queue_bytes (default: the package's)")
    parser.add_argument("--child", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.threads, args.invocations, args.down, args.queue_bytes)
    from sink import Sink

    sink = Sink("ok") if not args.down else None
    port = sink.port if sink else free_port()
    try:
        cmd = [sys.executable, __file__, "--child", str(port), "--threads", str(args.threads)]
        cmd += ["--invocations", str(args.invocations), "--down", str(args.down)]
        cmd += ["--queue-bytes", str(args.queue_bytes)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        time.sleep(0.3)
    finally:
        if sink:
            sink.stop()
    stats = res["stats"]
    growth = res["rss_peak_mb"] - res["rss_before_mb"]
    if args.down:
        print(
            f"| endpoint refused | {args.down} invocations | spans started {stats['spans_started']} | "
            f"dropped {stats['spans_dropped']} | queued {stats['spans_queued']} | RSS growth {growth:+.1f} MB |"
        )
    else:
        expected = (args.threads * args.invocations + WARMUP) * SPANS_PER_INVOCATION
        print(
            f"| {args.threads} x {args.invocations} | expected {expected} | delivered {sink.spans if sink else 0} | "
            f"dropped {stats['spans_dropped']} | RSS growth {growth:+.1f} MB | burst {res['elapsed_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
