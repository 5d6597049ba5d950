from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
from collections.abc import Iterator

import pytest

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.base.log import reset_log_once
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan

from .fault_receiver import FaultyReceiver
from .openai_server import OpenAIServer

#: LangChain hands a run's callbacks to the async code it calls (a node's model call, an async
#: tool's work) only where ``asyncio.create_task`` takes a ``context`` (Python 3.11 and later);
#: elsewhere the app passes ``config`` on by hand, as LangChain's documentation says.
needs_async_context = pytest.mark.skipif(
    "context" not in inspect.signature(asyncio.create_task).parameters,
    reason="asyncio.create_task takes no context here, so LangChain cannot pass callbacks to async children",
)
#: LlamaIndex's workflow agents (``FunctionAgent``, ``AgentWorkflow``) came after llama-index-core 0.12.0.
needs_llamaindex_agents = pytest.mark.skipif(
    importlib.util.find_spec("llama_index.core.agent.workflow") is None,
    reason="this llama-index-core has no llama_index.core.agent.workflow (FunctionAgent, AgentWorkflow)",
)


def notebook_tools() -> tuple[object, object]:
    """``(nbformat, nbclient.NotebookClient)``, or the test is skipped saying which is missing
    (they come with the ``dev`` extra; a bare install of the package has neither)."""
    nbformat = pytest.importorskip("nbformat", reason="executing a notebook needs nbformat (the dev extra)")
    nbclient = pytest.importorskip("nbclient", reason="executing a notebook needs nbclient (the dev extra)")
    pytest.importorskip("ipykernel", reason="executing a notebook needs ipykernel (the dev extra)")
    return nbformat, nbclient.NotebookClient


ENV_VARS = (
    "SENTRY_DSN",
    "SENTRY_OTLP_TRACES_ENDPOINT",
    "SENTRY_ENVIRONMENT",
    "SENTRY_RELEASE",
    "SENTRY_LLM_PRIVACY_MODE",
    "OTEL_SERVICE_NAME",
    *(
        f"OTEL_EXPORTER_OTLP_{signal}{name}"
        for signal in ("", "TRACES_")
        for name in ("HEADERS", "TIMEOUT", "COMPRESSION", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")
    ),
)


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts unconfigured, with no environment and no global handler."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    reset_log_once()
    _state.reset()
    yield
    slc.unset_global_handler()
    _state.reset()
    _state.recorder.clear()


@pytest.fixture
def receiver() -> Iterator[FaultyReceiver]:
    """The local Sentry-like receiver; set its ``fault`` to make it answer like an unhealthy endpoint."""
    with FaultyReceiver() as r:
        yield r


@pytest.fixture
def sentry(receiver: LocalReceiver) -> LocalReceiver:
    """A destination configured to send to the local Sentry-like receiver."""
    slc.configure(dsn=receiver.dsn)
    return receiver


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


def delivered(receiver: LocalReceiver, count: int | None = None, timeout: float = 10.0) -> list[ReceivedSpan]:
    """Flush and return what the receiver decoded; with ``count``, wait for that many spans."""
    assert slc.flush(timeout), f"flush failed: {slc.stats()}"
    if count is not None:
        return receiver.wait_for_spans(count, timeout)
    return receiver.spans


def paused(app: object, thread: dict) -> bool:
    """True when a LangGraph app stopped at an interrupt on ``thread`` and waits for a resume
    (read from its checkpoint: ``invoke`` returns ``__interrupt__`` only in LangGraph 0.4 and later)."""
    return bool(app.get_state(thread).next)  # type: ignore[attr-defined]


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, f"{len(matches)} spans named {name!r} in {[s.name for s in spans]}"
    return matches[0]


@pytest.fixture
def caplog_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
