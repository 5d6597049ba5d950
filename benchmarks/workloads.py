"""The benchmark workloads: real LangChain, LangGraph and LlamaIndex objects with fake models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

#: Set in an invocation's ``config["metadata"]`` to make the model raise (errored traces).
FAIL = "bench_fail"


class ModelError(RuntimeError):
    pass


class EchoChatModel(BaseChatModel):
    """Answers at once, with usage; calls the tool first when given one (for the agent). Raises
    when the invocation's metadata carries ``FAIL``."""

    tool_name: str | None = None

    @property
    def _llm_type(self) -> str:
        return "echo"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.model_copy(update={"tool_name": tools[0].name})

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        if run_manager is not None and run_manager.metadata.get(FAIL):
            raise ModelError("the model failed")
        usage = {"input_tokens": 50, "output_tokens": 10, "total_tokens": 60}
        if self.tool_name and not isinstance(messages[-1], ToolMessage):
            message = AIMessage(
                content="",
                usage_metadata=usage,
                tool_calls=[{"name": self.tool_name, "args": {"a": 2, "b": 3}, "id": "call_1"}],
            )
        else:
            message = AIMessage(content="The answer is 5.", usage_metadata=usage)
        message.response_metadata = {"model_name": "gpt-4o-mini", "finish_reason": "stop"}
        return ChatResult(generations=[ChatGeneration(message=message)])


def _chain() -> Any:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    return (
        ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{q}")])
        | EchoChatModel()
        | StrOutputParser()
    )


def lc_chain() -> Callable[[dict[str, Any]], Any]:
    chain = _chain()
    return lambda config: chain.invoke({"q": "What is 2 + 3?"}, config=config)


def lc_stream() -> Callable[[dict[str, Any]], Any]:
    """The chain with ``.stream()``, read to the end."""
    chain = _chain()
    return lambda config: "".join(chain.stream({"q": "What is 2 + 3?"}, config=config))


def lg_agent() -> Callable[[dict[str, Any]], Any]:
    import warnings

    from langchain_core.tools import tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        agent = create_react_agent(EchoChatModel(), [add])
    return lambda config: agent.invoke({"messages": [("human", "2 + 3?")]}, config=config)


def lc_async20() -> Callable[[dict[str, Any]], Any]:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | EchoChatModel() | StrOutputParser()

    async def twenty(config: dict[str, Any]) -> Any:
        return await asyncio.gather(*(chain.ainvoke({"q": f"q{i}"}, config=config) for i in range(20)))

    return lambda config: asyncio.run(twenty(config))


def li_query() -> Callable[[dict[str, Any]], Any]:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    index = VectorStoreIndex.from_documents(
        [Document(text=f"Document {i}: restart the pod {i}.") for i in range(5)],
        embed_model=MockEmbedding(embed_dim=16),
    )
    engine = index.as_query_engine(llm=MockLLM(max_tokens=16), similarity_top_k=2)
    return lambda config: engine.query("How do I restart the pod?")


WORKLOADS = {
    "lc_chain": lc_chain,
    "lg_agent": lg_agent,
    "lc_stream": lc_stream,
    "lc_async20": lc_async20,
    "li_query": li_query,
    "lg_agent_paced": lg_agent,
}
LANGCHAIN_WORKLOADS = {"lc_chain", "lg_agent", "lc_stream", "lc_async20", "lg_agent_paced"}
#: Seconds the worker waits between invocations (not timed): the export thread then works while
#: the application is idle, as in a service between requests.
PACING = {"lg_agent_paced": 0.005}
#: The spans we deliver per invocation, as (traces, spans per trace): what the no-dispatch floor
#: creates directly with the OpenTelemetry SDK.
DELIVERED_SPANS = {
    "lc_chain": (1, 4),
    "lg_agent": (1, 15),
    "lc_stream": (1, 4),
    "lc_async20": (20, 4),
    "li_query": (1, 5),
    "lg_agent_paced": (1, 15),
}
