"""The ``sentry-llm-callbacks`` command (also ``python -m sentry_llm_callbacks``)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from sentry_llm_callbacks._version import __version__
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan, format_trace_tree, group_traces


def _test_connection(args: argparse.Namespace) -> int:
    from sentry_llm_callbacks import test_connection

    result = test_connection(dsn=args.dsn, otlp_endpoint=args.endpoint, timeout=args.timeout)
    print(("OK: " if result.ok else f"FAILED ({result.reason}): ") + result.message)
    if result.status_code is not None:
        print(f"HTTP {result.status_code} in {result.latency_s * 1000:.0f} ms")
    return 0 if result.ok else 1


def _send_test_trace(args: argparse.Namespace) -> int:
    import warnings

    from sentry_llm_callbacks import SentryLlmCallbacksWarning, configure, shutdown
    from sentry_llm_callbacks.connection import deliver_test_trace

    # The result below is the whole answer: the library's own warnings about the same failure
    # (refused key, spans dropped at exit) would only repeat it.
    warnings.filterwarnings("ignore", category=SentryLlmCallbacksWarning)
    deadline = time.monotonic() + args.timeout
    configure(dsn=args.dsn, otlp_endpoint=args.endpoint, allow_insecure_http=args.allow_insecure_http)
    given = [f"--{name}" for name in ("dsn", "endpoint") if getattr(args, name)]
    same = f" with the same {' and '.join(given)}" if given else ""
    result = deliver_test_trace(args.timeout, diagnose=f"run `sentry-llm-callbacks test-connection`{same}")
    print(result.message)
    # The exit flush would wait the destination's exit_timeout (5 s) again for what flush could
    # not deliver: stop now, within what is left of --timeout.
    shutdown(timeout=max(0.0, deadline - time.monotonic()))
    return 0 if result.ok else 1


class _TracePrinter:
    """Prints a trace's tree once its root span has arrived."""

    def __init__(self, receiver_spans: Callable[[], list[ReceivedSpan]]) -> None:
        self._all = receiver_spans
        self._lock = threading.Lock()

    def __call__(self, spans: list[ReceivedSpan]) -> None:
        roots = [s for s in spans if not s.parent_span_id or s.parent_is_remote]
        if not roots:
            return
        everything = self._all()
        with self._lock:
            for root in roots:
                members = group_traces(everything).get(root.trace_id, [])
                print(format_trace_tree(members), flush=True)
                print(flush=True)


