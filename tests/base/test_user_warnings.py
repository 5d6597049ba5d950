"""The three problems a user must act on reach a process that never configured logging, once
each: not configured, the endpoint refusing our key, spans dropped. Each scenario runs in a
fresh interpreter, as an app would, and reads its stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from tests.support.fault_receiver import Fault, FaultyReceiver
from tests.support.markers import notebook_tools

NOT_CONFIGURED = "sentry_llm_callbacks is not configured"
REFUSED = "refused our credentials (HTTP 403)"
DROPPED = "rejected them with HTTP 400"
CATEGORY = "SentryLlmCallbacksWarning"

#: An app: an optional set-up line, then a chain invoked twice (each followed by a flush).
APP = """
import sys, logging, warnings
{setup}
import sentry_llm_callbacks as slc
from langchain_core.runnables import RunnableLambda
from sentry_llm_callbacks.langchain import SentryCallbackHandler
dsn = sys.argv[1]
if dsn:
    slc.configure(dsn=dsn)
chain = RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)
for _ in range(2):
    assert chain.invoke(1, config={{"callbacks": [SentryCallbackHandler()]}}) == 4
    slc.flush(5)
print("app finished")
"""


def run_app(dsn: str = "", setup: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    code = APP.format(setup=setup)
    result = subprocess.run([sys.executable, "-c", code, dsn], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "app finished"
    return result


def wrong_key_dsn(receiver: LocalReceiver) -> str:
    assert receiver.public_key
    return receiver.dsn.replace(receiver.public_key, "0" * 32)


def rejecting(receiver: FaultyReceiver) -> str:
    receiver.fault = Fault(status=400, body='{"detail": "bad span"}')
    return receiver.dsn


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        pytest.param(lambda r: "", NOT_CONFIGURED, id="no-dsn"),
        pytest.param(wrong_key_dsn, REFUSED, id="wrong-key"),
        pytest.param(rejecting, DROPPED, id="spans-dropped"),
    ],
)
def test_without_logging_configured_each_warning_shows_once(receiver: LocalReceiver, destination, message) -> None:
    result = run_app(destination(receiver))
    assert result.stderr.count(message) == 1, result.stderr
    assert result.stderr.count(CATEGORY) == 1, result.stderr


def test_the_warning_says_what_to_do(receiver: LocalReceiver) -> None:
    stderr = run_app(wrong_key_dsn(receiver)).stderr
    assert "Client Keys (DSN)" in stderr
    assert "sentry-llm-callbacks test-connection" in stderr
    assert "0" * 32 not in stderr  # the key never appears
    assert "configure(dsn=...) or set SENTRY_DSN" in run_app().stderr


def test_a_working_destination_prints_nothing(receiver: LocalReceiver) -> None:
    assert run_app(receiver.dsn).stderr == ""


@pytest.mark.parametrize(
    "destination", [lambda r: "", wrong_key_dsn, rejecting], ids=["no-dsn", "wrong-key", "spans-dropped"]
)
def test_configured_logging_gets_log_records_not_warnings(receiver: LocalReceiver, destination) -> None:
    stderr = run_app(destination(receiver), setup="logging.basicConfig()").stderr
    lines = [line for line in stderr.splitlines() if line.startswith("WARNING:sentry_llm_callbacks:")]
    assert len(lines) == 1, stderr
    assert CATEGORY not in stderr


def test_an_ignore_filter_silences_them(receiver: LocalReceiver) -> None:
    for dsn in ("", wrong_key_dsn(receiver)):
        assert run_app(dsn, setup='warnings.simplefilter("ignore")').stderr == ""


def test_a_category_filter_silences_only_them(receiver: LocalReceiver) -> None:
    setup = (
        "from sentry_llm_callbacks import SentryLlmCallbacksWarning\n"
        "warnings.filterwarnings('ignore', category=SentryLlmCallbacksWarning)"
    )
    assert run_app(wrong_key_dsn(receiver), setup=setup).stderr == ""


def test_warnings_turned_into_errors_never_reach_the_app(receiver: LocalReceiver) -> None:
    for dsn in ("", wrong_key_dsn(receiver)):
        assert run_app(dsn, setup='warnings.simplefilter("error")').stdout.strip() == "app finished"


def test_a_silenced_package_logger_is_respected() -> None:
    setup = "logging.getLogger('sentry_llm_callbacks').setLevel(logging.ERROR)"
    assert run_app(setup=setup).stderr == ""


def test_a_notebook_shows_the_warning_under_the_cell() -> None:
    """``%load_ext`` with no DSN, then a traced call: the cell's output says why nothing is traced."""
    nbformat, NotebookClient = notebook_tools()

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext sentry_llm_callbacks"),
        nbformat.v4.new_code_cell(
            "from langchain_core.runnables import RunnableLambda\nRunnableLambda(lambda x: x + 1).invoke(1)"
        ),
        nbformat.v4.new_code_cell("RunnableLambda(lambda x: x + 1).invoke(1)"),
    ]
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    stderr = ["".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stderr") for cell in notebook.cells]
    assert sum(text.count(NOT_CONFIGURED) for text in stderr) == 1, stderr
    assert CATEGORY in "".join(stderr)


#: A user's script: its traced call is on line 7.
SCRIPT = """\
import sentry_llm_callbacks as slc
from langchain_core.runnables import RunnableLambda
from sentry_llm_callbacks.langchain import SentryCallbackHandler

chain = RunnableLambda(lambda x: x + 1)
handler = SentryCallbackHandler()
chain.invoke(1, config={"callbacks": [handler]})
print("app finished")
"""


def test_the_not_configured_warning_points_at_the_users_line(tmp_path) -> None:
    """Python's default warning filters, a script run as a user runs it: the warning names the
    script's file and the line of the traced call (it used to read ``sentry_llm_callbacks:0``),
    and says how to look at traces locally."""
    script = tmp_path / "my_app.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_") and k != "PYTHONWARNINGS"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and result.stdout == "app finished\n", result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{script}:7: {CATEGORY}: {NOT_CONFIGURED}"), result.stderr
    assert "python -m sentry_llm_callbacks serve" in first
    assert 'chain.invoke(1, config={"callbacks": [handler]})' in result.stderr  # the line, as Python shows it


def test_a_warning_from_the_export_thread_points_at_a_real_line(receiver: LocalReceiver) -> None:
    """No application frame on the export thread: the warning names the package's line that
    found the problem, never line 0."""
    stderr = run_app(wrong_key_dsn(receiver)).stderr
    location = next(line for line in stderr.splitlines() if CATEGORY in line).split(f": {CATEGORY}")[0]
    filename, _, line = location.rpartition(":")
    assert os.path.isfile(filename) and "sentry_llm_callbacks" in filename, location
    assert int(line) > 0
