"""Global tracing, run-state lifecycle over many runs, and import isolation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest
from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.fault_receiver import Fault, FaultyReceiver
from tests.support.forking import fork_traced_run, wait_or_kill
from tests.support.spans import by_name, delivered

# Built before global tracing is switched on: must be traced all the same.
PREBUILT = RunnableLambda(lambda x: x + 1).with_config(run_name="Prebuilt")


def test_global_handler_traces_runs_without_callbacks(sentry: LocalReceiver) -> None:
    slc.set_global_handler(frameworks=("langchain",), user="global-user", trace={"team": "ml"})
    assert PREBUILT.invoke(1) == 2
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(PREBUILT.invoke(10)))
    thread.start()
    thread.join()
    assert results == [11]
    spans = delivered(sentry, 2)
    assert len(spans) == 2
    assert all(s.name == "Prebuilt" and s.attributes["user.id"] == "global-user" for s in spans)
    assert all(s.attributes["trace.metadata.team"] == "ml" for s in spans)


def test_global_handler_and_an_explicit_handler_trace_once(sentry: LocalReceiver) -> None:
    slc.set_global_handler(frameworks=("langchain",), user="global-user")
    chain = RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)
    chain.invoke(1, config={"callbacks": [SentryCallbackHandler(user="explicit-user")]})
    spans = delivered(sentry, 3)
    assert len(spans) == 3
    assert {s.attributes["user.id"] for s in spans} == {"explicit-user"}


async def test_global_handler_under_asyncio(sentry: LocalReceiver) -> None:
    slc.set_global_handler(frameworks="langchain")
    chain = RunnableLambda(lambda x: x).with_config(run_name="async run")
    await asyncio.gather(*(chain.ainvoke(i) for i in range(5)))
    assert len(delivered(sentry, 5)) == 5


def test_unset_global_handler_stops_tracing(sentry: LocalReceiver) -> None:
    slc.set_global_handler(frameworks=("langchain",))
    PREBUILT.invoke(1)
    slc.unset_global_handler()
    PREBUILT.invoke(2)
    assert len(delivered(sentry)) == 1


def test_unknown_framework_is_a_configuration_error() -> None:
    with pytest.raises(slc.ConfigurationError, match="unknown framework 'haystack'"):
        slc.set_global_handler(frameworks=("haystack",))


def test_no_state_left_after_ten_thousand_runs(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    handler = SentryCallbackHandler()
    ok = RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)

    def fail(x: int) -> int:
        raise KeyError(x)

    bad = RunnableLambda(lambda x: x) | RunnableLambda(fail)
    hidden = RunnableLambda(lambda x: x).with_config(tags=["langsmith:hidden"])
    for i in range(10_000):
        if i % 10 == 0:
            with pytest.raises(KeyError):
                bad.invoke(i, config={"callbacks": [handler]})
        elif i % 10 == 1:
            hidden.invoke(i, config={"callbacks": [handler]})
        else:
            ok.invoke(i, config={"callbacks": [handler]})
    assert _state.recorder.open_runs == 0
    assert _state.recorder._map.hidden == {}
    assert slc.stats()["runs_open"] == 0
    assert slc.flush(30)


def test_importing_the_package_imports_no_framework() -> None:
    code = (
        "import sys, sentry_llm_callbacks as s; s.configure(dsn='https://k@o1.ingest.sentry.io/1'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'langchain', 'langgraph', "
        "'llama_index', 'IPython')]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_exit_with_a_hanging_endpoint_is_bounded(receiver: FaultyReceiver) -> None:
    code = f"""
import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
slc.configure(dsn={receiver.dsn!r}, exit_timeout=1.0)
rec = _state.recorder
for i in range(5):
    rec.start_run(i, None, kind="chain", name="x", explicit_name=True, handler_layer=None, run_metadata=None)
    rec.end_run(i)
"""
    receiver.fault = Fault(hang=120)
    import time

    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=150)
    assert time.monotonic() - started < 40  # exit_timeout=1 against an endpoint that hangs 120 s


def test_forked_child_gets_a_working_pipeline(sentry: LocalReceiver) -> None:
    import os

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()], "run_name": "parent"})
    assert slc.flush(5)
    assert wait_or_kill(fork_traced_run("child"), 15) == 0
    spans = sentry.wait_for_spans(2, 5)
    assert by_name(spans, "child") and by_name(spans, "parent")


def test_no_state_left_after_a_hundred_thousand_runs_of_every_ending(receiver: LocalReceiver) -> None:
    """Counts, not RSS: every way a run can end leaves nothing behind in the recorder."""
    import asyncio as aio

    slc.configure(dsn=receiver.dsn, privacy_mode=True, max_queue_size=1000)
    recorder = _state.recorder
    for i in range(100_000):
        root, child = ("root", i), ("child", i)
        recorder.start_run(
            root, None, kind="chain", name="root", explicit_name=False, handler_layer=None, run_metadata=None
        )
        if i % 5 == 4:
            recorder.hide_run(child, root)
            recorder.end_run(child)
        else:
            recorder.start_run(
                child, root, kind="chat", name="m", explicit_name=False, handler_layer=None, run_metadata=None
            )
        ending = i % 4
        if ending == 0:
            recorder.end_run(child)
        elif ending == 1:
            recorder.fail_run(child, ValueError("x"))
        elif ending == 2:
            recorder.fail_run(child, aio.CancelledError())
        recorder.end_run(root)  # ending == 3: the child never ends
    # Children left open: i % 4 == 3, except the hidden ones (i % 5 == 4): 25 000 - 5 000.
    assert recorder.open_runs == 20_000
    abandoned = slc.stats()["runs_abandoned"]
    assert recorder.reap(0.0) == 20_000
    assert slc.stats()["runs_abandoned"] - abandoned == 20_000
    assert recorder._map.runs == {} and recorder._map.hidden == {}
    assert slc.stats()["runs_open"] == 0
