"""LlamaIndex runs as spans, global tracing, and nesting across frameworks, asserted over the wire."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.llamaindex import SentryLlamaIndexHandler
from tests.support.invariants import check_trace, check_traces
from tests.support.llamaindex_models import DOCS, build_index, li_openai, run_multiply_agent
from tests.support.markers import needs_llamaindex_agents
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import by_name, children_of, delivered, root_of

#: Tests here set LlamaIndex's global Settings.callback_manager; each gets back the one before it.
pytestmark = pytest.mark.usefixtures("llamaindex_settings")


#: A retriever query engine's spans below its root, with a mock LLM and mock embeddings.
QUERY_SPANS = [
    "CompactAndRefine.synthesize",
    "VectorIndexRetriever.retrieve",
    "embeddings MockEmbedding",
    "text_completion MockLLM",
]


def forget_received(receiver: LocalReceiver) -> None:
    """Deliver what is queued (index building), then forget it."""
    assert slc.flush(5)
    receiver.clear()


def query_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    root = next(s for s in spans if s.name.endswith(".query") and not s.parent_span_id)
    return [s for s in spans if s.trace_id == root.trace_id]


def check_each_trace(spans: list[ReceivedSpan], **kwargs: Any) -> None:
    """Every trace that arrived passes the invariant checker."""
    check_traces(spans, len({s.trace_id for s in spans}), **kwargs)


def test_query_with_settings_handler(sentry: LocalReceiver) -> None:
    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler(user="u1", trace={"team": "docs"})])
    index = build_index()
    forget_received(sentry)
    response = index.as_query_engine(llm=MockLLM(max_tokens=16), similarity_top_k=2).query("Why do charges fail?")
    assert str(response)
    spans = query_trace(delivered(sentry))
    check_trace(spans, generations=2)  # the query's embedding and the completion
    root = root_of(spans)
    assert root.name == "RetrieverQueryEngine.query" and root.op == "function"
    assert root.attributes["input.value"] == "Why do charges fail?"
    assert root.attributes["output.value"] == str(response)
    retrieve = by_name(spans, "VectorIndexRetriever.retrieve")
    synthesize = by_name(spans, "CompactAndRefine.synthesize")
    assert retrieve.parent_span_id == root.span_id and synthesize.parent_span_id == root.span_id
    assert retrieve.attributes["sentry_llm_callbacks.retrieval.document_count"] == 2
    docs = json.loads(retrieve.attributes["retrieval.documents"])
    assert {d["content"] for d in docs} <= set(DOCS) and all("score" in d for d in docs)
    (embedding,) = children_of(spans, retrieve)
    assert embedding.op == "gen_ai.embeddings" and embedding.name == "embeddings MockEmbedding"
    assert embedding.attributes["gen_ai.operation.name"] == "embeddings"
    generations = [s for s in spans if s.op in ("gen_ai.chat", "gen_ai.text_completion")]
    assert len(generations) == 1
    assert generations[0].parent_span_id == synthesize.span_id
    assert all(s.attributes["user.id"] == "u1" and s.attributes["trace.metadata.team"] == "docs" for s in spans)
    assert {s.trace_id for s in spans} == {root.trace_id}


def test_handler_passed_to_a_component(sentry: LocalReceiver) -> None:
    manager = CallbackManager([SentryLlamaIndexHandler(trace={"trace_name": "Docs QA"})])
    from llama_index.core.query_engine import RetrieverQueryEngine

    index = build_index()
    engine = RetrieverQueryEngine.from_args(index.as_retriever(), llm=MockLLM(max_tokens=8), callback_manager=manager)
    engine.query("q")
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    root = by_name(spans, "Docs QA")
    assert root.attributes["sentry.op"] == "function"
    below = sorted(s.name for s in spans if s.trace_id == root.trace_id and s is not root)
    assert below == [
        "CompactAndRefine.synthesize",
        "VectorIndexRetriever.retrieve",
        "embeddings MockEmbedding",
        "text_completion MockLLM",
    ]


def test_nothing_is_traced_without_a_handler(sentry: LocalReceiver) -> None:
    SentryLlamaIndexHandler()  # installs the bridge, but is given to no component
    build_index().as_query_engine(llm=MockLLM(max_tokens=8)).query("q")
    assert delivered(sentry) == []


def test_openai_generation_with_usage(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(
        Reply(
            content="Restart the pod.",
            usage={
                "prompt_tokens": 90,
                "completion_tokens": 6,
                "total_tokens": 96,
                "prompt_tokens_details": {"cached_tokens": 64},
            },
        )
    )
    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler()])
    index = build_index()
    forget_received(sentry)
    index.as_query_engine(llm=li_openai(openai_server, temperature=0.1)).query("What to do?")
    spans = query_trace(delivered(sentry))
    check_trace(spans, generations=2, usage=[(90, 6)])
    (generation,) = [s for s in spans if s.op == "gen_ai.chat"]
    a = generation.attributes
    assert generation.name == "chat gpt-4o-mini"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.temperature"] == 0.1
    assert a["gen_ai.response.id"] == "chatcmpl-stub123"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["gen_ai.usage.total_tokens"]) == (
        90,
        6,
        96,
    )
    assert a["gen_ai.usage.cache_read.input_tokens"] == 64
    assert "Restart the pod." in a["gen_ai.output.messages"]
    assert any("What to do?" in part["content"] for m in json.loads(a["gen_ai.input.messages"]) for part in m["parts"])


def test_streaming_query_ends_the_generation_when_the_stream_ends(
    sentry: LocalReceiver, openai_server: OpenAIServer
) -> None:
    import time

    openai_server.queue(Reply(content="one two three four five"))
    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler()])
    index = build_index()
    forget_received(sentry)
    response = index.as_query_engine(llm=li_openai(openai_server), streaming=True).query("stream it")
    time.sleep(0.2)  # the consumer is slow: the generation must still be open
    assert slc.stats()["runs_open"] >= 1
    text = "".join(response.response_gen)
    assert text.startswith("one two")
    spans = query_trace(delivered(sentry))
    check_trace(spans, generations=2, lazy=("CompactAndRefine.synthesize", "chat gpt-4o-mini"))
    (generation,) = [s for s in spans if s.op == "gen_ai.chat"]
    root = root_of(spans)
    assert generation.attributes["gen_ai.response.streaming"] is True
    assert generation.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert generation.end_ns > root.end_ns  # ended with the stream, after query() returned
    assert "one two three" in generation.attributes["gen_ai.output.messages"]
    assert slc.stats()["runs_open"] == 0


async def test_async_query_and_trace_context(sentry: LocalReceiver) -> None:
    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler()])
    index = build_index()
    forget_received(sentry)
    engine = index.as_query_engine(llm=MockLLM(max_tokens=8))

    async def ask(i: int) -> None:
        with slc.trace_context(session_id=f"s{i}", trace={"trace_name": f"Ask {i}"}):
            await asyncio.create_task(engine.aquery(f"question {i}"))

    await asyncio.gather(*(ask(i) for i in range(5)))
    spans = delivered(sentry)
    check_traces(spans, 5, generations=2)
    for i in range(5):
        root = by_name(spans, f"Ask {i}")
        members = [s for s in spans if s.trace_id == root.trace_id]
        assert sorted(s.name for s in members if s is not root) == [
            "CompactAndRefine.synthesize",
            "VectorIndexRetriever.retrieve",
            "embeddings MockEmbedding",
            "text_completion MockLLM",
        ]
        assert all(s.attributes["session.id"] == f"s{i}" for s in members)


def test_global_handler_traces_components_built_before(sentry: LocalReceiver) -> None:
    index = build_index()
    engine = index.as_query_engine(llm=MockLLM(max_tokens=8))
    slc.set_global_handler(frameworks=("llamaindex",), user="global")
    engine.query("q")
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    assert spans and all(s.attributes["user.id"] == "global" for s in spans)
    count = len(spans)
    slc.unset_global_handler(frameworks=("llamaindex",))
    engine.query("q2")
    assert len(delivered(sentry)) == count


def test_global_and_callback_handler_together_record_each_call_once(sentry: LocalReceiver) -> None:
    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler(user="explicit")])
    slc.set_global_handler(frameworks=("llamaindex",), user="global")
    index = build_index()
    forget_received(sentry)
    index.as_query_engine(llm=MockLLM(max_tokens=8)).query("q")
    spans = query_trace(delivered(sentry))
    check_trace(spans, generations=2)
    assert len([s for s in spans if s.op == "gen_ai.text_completion"]) == 1
    assert len([s for s in spans if s.name.endswith(".retrieve")]) == 1
    assert {s.attributes["user.id"] for s in spans} == {"explicit"}


@needs_llamaindex_agents
def test_function_agent_with_a_tool(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    slc.set_global_handler(frameworks=("llamaindex",))
    result = run_multiply_agent(openai_server)
    assert "42" in str(result)
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    root = root_of(spans)
    assert root.name == "invoke_agent calculator" and root.op == "gen_ai.invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "calculator"
    tool_span = next(s for s in spans if s.op == "gen_ai.execute_tool")
    assert tool_span.name == "execute_tool multiply"
    assert json.loads(tool_span.attributes["gen_ai.tool.call.arguments"]) == {"a": 6, "b": 7}
    assert tool_span.attributes["gen_ai.tool.call.result"] == "42"
    generations = [s for s in spans if s.op == "gen_ai.chat"]
    assert len(generations) == 2, [s.name for s in spans]
    assert all(s.attributes["gen_ai.response.streaming"] is True for s in generations)
    steps = [s for s in spans if s.op == "function" and s.parent_span_id == root.span_id]
    assert {"run_agent_step", "call_tool"} <= {s.name for s in steps}


def test_privacy_mode_for_llamaindex(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler()])
    build_index().as_query_engine(llm=MockLLM(max_tokens=8)).query("SECRET-QUESTION-91f")
    check_each_trace(delivered(receiver))
    raw = b"".join(receiver.bodies)
    assert raw
    assert b"SECRET-QUESTION-91f" not in raw
    for text in DOCS:
        assert text.encode()[:20] not in raw


def test_llamaindex_error_is_recorded_and_propagates(sentry: LocalReceiver) -> None:
    def explode(x: int) -> int:
        """Fails."""
        raise ZeroDivisionError("bad divisor")

    tool = FunctionTool.from_defaults(explode)
    slc.set_global_handler(frameworks=("llamaindex",))
    with pytest.raises(ZeroDivisionError):
        tool.call(x=1)
    check_trace(delivered(sentry), root_error=True)
    span = by_name(delivered(sentry), "execute_tool explode")
    assert span.status_code == 2
    assert span.attributes["error.type"] == "ZeroDivisionError"
    assert span.status_message == "ZeroDivisionError: bad divisor"


# --------------------------------------------------------------------------- across frameworks


def test_llamaindex_query_inside_a_langchain_tool(sentry: LocalReceiver) -> None:
    from langchain_core.tools import tool

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler()])
    engine = build_index().as_query_engine(llm=MockLLM(max_tokens=8))
    forget_received(sentry)

    @tool
    def search_docs(question: str) -> str:
        """Search the runbooks."""
        return str(engine.query(question))

    search_docs.invoke({"question": "charges?"}, config={"callbacks": [SentryCallbackHandler(user="lc-user")]})
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    tool_span = next(s for s in spans if s.op == "gen_ai.execute_tool")
    query = next(s for s in spans if s.name.endswith(".query"))
    assert query.parent_span_id == tool_span.span_id
    assert {s.trace_id for s in spans} == {tool_span.trace_id}
    assert all(s.attributes["user.id"] == "lc-user" for s in spans)


def test_langchain_chain_inside_a_llamaindex_tool(sentry: LocalReceiver) -> None:
    from langchain_core.runnables import RunnableLambda

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    chain = RunnableLambda(lambda x: x.upper()).with_config(run_name="Shout")

    def shout(text: str) -> str:
        """Shout the text."""
        return chain.invoke(text, config={"callbacks": [SentryCallbackHandler()]})

    slc.set_global_handler(frameworks=("llamaindex",))
    assert FunctionTool.from_defaults(shout).call(text="hi").content == "HI"
    spans = delivered(sentry)
    check_trace(spans, generations=0)
    tool_span = by_name(spans, "execute_tool shout")
    assert by_name(spans, "Shout").parent_span_id == tool_span.span_id


def test_langgraph_agent_whose_tool_queries_llamaindex_is_one_trace(sentry: LocalReceiver) -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from tests.support.langchain_models import ToolCallingFake

    class NamedToolCallingFake(ToolCallingFake):
        model: str = "fake-tool-caller"  # a model name, as every real chat model has

    engine = build_index().as_query_engine(llm=MockLLM(max_tokens=8))
    slc.set_global_handler()  # both frameworks
    forget_received(sentry)

    @tool
    def search_docs(question: str) -> str:
        """Search the runbooks."""
        return str(engine.query(question))

    from langgraph.prebuilt import create_react_agent

    messages = iter(
        [
            AIMessage(content="", tool_calls=[{"name": "search_docs", "args": {"question": "q"}, "id": "c1"}]),
            AIMessage(content="done"),
        ]
    )
    create_react_agent(NamedToolCallingFake(messages=messages), [search_docs]).invoke({"messages": [("human", "go")]})
    spans = delivered(sentry)
    check_trace(spans, generations=4)  # two agent turns, the query's embedding and completion
    assert len({s.trace_id for s in spans}) == 1
    root = root_of(spans)
    assert root.op == "gen_ai.invoke_agent"
    query = next(s for s in spans if s.name.endswith(".query"))
    tool_span = next(s for s in spans if s.op == "gen_ai.execute_tool")
    assert query.parent_span_id == tool_span.span_id
