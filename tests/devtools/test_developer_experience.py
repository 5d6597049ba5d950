"""The command line, the Jupyter extension and the notebooks, run as a user would."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import DEFAULT_KEY, LocalReceiver
from tests.support.command_line import cli
from tests.support.environment import REPO_ROOT
from tests.support.fault_receiver import Fault, FaultyReceiver
from tests.support.markers import notebook_tools

# --------------------------------------------------------------------------- command line


def test_help_for_every_command() -> None:
    for command in ("test-connection", "send-test-trace", "serve", "demo"):
        result = cli(command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


def test_test_connection_success_and_failures(receiver: FaultyReceiver) -> None:
    ok = cli("test-connection", "--dsn", receiver.dsn)
    assert ok.returncode == 0 and ok.stdout.startswith("OK:")
    bad_key = "feedfacefeedfacefeedfacefeedface"
    refused = cli("test-connection", "--dsn", f"http://{bad_key}@127.0.0.1:{receiver.port}/1")
    assert refused.returncode == 1 and "unauthorized" in refused.stderr and refused.stdout == ""
    receiver.fault = Fault(status=503)
    down = cli("test-connection", "--dsn", receiver.dsn)
    assert down.returncode == 1 and "server_error" in down.stderr and down.stdout == ""
    # A DSN that cannot be used is a configuration error, as in every other command.
    invalid = cli("test-connection", "--dsn", "https://o1.ingest.sentry.io/1")
    assert invalid.returncode == 2 and "dsn: the DSN has no public key" in invalid.stderr and invalid.stdout == ""
    for result in (ok, refused, down, invalid):
        assert DEFAULT_KEY not in result.stdout + result.stderr
        assert bad_key not in result.stdout + result.stderr


def test_send_test_trace_prints_the_trace_id(receiver: LocalReceiver) -> None:
    result = cli("send-test-trace", env={"SENTRY_DSN": receiver.dsn})
    assert result.returncode == 0, result.stdout + result.stderr
    trace_id = re.search(r"trace ([0-9a-f]{32})", result.stdout).group(1)  # type: ignore[union-attr]
    assert {s.trace_id for s in receiver.wait_for_spans(2)} == {trace_id}
    assert DEFAULT_KEY not in result.stdout


def test_demo_without_a_dsn_prints_the_tree_the_receiver_decoded() -> None:
    started = time.monotonic()
    result = cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    decoded = int(re.search(r"The receiver decoded (\d+) spans", out).group(1))  # type: ignore[union-attr]
    assert decoded >= 10
    assert "Error Analysis Agent  [gen_ai.invoke_agent" in out
    assert "execute_tool search_logs  [gen_ai.execute_tool" in out
    assert "tokens 412 in / 38 out" in out
    assert "RetrieverQueryEngine.query  [function" in out and "VectorIndexRetriever.retrieve" in out
    assert len(re.findall(r"^trace [0-9a-f]{32}", out, re.M)) == 1  # one story, one trace
    assert time.monotonic() - started < 60


def test_demo_with_a_dsn_sends_there(receiver: LocalReceiver) -> None:
    result = cli("demo", "--dsn", receiver.dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Sending the demo trace to 127.0.0.1" in result.stdout  # where it really sends
    assert any(s.name == "Error Analysis Agent" for s in receiver.spans)


def test_serve_prints_each_trace_as_it_arrives() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentry_llm_callbacks", "serve", "--port", str(port), "--seconds", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        assert "Listening on" in proc.stdout.readline()
        slc.configure(otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")
        assert slc.send_test_trace(timeout=5).ok
        lines = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "chat test-model" in line:
                break
        text = "".join(lines)
        assert "sentry-llm-callbacks test trace  [function" in text
        assert "chat test-model  [gen_ai.chat" in text and "tokens 12 in / 3 out" in text
    finally:
        proc.terminate()
        proc.wait(10)


# --------------------------------------------------------------------------- Jupyter


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    yield shell
    shell.run_cell("%unload_ext sentry_llm_callbacks")
    InteractiveShell.clear_instance()


def test_extension_delivers_each_cell_and_shows_a_summary(sentry: LocalReceiver, shell) -> None:
    from sentry_llm_callbacks.devtools import jupyter

    shell.run_cell("%load_ext sentry_llm_callbacks")
    shell.run_cell("%sentry_llm --user nb-user --session nb-session")
    result = shell.run_cell(
        "from langchain_core.runnables import RunnableLambda\n"
        "RunnableLambda(lambda x: x * 2).with_config(run_name='Cell work').invoke(21)"
    )
    assert result.result == 42
    names = [s.name for s in sentry.spans]  # no flush() here: the extension flushed after the cell
    assert names == ["Cell work"]
    assert sentry.spans[0].attributes["user.id"] == "nb-user"
    summary = jupyter._active.last_summary  # type: ignore[union-attr]
    html = summary._repr_html_()
    assert "Cell work" in html and sentry.spans[0].trace_id in html
    assert "Cell work [function]" in repr(summary)


def test_extension_summary_shows_tokens_cost_errors_and_a_sentry_link(shell) -> None:
    from sentry_llm_callbacks.devtools import jupyter

    slc.configure(dsn="https://abc@o4242.ingest.us.sentry.io/99")
    shell.run_cell("%load_ext sentry_llm_callbacks")
    shell.run_cell("%sentry_llm --summary off")
    shell.run_cell(
        "from langchain_core.language_models.fake_chat_models import GenericFakeChatModel\n"
        "from langchain_core.messages import AIMessage\n"
        "m = GenericFakeChatModel(messages=iter([AIMessage(content='x', usage_metadata="
        "{'input_tokens': 7, 'output_tokens': 3, 'total_tokens': 10})]))\n"
        "m.invoke('hi')\n"
        "from langchain_core.runnables import RunnableLambda\n"
        "def boom(x):\n    raise ValueError('nope')\n"
        "try:\n    RunnableLambda(boom).invoke(1)\nexcept ValueError:\n    pass\n"
    )
    html = jupyter._active.last_summary._repr_html_()  # type: ignore[union-attr]
    assert "7 → 3" in html
    assert "ValueError: nope" in html
    assert "https://sentry.io/organizations/4242/explore/traces/trace/" in html


def test_unload_stops_tracing(sentry: LocalReceiver, shell) -> None:
    shell.run_cell("%load_ext sentry_llm_callbacks")
    shell.run_cell("%unload_ext sentry_llm_callbacks")
    shell.run_cell("from langchain_core.runnables import RunnableLambda\nRunnableLambda(lambda x: x).invoke(1)")
    assert slc.flush(2)
    assert sentry.spans == []


# --------------------------------------------------------------------------- notebooks


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quickstart_langchain.ipynb", "Error Analysis Agent  [function"),
        ("quickstart_llamaindex.ipynb", "Runbook lookup  [function"),
    ],
)
def test_notebook_runs_top_to_bottom(name: str, expected: str) -> None:
    """nbclient raises CellExecutionError if any cell fails; the outputs show the decoded trace."""
    nbformat, NotebookClient = notebook_tools()

    notebook = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    ).execute()
    outputs = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert expected in outputs
    assert re.search(r"^trace [0-9a-f]{32}", outputs, re.M)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("scripts/test"))
    command = line.split("#")[0].strip()
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert command in [step.strip() for step in ci], f".ci/run does not run the README's test command {command!r}"
