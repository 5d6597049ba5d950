"""Import cost: ``import sentry_llm_callbacks`` against the OpenTelemetry SDK's own import.

    python benchmarks/import_cost.py            # median of 15 fresh processes each, interleaved

Each import runs in a fresh interpreter with bytecode compiled first (as an installed wheel has
it: a machine with ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile our sources at every
import and measure that instead). The target: within 25 ms of ``opentelemetry.sdk.trace``.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
from pathlib import Path

import sentry_llm_callbacks

MODULES = ("opentelemetry.sdk.trace", "sentry_llm_callbacks", "sentry_llm_callbacks.langchain")
CODE = "import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    compileall.compile_dir(str(Path(sentry_llm_callbacks.__file__).parent), quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times: dict[str, list[float]] = {m: [] for m in MODULES}
    for _ in range(args.runs):
        for module in MODULES:
            out = subprocess.run(
                [sys.executable, "-c", CODE.format(module=module)], env=env, capture_output=True, text=True, check=True
            )
            times[module].append(float(out.stdout))
    floor = statistics.median(times[MODULES[0]])
    for module in MODULES:
        median = statistics.median(times[module])
        print(f"{module:34} {median:6.1f} ms  (+{median - floor:5.1f} ms over the OpenTelemetry SDK)")


if __name__ == "__main__":
    main()
