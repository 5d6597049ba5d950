"""LangChain and LlamaIndex nested inside each other with global tracing on: one trace each time.

Both frameworks' models are real OpenAI clients (``ChatOpenAI``, LlamaIndex ``OpenAI``) talking
to the local OpenAI-compatible server, so every generation carries the usage of its own reply.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.tools import FunctionTool

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from tests.support.invariants import Trace, check_trace
from tests.support.markers import needs_async_context, needs_llamaindex_agents
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import delivered

DOCS = ["Runbook: restart the payments pod when charges fail.", "On-call: page the payments team."]


#: Tests here set LlamaIndex's global Settings.callback_manager; each gets back the one before it.
pytestmark = pytest.mark.usefixtures("llamaindex_settings")


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_openai(server: OpenAIServer) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key="x")


def li_openai(server: OpenAIServer) -> Any:
    from llama_index.llms.openai import OpenAI

    return OpenAI(model="gpt-4o-mini", api_base=server.base_url, api_key="x")


def query_engine(server: OpenAIServer) -> Any:
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCS], embed_model=MockEmbedding(embed_dim=8))
    return index.as_query_engine(llm=li_openai(server), similarity_top_k=1)


def settled(receiver: LocalReceiver) -> list[ReceivedSpan]:
    spans = delivered(receiver)
    assert slc.stats()["runs_open"] == 0, slc.stats()
    return spans


def only(trace: Trace, predicate: Any) -> ReceivedSpan:
    matches = [s for s in trace.spans if predicate(s)]
    assert len(matches) == 1, sorted(s.name for s in matches)
    return matches[0]


@pytest.mark.parametrize("mode", ["sync", pytest.param("async", marks=needs_async_context)])
def test_llamaindex_query_inside_a_langchain_agent_tool(
    sentry: LocalReceiver, openai_server: OpenAIServer, mode: str
) -> None:
    from langchain_core.tools import tool
    from langgraph.prebuilt import create_react_agent

    engine = query_engine(openai_server)

    @tool
    def search_docs(question: str) -> str:
        """Search the runbooks."""
        return str(engine.query(question))

    @tool("search_docs")
    async def asearch_docs(question: str) -> str:
        """Search the runbooks."""
        return str(await engine.aquery(question))

    openai_server.queue(
        Reply(
            content="",
            tool_calls=[{"id": "c1", "name": "search_docs", "args": {"question": "charges?"}}],
            usage=usage(50, 5),
        ),
        Reply(content="Restart the pod.", usage=usage(30, 3)),  # the LlamaIndex synthesis
        Reply(content="Restart the payments pod.", usage=usage(80, 8)),
    )
    docs_tool = search_docs if mode == "sync" else asearch_docs
    agent = create_react_agent(chat_openai(openai_server), [docs_tool])
    slc.set_global_handler()  # both frameworks
    assert slc.flush(5)
    sentry.clear()
    question = {"messages": [("human", "Why do charges fail?")]}
    if mode == "sync":
        agent.invoke(question)
    else:
        asyncio.run(agent.ainvoke(question))
    trace = check_trace(settled(sentry), generations=4, usage=[(50, 5), (30, 3), (80, 8)])
    assert trace.root.op == "gen_ai.invoke_agent"
    tool_span = only(trace, lambda s: s.op == "gen_ai.execute_tool")
    query = only(trace, lambda s: s.name == "RetrieverQueryEngine.query")
    assert trace.parent(query) is tool_span
    synthesis_call = only(trace, lambda s: s.op == "gen_ai.chat" and tool_span in trace.ancestors(s))
    assert (
        synthesis_call.attributes["gen_ai.usage.input_tokens"],
        synthesis_call.attributes["gen_ai.usage.output_tokens"],
    ) == (30, 3)


@needs_llamaindex_agents
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langchain_chain_inside_a_llamaindex_agent_tool(
    sentry: LocalReceiver, openai_server: OpenAIServer, mode: str
) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from llama_index.core.agent.workflow import FunctionAgent

    chain = (
        ChatPromptTemplate.from_messages([("human", "Summarise: {text}")])
        | chat_openai(openai_server)
        | StrOutputParser()
    ).with_config(run_name="Summarise")

    def summarise(text: str) -> str:
        """Summarise a text."""
        return chain.invoke({"text": text})

    async def asummarise(text: str) -> str:
        """Summarise a text."""
        return await chain.ainvoke({"text": text})

    openai_server.queue(
        Reply(
            content="",
            tool_calls=[{"id": "t1", "name": "summarise", "args": {"text": "a long incident report"}}],
            usage=usage(70, 7),
        ),
        Reply(content="Short report.", usage=usage(20, 2)),  # the LangChain chain's model
        Reply(content="Here is the summary: short report.", usage=usage(90, 9)),
    )
    fn = {"fn": summarise} if mode == "sync" else {"async_fn": asummarise}
    agent = FunctionAgent(
        name="writer", tools=[FunctionTool.from_defaults(name="summarise", **fn)], llm=li_openai(openai_server)
    )
    slc.set_global_handler()

    async def run() -> Any:
        return await agent.run("Summarise the incident report.")

    assert "summary" in str(asyncio.run(run()))
    # The agent's own calls stream (usage is not reported in the stream); the chain's call does not.
    trace = check_trace(settled(sentry), generations=3, usage=[(20, 2)])
    assert trace.root.name == "invoke_agent writer"
    tool_span = only(trace, lambda s: s.name == "execute_tool summarise")
    chain_span = only(trace, lambda s: s.name == "Summarise")
    assert trace.parent(chain_span) is tool_span
    model = only(trace, lambda s: s.op == "gen_ai.chat" and chain_span in trace.ancestors(s))
    assert model.attributes["gen_ai.usage.input_tokens"] == 20
