"""Skips for what this interpreter or install lacks, each saying why."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect

import pytest

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
