"""A forked child that traces one run and leaves: how the tests fork a traced process."""

from __future__ import annotations

import os
import signal

from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.waiting import wait_until


def fork_traced_run(run_name: str) -> int:
    """Fork. The child traces one run named ``run_name`` (a new handler), delivers it and exits:
    0 delivered, 2 not delivered by the flush, 1 failed. Returns the child's pid, in the parent."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            RunnableLambda(lambda x: x * 2).invoke(
                3, config={"callbacks": [SentryCallbackHandler()], "run_name": run_name}
            )
            code = 0 if slc.flush(timeout=5) else 2
        finally:
            os._exit(code)
    return pid


def wait_or_kill(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None if it was still running after ``timeout`` (then killed)."""
    codes: list[int] = []

    def exited() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            codes.append(os.waitstatus_to_exitcode(status))
        return bool(done)

    if wait_until(exited, timeout):
        return codes[0]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
