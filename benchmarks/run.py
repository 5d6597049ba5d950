"""Benchmark sentry-llm-callbacks against no tracing, the bare OpenTelemetry floor and peers.

    python benchmarks/run.py                 # sets up benchmarks/.peers/venv on first use, then runs
    python benchmarks/run.py --quick         # fewer iterations and rounds
    python benchmarks/run.py --faults        # endpoint down / hanging / 429 / 503, ours and the floor
    python benchmarks/run.py --memory 100000 # RSS growth over N chain invocations, ours
    python benchmarks/run.py --baseline ../before --modes none,ours@base,ours   # before / after

Each (mode, workload) runs in its own process, interleaved in rounds (A B C ... A B C ...), all
exporting to a local sink that counts the spans that really arrived. Added time is measured
against the "none" mode of the same rounds. Prints a Markdown table.

Floors: ``otel_floor`` runs the workload untraced and creates the spans we deliver for it directly
with the OpenTelemetry SDK (no framework callback dispatch); "x floor" divides by it.
``otel_bare`` creates one SDK span per framework run from a callback handler (dispatch included);
"x bare" divides by it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".peers" / "venv"
PEER_PACKAGES = [
    "llama-index-llms-openai",
    "langfuse",
    "openinference-instrumentation-langchain",
    "openinference-instrumentation-llama-index",
    "opentelemetry-instrumentation-langchain",
    "opentelemetry-instrumentation-llamaindex",
    "sentry-sdk",
]
MODES = [
    "none",
    "noop",
    "otel_floor",
    "otel_bare",
    "ours",
    "ours_privacy",
    "ours_tail",
    "openllmetry",
    "langfuse",
    "openinference",
    "sentry_sdk",
]
WORKLOADS = ["lc_chain", "lg_agent", "lc_stream", "lc_async20", "li_query", "lg_agent_paced"]
UNSUPPORTED = {("sentry_sdk", "li_query"), ("noop", "li_query")}
#: ``--baseline DIR``: a mode written ``MODE@base`` runs MODE with the package imported from DIR
#: (a checkout of an earlier commit), interleaved with the rest, for before / after figures.
BASELINE: str | None = None
#: Slow workloads run a quarter of the iterations (fewer leave their CPU figures to the noise of
#: starting and flushing a process: a tenth moved the agent's CPU against the floor from 0.85 to 1.24
#: between two runs of the same tree).
SLOW = ("lc_async20", "lg_agent", "lg_agent_paced")


def python() -> str:
    exe = VENV / "bin" / "python"
    if not exe.exists():
        print(f"Setting up the peers' virtual environment in {VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(exe),
                "-m",
                "pip",
                "install",
                "-q",
                "-e",
                f"{ROOT}[langchain,llamaindex]",
                "langgraph",
                *PEER_PACKAGES,
            ],
            check=True,
        )
    return str(exe)


def run_one(py: str, mode: str, workload: str, iterations: int, sink_mode: str = "ok") -> dict:
    sys.path.insert(0, str(HERE))
    from sink import Sink

    sink = Sink(sink_mode)
    try:
        env = {**os.environ, "PYTHONHASHSEED": "0", "OTEL_SDK_DISABLED": "false"}
        worker_mode, _, variant = mode.partition("@")
        if variant:
            if variant != "base" or BASELINE is None:
                raise SystemExit(f"{mode}: a MODE@base mode needs --baseline DIR")
            env["PYTHONPATH"] = BASELINE
        proc = subprocess.run(
            [py, str(HERE / "worker.py"), worker_mode, workload, str(iterations), str(sink.port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        if proc.returncode != 0:
            return {"mode": mode, "workload": workload, "error": proc.stderr.strip().splitlines()[-1:]}
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if "unsupported" in result:
            return result
        time.sleep(0.3)
        result["spans_received"] = sink.spans
        return result
    finally:
        sink.stop()


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--memory", type=int, default=0)
    parser.add_argument(
        "--baseline", help="a checkout of an earlier commit; modes written MODE@base import the package from it"
    )
    args = parser.parse_args()
    global BASELINE
    BASELINE = str(Path(args.baseline).resolve()) if args.baseline else None
    py = python()
    if args.quick:
        args.rounds, args.iterations = 2, 100
    if args.memory:
        return memory(py, args.memory)
    if args.faults:
        return faults(py, args.iterations)
    modes = args.modes.split(",")
    workloads = args.workloads.split(",")
    results: dict[tuple[str, str], list[dict]] = {}
    for workload in workloads:
        iterations = max(20, args.iterations // 4) if workload in SLOW else args.iterations
        for r in range(args.rounds):
            for mode in modes:
                if (mode, workload) in UNSUPPORTED:
                    continue
                res = run_one(py, mode, workload, iterations)
                results.setdefault((mode, workload), []).append(res)
                if "times_ns" in res:
                    outcome = f"median {statistics.median(res['times_ns']) / 1e3:9.1f} us"
                else:
                    outcome = f"unsupported: {res['unsupported']}" if "unsupported" in res else f"ERROR {res['error']}"
                print(f"round {r + 1} {workload:14} {mode:13} {outcome}", file=sys.stderr)
    print(report(results, modes, workloads, args))


def report(results: dict, modes: list[str], workloads: list[str], args: argparse.Namespace) -> str:
    lines = [
        f"Run on {date.today()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · {args.rounds} rounds · {args.iterations} iterations "
        f"({', '.join(SLOW)}: a quarter) · interleaved, one process per run",
        "",
        "x floor: added median / `otel_floor`'s (the spans we deliver, made directly with the SDK, no "
        "framework dispatch); x bare: / `otel_bare`'s (one SDK span per framework run, from a callback). "
        "CPU added: process CPU per invocation (every thread, the final flush included) against `none`; "
        "CPU x floor: / `otel_floor`'s CPU added; app CPU added: the application thread's alone.",
        "",
    ]
    for workload in workloads:
        base_runs = results.get(("none", workload), [])
        base = [t for r in base_runs for t in r.get("times_ns", [])]
        if not base:
            continue
        base_med, base_p99 = statistics.median(base), pct(base, 0.99)
        base_cpu = statistics.median(r["cpu_ns_per_invocation"] for r in base_runs if "cpu_ns_per_invocation" in r)
        floor_added = added_median(results, "otel_floor", workload, base_med)
        bare_added = added_median(results, "otel_bare", workload, base_med)
        floor_cpu = cpu_added(results, "otel_floor", workload, base_cpu)
        lines += [
            f"### {workload} (no tracing: median {base_med / 1e3:.0f} us, p99 {base_p99 / 1e3:.0f} us, "
            f"CPU {base_cpu / 1e3:.0f} us)",
            "",
            "| mode | added median | added p99 | x floor | x bare | CPU added | CPU x floor | app CPU added "
            "| spans delivered / invocation | RSS growth MB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for mode in modes:
            runs = results.get((mode, workload))
            if mode == "none" or not runs:
                continue
            times = [t for r in runs for t in r.get("times_ns", [])]
            if not times:
                first = runs[0]
                why = f"unsupported: {first['unsupported']}" if "unsupported" in first else f"error: {first['error']}"
                lines.append(f"| {LABELS.get(mode, mode)} | {why} | | | | | | | | |")
                continue
            added = statistics.median(times) - base_med
            added_p99 = pct(times, 0.99) - base_p99
            cpu = statistics.median(r["cpu_ns_per_invocation"] for r in runs) - base_cpu
            app_cpu = app_cpu_added(runs, base_runs)
            spans = sum(r["spans_received"] for r in runs) / sum(r["invocations"] for r in runs)
            rss = statistics.median(r["rss_after_mb"] - r["rss_before_mb"] for r in runs)
            lines.append(
                f"| {LABELS.get(mode, mode)} | {added / 1e3:+.0f} us | {added_p99 / 1e3:+.0f} us | "
                f"{ratio(added, floor_added)} | {ratio(added, bare_added)} | {cpu / 1e3:+.0f} us | "
                f"{ratio(cpu, floor_cpu)} | {app_cpu} | {spans:.2f} | {rss:.1f} |"
            )
        lines.append("")
    lines += targets(results, workloads)
    return "\n".join(lines)


PEERS = ("openllmetry", "langfuse", "openinference")


def cpu_added(results: dict, mode: str, workload: str, base_cpu: float) -> float | None:
    runs = [r for r in results.get((mode, workload), []) if "cpu_ns_per_invocation" in r]
    return statistics.median(r["cpu_ns_per_invocation"] for r in runs) - base_cpu if runs else None


def app_cpu_added(runs: list[dict], base_runs: list[dict]) -> str:
    mine = [r["app_cpu_ns_per_invocation"] for r in runs if "app_cpu_ns_per_invocation" in r]
    base = [r["app_cpu_ns_per_invocation"] for r in base_runs if "app_cpu_ns_per_invocation" in r]
    if not mine or not base:
        return "-"
    return f"{(statistics.median(mine) - statistics.median(base)) / 1e3:+.0f} us"


def targets(results: dict, workloads: list[str]) -> list[str]:
    """Each workload's figures against the targets: ours against ``ours@base`` (the baseline's
    added median and CPU added), ours against the floor, and the best peer against ours."""
    lines = [
        "### Against the targets",
        "",
        "| workload | median vs @base | CPU vs @base | CPU x floor | median x floor | privacy CPU x floor "
        "| p99 added, ours / floor | best peer CPU / ours | best peer median / ours |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for workload in workloads:
        row = target_row(results, workload)
        if row:
            lines.append(row)
    lines.append("")
    return lines


def target_row(results: dict, workload: str) -> str | None:
    base_runs = results.get(("none", workload), [])
    base = [t for r in base_runs for t in r.get("times_ns", [])]
    if not base:
        return None
    base_med, base_p99 = statistics.median(base), pct(base, 0.99)
    base_cpu = statistics.median(r["cpu_ns_per_invocation"] for r in base_runs if "cpu_ns_per_invocation" in r)

    def med(mode: str) -> float | None:
        return added_median(results, mode, workload, base_med)

    def cpu(mode: str) -> float | None:
        return cpu_added(results, mode, workload, base_cpu)

    def p99(mode: str) -> str:
        times = [t for r in results.get((mode, workload), []) for t in r.get("times_ns", [])]
        return f"{(pct(times, 0.99) - base_p99) / 1e3:+.0f} us" if times else "-"

    peers_cpu = [c for c in (cpu(p) for p in PEERS) if c is not None]
    peers_med = [m for m in (med(p) for p in PEERS) if m is not None]
    ours_cpu, ours_med = cpu("ours"), med("ours")
    return (
        f"| {workload} | {quotient(ours_med, med('ours@base'))} | {quotient(ours_cpu, cpu('ours@base'))} | "
        f"{quotient(ours_cpu, cpu('otel_floor'))} | {quotient(ours_med, med('otel_floor'))} | "
        f"{quotient(cpu('ours_privacy'), cpu('otel_floor'))} | {p99('ours')} / {p99('otel_floor')} | "
        f"{quotient(min(peers_cpu) if peers_cpu else None, ours_cpu)} | "
        f"{quotient(min(peers_med) if peers_med else None, ours_med)} |"
    )


def quotient(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


LABELS = {
    "otel_floor": "otel_floor (SDK spans, no dispatch)",
    "otel_bare": "otel_bare (SDK spans from a callback)",
    "ours_tail": "ours_tail (rate 0.1, keep; 1% errors)",
}


def added_median(results: dict, mode: str, workload: str, base_med: float) -> float | None:
    times = [t for r in results.get((mode, workload), []) for t in r.get("times_ns", [])]
    return statistics.median(times) - base_med if times else None


def ratio(added: float, floor: float | None) -> str:
    return f"{added / floor:.2f}" if floor and floor > 0 else "-"


def faults(py: str, iterations: int) -> None:
    rows = [
        "| sink | mode | added median | added p99 | flush(30) took | spans delivered |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    base = run_one(py, "none", "lc_chain", iterations)
    base_med, base_p99 = statistics.median(base["times_ns"]), pct(base["times_ns"], 0.99)
    for sink_mode in ("ok", "refused", "hang", "429", "503"):
        for mode in ("otel_bare", "ours"):
            res = (
                run_one(py, mode, "lc_chain", iterations, "ok" if sink_mode == "refused" else sink_mode)
                if sink_mode != "refused"
                else run_refused(py, mode, iterations)
            )
            if "times_ns" not in res:
                rows.append(f"| {sink_mode} | {mode} | error {res.get('error')} | | | |")
                continue
            rows.append(
                f"| {sink_mode} | {mode} | {(statistics.median(res['times_ns']) - base_med) / 1e3:+.0f} us | "
                f"{(pct(res['times_ns'], 0.99) - base_p99) / 1e3:+.0f} us | {res['flush_s']:.1f} s | "
                f"{res.get('spans_received', 0)} |"
            )
            print(rows[-1], file=sys.stderr)
    print("\n".join(rows))


def run_refused(py: str, mode: str, iterations: int) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [py, str(HERE / "worker.py"), mode, "lc_chain", str(iterations), str(port)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(py: str, invocations: int) -> None:
    for mode in ("none", "ours", "ours_privacy"):
        res = run_one(py, mode, "lc_chain", invocations)
        print(
            f"| {mode} | {invocations} invocations | RSS {res['rss_before_mb']:.1f} -> {res['rss_after_mb']:.1f} MB "
            f"(growth {res['rss_after_mb'] - res['rss_before_mb']:+.1f} MB) | spans delivered {res['spans_received']} |"
        )


if __name__ == "__main__":
    main()
