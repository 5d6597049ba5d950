"""The demo workload: a LangGraph agent with a tool and a LlamaIndex query, on fake models.

No network and no API keys: the models are LangChain's and LlamaIndex's own fakes. Used by
``sentry-llm-callbacks demo`` and the notebooks.
"""

from __future__ import annotations

import importlib.util
from typing import Any

DEMO_METADATA: dict[str, Any] = {
    "user": "user_12345",
    "session_id": "session_abc",
    "trace": {
        "trace_name": "Error Analysis Agent",
        "generation_name": "Analyze Stack Trace",
        "environment": "demo",
        "release": "v2.1.0",
        "team": "sre",
    },
}


def has(module: str) -> bool:
    """Whether ``module`` can be imported (False, not an error, when its parent package is missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


#: What each part of the demo needs, and the install line that adds it.
EXTRAS = {
    "langchain": ("langchain_core", "pip install langchain-core"),
    "langgraph": ("langgraph", "pip install langgraph"),
    "llamaindex": ("llama_index.core", "pip install llama-index-core"),
}


def missing(part: str) -> str | None:
    """The install line for a demo part whose framework is not installed, else None."""
    module, install = EXTRAS[part]
    return None if has(module) else install


def run_langchain_agent(metadata: dict[str, Any] | None = None) -> str:
    """A ReAct agent (LangGraph when installed, else a plain chain) that calls one tool."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    @tool
    def search_logs(query: str) -> str:
        """Search the service logs."""
        return "NullPointerException at PaymentService.charge(PaymentService.java:42)"

    class ToolCallingFake(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    usage = {"input_tokens": 412, "output_tokens": 38, "total_tokens": 450, "input_token_details": {"cache_read": 256}}
    replies = iter(
        [
            AIMessage(
                content="",
                usage_metadata=usage,
                tool_calls=[{"name": "search_logs", "args": {"query": "payment errors"}, "id": "call_1"}],
                response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
            ),
            AIMessage(
                content="PaymentService.charge dereferences a null card token; validate it first.",
                usage_metadata={"input_tokens": 502, "output_tokens": 21, "total_tokens": 523},
                response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
            ),
        ]
    )
    model = ToolCallingFake(messages=replies)
    config: dict[str, Any] = {"callbacks": [SentryCallbackHandler()], "metadata": metadata or DEMO_METADATA}
    question = "Why are payments failing?"
    if has("langgraph"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from langgraph.prebuilt import create_react_agent

            agent = create_react_agent(model, [search_logs], name="error_analysis_agent")
        result = agent.invoke({"messages": [("human", question)]}, config=config)
        return str(result["messages"][-1].content)
    first = model.invoke(question, config=config)
    observation = search_logs.invoke(first.tool_calls[0], config=config)
    return str(model.invoke(f"{question}\n{observation.content}", config=config).content)


def run_llamaindex_query(metadata: dict[str, Any] | None = None) -> str | None:
    """A retrieval query over three documents with LlamaIndex's mock LLM and embeddings."""
    if not has("llama_index.core"):
        return None
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    from sentry_llm_callbacks.llamaindex import SentryLlamaIndexHandler

    meta = metadata or DEMO_METADATA
    handler = SentryLlamaIndexHandler(
        user=meta.get("user"),
        session_id=meta.get("session_id"),
        trace={**meta.get("trace", {}), "trace_name": "Runbook lookup"},
    )
    docs = [
        Document(text="Runbook: if PaymentService fails, check the card token validation."),
        Document(text="Postmortem: null tokens came from the mobile client v3.2."),
        Document(text="On-call: page the payments team for charge failures."),
    ]
    previous = Settings._callback_manager
    Settings.callback_manager = CallbackManager([handler])
    try:
        index = VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))
        engine = index.as_query_engine(llm=MockLLM(max_tokens=24), similarity_top_k=2)
        return str(engine.query("What does the runbook say about payment failures?"))
    finally:
        Settings._callback_manager = previous
