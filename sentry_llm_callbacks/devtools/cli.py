"""The ``sentry-llm-callbacks`` command (also ``python -m sentry_llm_callbacks``).

One convention for every subcommand: what it produced (a check that passed, a trace id, a
configuration) goes to stdout, exit status 0; a check that ran and failed (the endpoint refused,
the trace was not delivered) is explained on stderr, exit status 1; a usage or configuration
error (a bad flag, an invalid DSN, a busy port) is one or two sentences on stderr, exit status
2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from sentry_llm_callbacks._version import __version__
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.config.settings import is_loopback
from sentry_llm_callbacks.devtools.details import trace_link_for_dsn
from sentry_llm_callbacks.devtools.receiver import (
    SERVER_NAME,
    LocalReceiver,
    ReceivedSpan,
    format_trace_tree,
    group_traces,
)

#: Exit statuses (see the module's docstring).
OK, CHECK_FAILED, USAGE_ERROR = 0, 1, 2

EXIT_STATUSES = (
    "exit status: 0 success (output on stdout); 1 a check ran and failed (explained on stderr); "
    "2 a usage or configuration error (on stderr)"
)


def flag(option: str) -> str:
    """How the command line spells a boolean option of ``configure()``: ``--allow-insecure-http``."""
    return "--" + option.replace("_", "-")


def _test_connection(args: argparse.Namespace) -> int:
    from sentry_llm_callbacks.config.settings import build_destination
    from sentry_llm_callbacks.connection import check_destination

    # Built here, not inside test_connection(): an invalid DSN is a usage error (exit 2, stderr),
    # not a failed check.
    destination = build_destination(
        dsn=args.dsn, otlp_endpoint=args.endpoint, allow_insecure_http=args.allow_insecure_http
    )
    result = check_destination(destination, args.timeout)
    out = sys.stdout if result.ok else sys.stderr
    print(("OK: " if result.ok else f"FAILED ({result.reason}): ") + result.message, file=out)
    if result.status_code is not None:
        print(f"HTTP {result.status_code} in {result.latency_s * 1000:.0f} ms", file=out)
    return OK if result.ok else CHECK_FAILED


def _send_test_trace(args: argparse.Namespace) -> int:
    import warnings

    from sentry_llm_callbacks import SentryLlmCallbacksWarning, configure, shutdown
    from sentry_llm_callbacks.connection import deliver_test_trace

    # The result below is the whole answer: the library's own warnings about the same failure
    # (refused key, spans dropped at exit) would only repeat it.
    warnings.filterwarnings("ignore", category=SentryLlmCallbacksWarning)
    deadline = time.monotonic() + args.timeout
    destination = configure(dsn=args.dsn, otlp_endpoint=args.endpoint, allow_insecure_http=args.allow_insecure_http)
    given = [f"--{name}" for name in ("dsn", "endpoint") if getattr(args, name)]
    same = f" with the same {' and '.join(given)}" if given else ""

    def where_to_look(trace_id: str) -> str | None:
        page = receiver_page(destination.endpoint, f"/trace/{trace_id}")
        return f"See it at {page}" if page else None

    result = deliver_test_trace(
        args.timeout,
        diagnose=f"run `sentry-llm-callbacks test-connection`{same}",
        where_to_look=where_to_look,
    )
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    # The exit flush would wait the destination's exit_timeout (5 s) again for what could not be
    # delivered: stop now (at once after a failure: its cause is known, and retrying is not this
    # command's job).
    shutdown(timeout=max(0.0, deadline - time.monotonic()) if result.ok else 0.0)
    return OK if result.ok else CHECK_FAILED


def receiver_page(endpoint: str, path: str, *, timeout: float = 1.0) -> str | None:
    """The URL of ``path`` on the local receiver (``serve``) that ``endpoint`` points at, or None
    when ``endpoint`` is not on this machine, or what answers there is not that receiver (its
    ``Server`` header says), or the page is not there.

    Example::

        receiver_page("http://127.0.0.1:4318/v1/traces", "/")   # 'http://127.0.0.1:4318/'
    """
    parts = urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname or not is_loopback(parts.hostname):
        return None
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    if response.status != 200 or not (response.getheader("Server") or "").startswith(SERVER_NAME):
        return None
    return f"http://{parts.netloc.rpartition('@')[2]}{path}"


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
    # Traces sent to Sentry too (an app exporting to both) link to it when SENTRY_DSN names the organisation.
    receiver.trace_link = trace_link_for_dsn(os.environ.get("SENTRY_DSN"))
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
    return OK


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
    dsn = args.dsn or os.environ.get("SENTRY_DSN")
    # A DSN that is wrong is a usage error, told before any framework is loaded (slow, and noisy
    # on stderr with some versions).
    destination = configure(dsn=dsn, allow_insecure_http=args.allow_insecure_http) if dsn else None
    story = demo.plan()
    if not story.frameworks:
        print(f"sentry-llm-callbacks demo: {demo.NOTHING_TO_TRACE}", file=sys.stderr)
        return CHECK_FAILED
    receiver = None
    if destination is not None:
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
        return _demo_delivered(destination.endpoint, dsn, delivered, story.trace_name, trace_id)
    try:
        return _demo_received(receiver, delivered, trace_id, keep_serving=args.keep_serving, started=started)
    finally:
        receiver.stop()


def _demo_delivered(endpoint: str, dsn: str, delivered: bool, trace_name: str, trace_id: str | None) -> int:
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
        return CHECK_FAILED
    print(f'\nDelivered {counts["spans_exported"]} spans: the trace "{trace_name}" ({trace_id}).')
    page = receiver_page(endpoint, f"/trace/{trace_id}") if trace_id else None
    if page:
        print(f"See it at {page}")
    elif _is_sentry(dsn):
        link = trace_url(trace_id) if trace_id else None
        print(f"In Sentry: {link}" if link else f"In Sentry: Explore > Traces, search for trace {trace_id}.")
    return OK


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
    return OK if delivered and spans else CHECK_FAILED


def _collector_config(args: argparse.Namespace) -> int:
    from sentry_llm_callbacks.devtools.collector import collector_config

    print(collector_config(args.dsn, form=args.format, listen=args.listen))
    return OK


def _is_sentry(dsn: str) -> bool:
    host = urlsplit(dsn).hostname or ""
    return host == "sentry.io" or host.endswith(".sentry.io")


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number: give one from 0 to 65535") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port number: give one from 0 to 65535 (0: any free port)")
    return number


def _seconds(value: str) -> float:
    """``serve --seconds``: 0 (until Ctrl+C) or a positive number."""
    return _duration(value, example="60", zero="0 (until Ctrl+C) or ")


def _positive(value: str) -> float:
    """A timeout: a positive number of seconds."""
    return _duration(value, example="5")


def _duration(value: str, *, example: str, zero: str = "") -> float:
    """``value`` as a finite number of seconds, 0 allowed only when ``zero`` says what it means."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds, e.g. {example}") from None
    if not (0 <= number < float("inf")) or (number == 0 and not zero):
        raise argparse.ArgumentTypeError(f"must be {zero}a positive number of seconds, e.g. {example}, not {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentry-llm-callbacks",
        description="Send LangChain and LlamaIndex traces to Sentry over OTLP.",
        epilog=EXIT_STATUSES,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser(
        "test-connection",
        help="check that a DSN or OTLP endpoint accepts traces",
        description="Send one empty OTLP request and say what the endpoint answered. Exits 0 only on success.",
        epilog=EXIT_STATUSES,
    )
    p.add_argument("--dsn", help="Sentry DSN (default: SENTRY_DSN)")
    p.add_argument("--endpoint", help="OTLP/HTTP traces endpoint (default: derived from the DSN)")
    p.add_argument("--timeout", type=_positive, default=5.0, help="seconds to wait (default 5)")
    p.add_argument("--allow-insecure-http", action="store_true", help="allow plain http:// to a non-local host")
    p.set_defaults(func=_test_connection)

    p = sub.add_parser(
        "send-test-trace",
        help="send a small trace and print its id",
        description="Send a root span and one generation span, wait for delivery, "
        "and print the trace id to look for in Sentry (or the page to open, for a local `serve`). "
        "A failure says its cause as soon as the first request fails.",
        epilog=EXIT_STATUSES,
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
    p.add_argument("--port", type=_port, default=4318, help="port, 0 to 65535 (default 4318; 0: any free port)")
    p.add_argument(
        "--seconds", type=_seconds, default=0, help="stop after this many seconds (default: run until Ctrl+C)"
    )
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
    """Run the command. Exit status 0 on success, 1 when a check ran and failed (explained on
    stderr), 2 for a usage or configuration error (one or two sentences on stderr, never a
    traceback; a configuration message names this command's flags, not ``configure()``'s)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"sentry-llm-callbacks {args.command}: {exc.phrased(flag)}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as exc:
        if args.command == "serve" and exc.errno in (errno.EADDRINUSE, errno.EACCES):
            print(
                f"sentry-llm-callbacks serve: port {args.port} is in use or not allowed ({exc.strerror}); "
                "choose another with --port, e.g. --port 4319.",
                file=sys.stderr,
            )
            return USAGE_ERROR
        print(f"sentry-llm-callbacks {args.command}: {exc.strerror or exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
