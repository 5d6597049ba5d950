"""The command line as a user meets it: exit codes and exact messages, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from sentry_llm_callbacks import __version__
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from tests.support.command_line import words
from tests.support.fault_receiver import Fault, FaultyReceiver


def cli(*args: str, env: dict[str, str] | None = None, hide: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command in a fresh interpreter; ``hide`` makes one framework un-importable there."""
    prelude = "import sys; " + (f"sys.modules[{hide!r}] = None; " if hide else "")
    code = prelude + "from sentry_llm_callbacks.devtools.cli import main; sys.exit(main(sys.argv[1:]))"
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=environment
    )


def test_no_subcommand_prints_help_and_exits_2() -> None:
    result = cli()
    assert result.returncode == 2
    assert "usage: sentry-llm-callbacks" in result.stderr and "test-connection" in result.stderr


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"sentry-llm-callbacks {__version__}"


def test_bad_dsn_is_one_sentence_not_a_traceback() -> None:
    for command in ("demo", "send-test-trace"):
        result = cli(command, "--dsn", "garbage")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(f"sentry-llm-callbacks {command}: dsn:"), result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2


def test_invalid_sentry_dsn_in_the_environment_is_named() -> None:
    result = cli("send-test-trace", env={"SENTRY_DSN": "https://nokey.example.com/1"})
    assert result.returncode == 2
    assert "Not configured" not in result.stderr + result.stdout
    assert "dsn:" in result.stderr and "public key" in result.stderr


def test_negative_timeout_is_refused_by_the_parser() -> None:
    result = cli("test-connection", "--timeout", "-1")
    assert result.returncode == 2
    assert "must be a positive number of seconds" in result.stderr and "Traceback" not in result.stderr


def test_plain_http_hint_matches_a_cli_flag() -> None:
    result = cli("send-test-trace", "--dsn", "http://key@example.com/1")
    assert result.returncode == 2 and "allow_insecure_http" in result.stderr
    assert "--allow-insecure-http" in cli("send-test-trace", "--help").stdout


def test_serve_on_a_busy_port_says_so() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", "--port", str(port), "--seconds", "1")
    assert result.returncode == 2
    assert f"port {port} is in use" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_without_llamaindex_says_how_to_add_it_and_what_it_shows_instead() -> None:
    result = cli("demo", hide="llama_index")
    assert result.returncode == 0, result.stderr
    out = words(result.stdout)
    assert "LlamaIndex is not installed (pip install llama-index-core): the agent searches the runbooks" in out
    assert "an on-call agent (LangGraph)" in out and "The agent answered: PaymentService.charge" in out
    assert "Traceback" not in result.stderr


def test_demo_without_langchain_says_how_to_add_it_and_what_it_shows_instead() -> None:
    result = cli("demo", hide="langchain_core")
    assert result.returncode == 0, result.stderr
    out = words(result.stdout)
    assert "LangChain is not installed (pip install langchain-core langgraph): there is no agent" in out
    assert "The runbook lookup answered: Validate the card token" in out
    assert "Traceback" not in result.stderr


def test_demo_without_langgraph_does_not_claim_a_langgraph_agent() -> None:
    result = cli("demo", hide="langgraph")
    assert result.returncode == 0, result.stderr
    out = words(result.stdout)
    assert "LangGraph is not installed (pip install langgraph): the agent runs as a plain LangChain loop" in out
    assert "The agent answered" in out and "LangGraph" not in out.replace("LangGraph is not installed", "")


def test_demo_to_a_local_dsn_does_not_point_at_sentry(receiver: LocalReceiver) -> None:
    result = cli("demo", "--dsn", receiver.dsn)
    assert result.returncode == 0, result.stderr
    assert "Sending the demo trace to 127.0.0.1" in result.stdout
    assert "In Sentry" not in result.stdout


def test_demo_to_an_unreachable_dsn_explains_and_fails() -> None:
    result = cli("demo", "--dsn", "http://key@127.0.0.1:9/1")
    assert result.returncode == 1
    assert "Not delivered" in result.stderr and "test-connection" in result.stderr
    assert "In Sentry" not in result.stdout


def test_send_test_trace_failure_points_to_the_cli_command() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"http://{'a' * 32}@127.0.0.1:{port}/1"
    result = cli("send-test-trace", "--dsn", dsn, "--timeout", "1")
    assert result.returncode == 1
    assert result.stdout.rstrip().endswith(
        "within 1 s; run `sentry-llm-callbacks test-connection` with the same --dsn to see why."
    ), result.stdout
    assert "test_connection()" not in result.stdout + result.stderr
    assert result.stderr == ""


def test_send_test_trace_python_api_keeps_the_python_hint() -> None:
    import sentry_llm_callbacks as slc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slc.configure(dsn=f"http://{'a' * 32}@127.0.0.1:{port}/1")
    assert slc.send_test_trace(timeout=1).message.endswith("run test_connection() to see why.")


def test_send_test_trace_returns_at_its_timeout_not_after_the_exit_flush() -> None:
    """Against an endpoint that never answers in time, the command used to wait --timeout for
    delivery and then the exit flush's 5 s again. The bound below sits under that 5 s, so the
    old behaviour fails it whatever the machine's speed; it leaves 4 s for interpreter start."""
    with FaultyReceiver() as receiver:
        receiver.fault = Fault(hang=8.0)
        started = time.monotonic()
        result = cli("send-test-trace", "--dsn", receiver.dsn, "--timeout", "1")
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "was not delivered" in result.stdout
    assert elapsed < 1 + 4.5, elapsed
