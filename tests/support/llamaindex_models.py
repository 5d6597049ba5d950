"""LlamaIndex pieces several suites build on: a small vector index over mock embeddings,
LlamaIndex's ``OpenAI`` against the local OpenAI-compatible server, and a one-tool agent on it."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager
from llama_index.core.embeddings import MockEmbedding

from tests.support.openai_server import OpenAIServer, Reply

DOCS = [
    "Runbook: restart the payments pod when charges fail.",
    "Postmortem: null card tokens came from mobile v3.2.",
    "On-call: page the payments team.",
]


def build_index(callback_manager: CallbackManager | None = None) -> VectorStoreIndex:
    kwargs = {"callback_manager": callback_manager} if callback_manager else {}
    return VectorStoreIndex.from_documents(
        [Document(text=t) for t in DOCS], embed_model=MockEmbedding(embed_dim=8), **kwargs
    )


def li_openai(server: OpenAIServer, **kwargs: Any) -> Any:
    from llama_index.llms.openai import OpenAI

    return OpenAI(model="gpt-4o-mini", api_base=server.base_url, api_key="sk-test", **kwargs)


def run_multiply_agent(server: OpenAIServer, *, name: str = "calculator", answer: str = "The answer is 42.") -> Any:
    """A LlamaIndex ``FunctionAgent`` with one tool, ``multiply``, asked "6 times 7?": the server
    answers with a call of the tool (``call_9``, a=6, b=7), then with ``answer``. Returns the
    agent's result."""
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    server.queue(
        Reply(content="", tool_calls=[{"id": "call_9", "name": "multiply", "args": {"a": 6, "b": 7}}]),
        Reply(content=answer),
    )
    agent = FunctionAgent(name=name, tools=[FunctionTool.from_defaults(multiply)], llm=li_openai(server))

    async def run() -> Any:
        return await agent.run("6 times 7?")

    return asyncio.run(run())