def _serve(args: argparse.Namespace) -> int:
    receiver = LocalReceiver(host="127.0.0.1", port=args.port, public_key=None)
    receiver.on_spans = _TracePrinter(lambda: receiver.spans)
    receiver.start()
    print(f"Listening on http://127.0.0.1:{receiver.port}", flush=True)
    print(f"  Traces in your browser: http://127.0.0.1:{receiver.port}/", flush=True)
    print(f"  DSN for configure(): http://public@127.0.0.1:{receiver.port}/1", flush=True)
    print(f"  OTLP endpoint:       {receiver.plain_endpoint}", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    try:
        _wait(args.seconds)
    finally:
        receiver.stop()
    return 0


def _wait(seconds: float) -> None:
    """Until ``seconds`` have passed (0: until Ctrl+C)."""
    try:
        deadline = time.monotonic() + seconds if seconds else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def _demo(args: argparse.Namespace) -> int:
    from sentry_llm_callbacks import configure, flush, last_trace
    from sentry_llm_callbacks.devtools import demo

    started = time.perf_counter()
    story = demo.plan()
    if not story.frameworks:
        print(f"sentry-llm-callbacks demo: {demo.NOTHING_TO_TRACE}", file=sys.stderr)
        return 1
    dsn = args.dsn or os.environ.get("SENTRY_DSN")
    receiver = None
    if dsn:
        destination = configure(dsn=dsn, allow_insecure_http=args.allow_insecure_http)
        print(f"Sending the demo trace to {destination.host} (project {destination.project_id}).")
    else:
        receiver = LocalReceiver().start()
        configure(dsn=receiver.dsn)
        print(f"No DSN given: sending to a local receiver at {receiver.endpoint}")
    for paragraph in (*story.notes, story.story()):
        print("\n" + textwrap.fill(paragraph, width=100))
    answer = demo.run(story)
    root = last_trace()
    who = "The agent" if story.agent else "The runbook lookup"
    print("\n" + textwrap.fill(f"{who} answered: {answer}", width=100))
    delivered = flush(timeout=10)
    trace_id = root.trace_id if root is not None else None
    if receiver is None:
        return _demo_delivered(dsn, delivered, story.trace_name, trace_id)
    try:
        return _demo_received(receiver, delivered, trace_id, keep_serving=args.keep_serving, started=started)
    finally:
        receiver.stop()


def _demo_delivered(dsn: str, delivered: bool, trace_name: str, trace_id: str | None) -> int:
    """The demo sent to a DSN: say whether it arrived, and where to look at it."""
    from sentry_llm_callbacks import stats
    from sentry_llm_callbacks.devtools.jupyter import trace_url

    counts = stats()
    if not delivered:
        print(
            f"\nNot delivered: {counts['spans_exported']} of {counts['spans_started']} spans arrived "
            f"({counts['exports_failed']} failed requests). Check the DSN with: "
            "sentry-llm-callbacks test-connection --dsn ...",
            file=sys.stderr,
        )
        return 1
    print(f'\nDelivered {counts["spans_exported"]} spans: the trace "{trace_name}" ({trace_id}).')
    parts = urlsplit(dsn)
    if _is_sentry(dsn):
        link = trace_url(trace_id) if trace_id else None
        print(f"In Sentry: {link}" if link else f"In Sentry: Explore > Traces, search for trace {trace_id}.")
    elif parts.hostname in ("127.0.0.1", "localhost", "::1"):
        host = parts.netloc.rpartition("@")[2]
        print(f"If that is `sentry-llm-callbacks serve`, its page shows it: http://{host}/trace/{trace_id}")
    return 0


def _demo_received(
    receiver: LocalReceiver, delivered: bool, trace_id: str | None, *, keep_serving: bool, started: float
) -> int:
    """The demo sent to its own receiver: print what arrived, what it shows, and where to look."""
    from sentry_llm_callbacks.devtools import demo

    spans = receiver.spans
    traces = len(group_traces(spans))
    print(
        f"\nThe receiver decoded {len(spans)} spans in {traces} trace{'' if traces == 1 else 's'} "
        f"({time.perf_counter() - started:.1f} s):\n"
    )
    print(format_trace_tree(spans))
    print()
    print("\n".join(demo.summarize(spans)))
    page = f"http://127.0.0.1:{receiver.port}/"
    if keep_serving:
        print(f"\nThe traces as a waterfall: {page}  (Ctrl+C to stop)", flush=True)
        if trace_id:
            print(f"This trace: {page}trace/{trace_id}", flush=True)
        _wait(0)
    else:
        print(
            "\nTo look at this trace as a waterfall in your browser: sentry-llm-callbacks demo --keep-serving"
            "\n(or run sentry-llm-callbacks serve, send your own app's traces to it, and open its page)."
        )
    return 0 if delivered and spans else 1


def _collector_config(args: argparse.Namespace) -> int:
    from sentry_llm_callbacks.devtools.collector import collector_config

    print(collector_config(args.dsn, form=args.format, listen=args.listen))
    return 0


def _is_sentry(dsn: str) -> bool:
    host = urlsplit(dsn).hostname or ""
    return host == "sentry.io" or host.endswith(".sentry.io")


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds, e.g. 5") from None
    if not (0 < number < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, e.g. 5, not {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentry-llm-callbacks", description="Send LangChain and LlamaIndex traces to Sentry over OTLP."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser(
        "test-connection",
        help="check that a DSN or OTLP endpoint accepts traces",
        description="Send one empty OTLP request and say what the endpoint answered. Exits 0 only on success.",
    )
    p.add_argument("--dsn", help="Sentry DSN (default: SENTRY_DSN)")
    p.add_argument("--endpoint", help="OTLP/HTTP traces endpoint (default: derived from the DSN)")
    p.add_argument("--timeout", type=_positive, default=5.0, help="seconds to wait (default 5)")
    p.set_defaults(func=_test_connection)

    p = sub.add_parser(
        "send-test-trace",
        help="send a small trace and print its id",
        description="Send a root span and one generation span, wait for delivery, "
        "and print the trace id to look for in Sentry.",
    )
    p.add_argument("--dsn", help="Sentry DSN (default: SENTRY_DSN)")
    p.add_argument("--endpoint", help="OTLP/HTTP traces endpoint")
    p.add_argument("--timeout", type=_positive, default=10.0, help="seconds to wait for delivery (default 10)")
    p.add_argument("--allow-insecure-http", action="store_true", help="allow plain http:// to a non-local host")
    p.set_defaults(func=_send_test_trace)

    p = sub.add_parser(
        "serve",
        help="run a local OTLP receiver that prints each trace and shows it in a web page",
        description="A tiny local Sentry for development: accepts OTLP/HTTP on 127.0.0.1 "
        "(Sentry's path and /v1/traces), prints each trace as a tree, and serves a page on the "
        "same port (http://127.0.0.1:PORT/) listing the traces and drawing each as a waterfall.",
    )
    p.add_argument("--port", type=int, default=4318, help="port (default 4318)")
    p.add_argument("--seconds", type=float, default=0, help="stop after this many seconds (default: run until Ctrl+C)")
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "demo",
        help="trace one story, an agent with a failing tool and a LlamaIndex lookup, on fake models",
        description="Runs one story on fake models (no keys, no network): a LangGraph agent whose log "
        "search fails (an error it recovers from) and whose runbook search is a LlamaIndex query, in one "
        "trace. With a DSN it sends to Sentry; without one it starts a local receiver and prints the trace "
        "it received. A framework that is not installed is named, with what is shown instead.",
    )
    p.add_argument("--dsn", help="Sentry DSN (default: SENTRY_DSN; none: local receiver)")
    p.add_argument("--allow-insecure-http", action="store_true", help="allow plain http:// to a non-local host")
    p.add_argument(
        "--keep-serving",
        action="store_true",
        help="without a DSN: keep the local receiver and its web page up after the demo, until Ctrl+C",
    )
    p.set_defaults(func=_demo)
    p = sub.add_parser(
        "collector-config",
        help="print collector configuration that forwards to Sentry (prints the DSN key)",
        description="Print ready-to-paste configuration for an OpenTelemetry Collector (YAML) and for "
        "rotel-agent or an OpenTelemetry SDK (environment variables and flags) that forward traces to "
        "Sentry. The output contains the DSN's public key, which the collector needs: it goes to stdout "
        "only, on this explicit request; keep the file you save it to private.",
    )
    p.add_argument("--dsn", required=True, help="Sentry DSN whose key and project the collector sends to")
    p.add_argument("--format", choices=("all", "yaml", "env"), default="all", help="what to print (default all)")
    p.add_argument("--listen", default="0.0.0.0:4318", help="host:port the collector receives OTLP/HTTP on")
    p.set_defaults(func=_collector_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a user error is one or two sentences on stderr and exit code 2, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"sentry-llm-callbacks {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.command == "serve" and exc.errno in (errno.EADDRINUSE, errno.EACCES):
            print(
                f"sentry-llm-callbacks serve: port {args.port} is in use or not allowed ({exc.strerror}); "
                "choose another with --port, e.g. --port 4319.",
                file=sys.stderr,
            )
            return 2
        print(f"sentry-llm-callbacks {args.command}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
