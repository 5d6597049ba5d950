"""CPU per invocation of one workload with our handler, for A/B runs of two checkouts.

    python benchmarks/ab_cpu.py content                       # this checkout
    PYTHONPATH=../before python benchmarks/ab_cpu.py content  # an earlier one (same harness)
    python benchmarks/ab_cpu.py privacy --workload lg_agent --n 1500 --profile
    python benchmarks/compare.py --against HEAD~1    # every workload, this checkout against a commit

Runs the workload ``--n`` times after a warm-up, exporting to the local counting sink, and prints
process CPU per invocation split into the application's thread ("main") and every other thread
("other": our export thread, LangGraph's pool), the final flush included. Alternate the two
checkouts a few times: single runs on a 2-core machine vary by about 8%.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from sink import Sink
from workloads import LANGCHAIN_WORKLOADS, WORKLOADS

import sentry_llm_callbacks as slc

WARMUP = 30


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("content", "privacy"))
    parser.add_argument("--workload", default="lg_agent", choices=sorted(set(WORKLOADS) - {"lg_agent_paced"}))
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--profile", action="store_true", help="cProfile the application's thread")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for benchmarks/compare.py)")
    args = parser.parse_args()

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    sink = Sink("ok")
    try:
        slc.configure(otlp_endpoint=f"http://127.0.0.1:{sink.port}/v1/traces", privacy_mode=args.mode == "privacy")
        run = WORKLOADS[args.workload]()
        if args.workload in LANGCHAIN_WORKLOADS:
            config = {"callbacks": [SentryCallbackHandler()]}
        else:  # LlamaIndex: traced through the global handler
            slc.set_global_handler(frameworks=("llamaindex",))
            config = {}
        for _ in range(WARMUP):
            run(config)
        slc.flush()
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        cpu, main_cpu = time.process_time(), time.thread_time()
        for _ in range(args.n):
            run(config)
        slc.flush()
        cpu, main_cpu = time.process_time() - cpu, time.thread_time() - main_cpu
        if profile is not None:
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)
        per = 1e6 / args.n
        if args.json:
            figures = {"cpu_us": cpu * per, "main_us": main_cpu * per, "other_us": (cpu - main_cpu) * per}
            print(json.dumps({"workload": args.workload, "mode": args.mode, **figures}))
            return
        print(
            f"{slc.__file__.rsplit('/', 2)[0]} {args.workload} {args.mode}: CPU {cpu * per:.0f} us per invocation "
            f"(main {main_cpu * per:.0f}, other threads {(cpu - main_cpu) * per:.0f})"
        )
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
