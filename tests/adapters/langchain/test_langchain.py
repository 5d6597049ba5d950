"""LangChain and LangGraph runs as spans, asserted on what arrived over the wire."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult, Generation, LLMResult
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.graph import MessagesState

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_trace, check_traces
from tests.support.langchain_models import TinyRetriever, chat_openai, fake_model, paused, react_agent, simple_chain
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import by_name, children_of, delivered, root_of

SEED_METADATA = {
    "user": "user_12345",
    "session_id": "session_abc",
    "trace": {
        "trace_id": "incident_investigation_001",
        "trace_name": "Error Analysis Agent",
        "generation_name": "Analyze Stack Trace",
        "environment": "production",
        "release": "v2.1.0",
        "team": "ml",
        "priority": 2,
        "tags": ["a", "b"],
    },
}


# --------------------------------------------------------------------------- the seed example


def test_seed_example_maps_every_metadata_key(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()
    model = fake_model(
        "The stack trace shows a null dereference.", usage={"input_tokens": 30, "output_tokens": 9, "total_tokens": 39}
    )
    chain = simple_chain(model)
    result = chain.invoke({"question": "Why did it crash?"}, config={"callbacks": [handler], "metadata": SEED_METADATA})
    assert result == "The stack trace shows a null dereference."
    spans = delivered(sentry, 4)
    assert len(spans) == 4
    check_trace(spans, generations=1, usage=[(30, 9)])

    # trace_id: a non-hex string maps to the first 32 hex chars of its SHA-256, kept as metadata
    expected_trace = slc.trace_id_for("incident_investigation_001")
    assert {s.trace_id for s in spans} == {expected_trace}
    root = root_of(spans)
    assert root.name == "Error Analysis Agent" and root.parent_span_id == ""
    generation = by_name(spans, "Analyze Stack Trace")
    assert generation.parent_span_id == root.span_id
    for span in spans:
        a = span.attributes
        assert a["user.id"] == "user_12345"
        assert a["session.id"] == "session_abc" and a["gen_ai.conversation.id"] == "session_abc"
        assert a["sentry.environment"] == "production" and a["sentry.release"] == "v2.1.0"
        assert a["trace.metadata.team"] == "ml"
        assert a["trace.metadata.priority"] == 2
        assert a["trace.metadata.tags"] == '["a","b"]'
        assert a["trace.metadata.trace_id"] == "incident_investigation_001"
        assert a["sentry.description"] == span.name
        assert a["sentry.op"]
    assert generation.attributes["sentry.op"] == "gen_ai.chat"
    assert generation.attributes["gen_ai.operation.name"] == "chat"
    assert generation.attributes["gen_ai.usage.input_tokens"] == 30
    assert generation.attributes["gen_ai.usage.output_tokens"] == 9
    assert generation.attributes["gen_ai.usage.total_tokens"] == 39
    for name in ("ChatPromptTemplate", "StrOutputParser"):
        span = by_name(spans, name)
        assert span.attributes["sentry.op"] == "function"
        assert "gen_ai.operation.name" not in span.attributes
    assert root.attributes["sentry.op"] == "function"


def test_same_trace_id_joins_one_trace_across_invocations(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler(trace={"trace_id": "conversation-42"})
    chain = RunnableLambda(lambda x: x).with_config(run_name="Turn")
    chain.invoke(1, config={"callbacks": [handler]})
    chain.invoke(2, config={"callbacks": [handler]})
    spans = delivered(sentry, 2)
    assert len({s.trace_id for s in spans}) == 1
    assert spans[0].trace_id == slc.trace_id_for("conversation-42")


def test_hex_and_uuid_trace_ids_are_used_as_they_are(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()
    chain = RunnableLambda(lambda x: x)
    chain.invoke(
        1, config={"callbacks": [handler], "metadata": {"trace": {"trace_id": "0AF7651916CD43DD8448EB211C80319C"}}}
    )
    chain.invoke(
        1, config={"callbacks": [handler], "metadata": {"trace": {"trace_id": "123e4567-e89b-12d3-a456-426614174000"}}}
    )
    spans = delivered(sentry, 2)
    check_traces(spans, 2)
    assert sorted(s.trace_id for s in spans) == ["0af7651916cd43dd8448eb211c80319c", "123e4567e89b12d3a456426614174000"]
    assert all("trace.metadata.trace_id" not in s.attributes for s in spans)


def test_parent_span_id_makes_the_root_a_child_of_a_remote_span(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()
    trace = {"trace_id": "0af7651916cd43dd8448eb211c80319c", "parent_span_id": "b7ad6b7169203331"}
    simple_chain(fake_model("ok")).invoke(
        {"question": "q"}, config={"callbacks": [handler], "metadata": {"trace": trace}}
    )
    spans = delivered(sentry, 4)
    check_trace(spans, remote_parent="b7ad6b7169203331", generations=1)
    root = next(s for s in spans if s.parent_span_id == "b7ad6b7169203331")
    assert root.parent_is_remote is True
    assert root.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert all(s.parent_is_remote is False for s in spans if s is not root)


def test_span_name_names_generated_spans_but_run_name_wins(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler(trace={"span_name": "Pipeline step"})
    fetch = RunnableLambda(lambda x: x).with_config(run_name="Fetch docs")
    chain = RunnableLambda(lambda x: x) | fetch | fake_model("done").with_config(run_name="Write answer")
    chain.invoke("hi", config={"callbacks": [handler]})
    spans = delivered(sentry, 4)
    check_trace(spans, generations=1)
    names = sorted(s.name for s in spans)
    assert "Fetch docs" in names and "Write answer" in names
    root = root_of(spans)
    assert root.name == "RunnableSequence"
    assert names.count("Pipeline step") == 1  # the unnamed lambda
    assert by_name(spans, "Write answer").attributes["sentry.op"] == "gen_ai.chat"


def test_generated_names_have_no_slash_and_are_capped(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="openai/gpt-4o-mini", base_url=openai_server.base_url, api_key="sk-test")
    model.invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    long_name = "x" * 300
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()], "run_name": long_name})
    spans = delivered(sentry, 2)
    check_traces(spans, 2)
    generation = next(s for s in spans if s.op == "gen_ai.chat")
    assert generation.name == "chat gpt-4o-mini"
    assert generation.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert any(len(s.name) == 128 for s in spans)


# --------------------------------------------------------------------------- real model calls


class ResponseIdProbe(BaseCallbackHandler):
    """What the framework itself hands a callback as the response id."""

    response_id: str | None = None

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        message = response.generations[0][0].message
        self.response_id = message.response_metadata.get("id") or (response.llm_output or {}).get("id")


def test_chat_openai_generation_attributes(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(
        Reply(
            content="Paris.",
            usage={
                "prompt_tokens": 120,
                "completion_tokens": 40,
                "total_tokens": 160,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 25},
            },
        )
    )
    model = chat_openai(openai_server, temperature=0.2, max_tokens=256, top_p=0.9, seed=7)
    said = ResponseIdProbe()
    model.invoke("Capital of France?", config={"callbacks": [SentryCallbackHandler(), said]})
    (span,) = delivered(sentry, 1)
    check_trace([span], generations=1, usage=[(120, 40)])
    a = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert a["sentry.op"] == "gen_ai.chat" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 256
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == "7"
    if said.response_id is not None:
        assert a["gen_ai.response.id"] == said.response_id == "chatcmpl-stub123"
    else:  # this langchain-openai does not pass the response id on (0.3.0 did not)
        assert "gen_ai.response.id" not in a
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"], a["gen_ai.usage.total_tokens"]) == (
        120,
        40,
        160,
    )
    assert a["gen_ai.usage.cache_read.input_tokens"] == a["gen_ai.usage.input_tokens.cached"] == 100
    assert a["gen_ai.usage.reasoning.output_tokens"] == a["gen_ai.usage.output_tokens.reasoning"] == 25
    assert a["sentry_llm_callbacks.usage.source"] == "provider"
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}
    ]
    output = json.loads(a["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant" and output[0]["parts"][0]["content"] == "Paris."
    assert output[0]["finish_reason"] == "stop"


def test_streaming_records_time_to_first_chunk_and_streamed_usage(
    sentry: LocalReceiver, openai_server: OpenAIServer
) -> None:
    openai_server.queue(
        Reply(content="one two three four", usage={"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15})
    )
    model = chat_openai(openai_server, streaming=True, stream_usage=True)
    chunks = list(model.stream("count", config={"callbacks": [SentryCallbackHandler()]}))
    assert len(chunks) > 3
    (span,) = delivered(sentry, 1)
    check_trace([span], generations=1, usage=[(11, 4)])
    a = span.attributes
    assert a["gen_ai.response.streaming"] is True
    assert 0 < a["gen_ai.response.time_to_first_chunk"] <= span.duration_s
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (11, 4)
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"].startswith("one two")


def test_openrouter_reported_cost_is_kept(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(
        Reply(
            model="anthropic/claude-3.5-sonnet",
            usage={
                "prompt_tokens": 1000,
                "completion_tokens": 200,
                "total_tokens": 1200,
                "cost": 0.0042,
                "cost_details": {
                    "upstream_inference_prompt_cost": 0.003,
                    "upstream_inference_completions_cost": 0.0012,
                },
            },
        )
    )
    chat_openai(openai_server).invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(sentry, 1)
    check_trace([span], generations=1, usage=[(1000, 200)])
    a = span.attributes
    assert a["gen_ai.cost.total_tokens"] == pytest.approx(0.0042, abs=1e-12)
    assert a["gen_ai.cost.input_tokens"] == pytest.approx(0.003, abs=1e-12)
    assert a["gen_ai.cost.output_tokens"] == pytest.approx(0.0012, abs=1e-12)
    assert a["sentry_llm_callbacks.cost.source"] == "provider"
    assert a["gen_ai.usage.input_tokens"] == 1000


def test_missing_usage_is_reported_missing_not_zero(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(usage=None))
    before = slc.stats()["generations_without_usage"]
    chat_openai(openai_server).invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(sentry, 1)
    check_trace([span], generations=1, usage=[])
    assert span.attributes["sentry_llm_callbacks.usage.source"] == "missing"
    assert not any(k.startswith("gen_ai.usage.") for k in span.attributes)
    assert slc.stats()["generations_without_usage"] == before + 1


def test_tool_calls_and_tool_definitions(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Look up the weather for a city."""
        return f"Sunny in {city}"

    openai_server.queue(
        Reply(content="", tool_calls=[{"id": "call_1", "name": "get_weather", "args": {"city": "Oslo"}}])
    )
    model = chat_openai(openai_server).bind_tools([get_weather])
    message = model.invoke("Weather in Oslo?", config={"callbacks": [SentryCallbackHandler()]})
    get_weather.invoke(message.tool_calls[0], config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry, 2)
    check_traces(spans, 2)
    generation = next(s for s in spans if s.op == "gen_ai.chat")
    assert generation.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    definitions = json.loads(generation.attributes["gen_ai.tool.definitions"])
    assert definitions == [  # the conventions' flat shape, not OpenAI's nested one
        {
            "type": "function",
            "name": "get_weather",
            "description": "Look up the weather for a city.",
            "parameters": definitions[0]["parameters"],
        }
    ]
    assert definitions[0]["parameters"]["properties"]["city"]["type"] == "string"
    parts = json.loads(generation.attributes["gen_ai.output.messages"])[0]["parts"]
    assert {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}} in parts
    tool_span = next(s for s in spans if s.op == "gen_ai.execute_tool")
    assert tool_span.name == "execute_tool get_weather"
    assert tool_span.attributes["gen_ai.tool.name"] == "get_weather"
    assert tool_span.attributes["gen_ai.tool.description"] == "Look up the weather for a city."
    assert tool_span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert json.loads(tool_span.attributes["gen_ai.tool.call.arguments"]) == {"city": "Oslo"}
    assert tool_span.attributes["gen_ai.tool.call.result"] == "Sunny in Oslo"


def test_retriever_span_counts_documents(sentry: LocalReceiver) -> None:
    retriever = TinyRetriever(
        docs=[
            Document(page_content="Runbook: restart the pod.", metadata={"src": "wiki"}),
            Document(page_content="Postmortem 2024-03."),
        ]
    )
    retriever.invoke("pod crash", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(sentry, 1)
    check_trace([span])
    assert span.name == "TinyRetriever" and span.op == "function"
    assert span.attributes["sentry_llm_callbacks.retrieval.document_count"] == 2
    assert span.attributes["input.value"] == "pod crash"
    docs = json.loads(span.attributes["retrieval.documents"])
    assert docs[0] == {"content": "Runbook: restart the pod.", "metadata": {"src": "wiki"}}


# --------------------------------------------------------------------------- LangGraph


def test_langgraph_react_agent_shape(sentry: LocalReceiver) -> None:
    agent = react_agent()
    agent.invoke({"messages": [("human", "2+3?")]}, config={"callbacks": [SentryCallbackHandler(user="u1")]})
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    root = root_of(spans)
    assert root.name == "invoke_agent LangGraph"
    assert root.attributes["sentry.op"] == "gen_ai.invoke_agent"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "LangGraph"
    nodes = children_of(spans, root)
    assert [n.name for n in sorted(nodes, key=lambda s: s.start_ns)] == ["agent", "tools", "agent"]
    assert all(n.op == "function" and "gen_ai.operation.name" not in n.attributes for n in nodes)
    assert {n.attributes["sentry_llm_callbacks.langgraph.node"] for n in nodes} == {"agent", "tools"}
    tool_span = next(s for s in spans if s.op == "gen_ai.execute_tool")
    assert tool_span.parent_span_id == next(n for n in nodes if n.name == "tools").span_id
    assert len([s for s in spans if s.op == "gen_ai.chat"]) == 2
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert all(s.attributes["user.id"] == "u1" for s in spans)


def test_subgraph_is_an_agent_under_its_node(sentry: LocalReceiver) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    inner = react_agent(name="math_agent")
    outer = StateGraph(MessagesState)
    outer.add_node("delegate", inner)
    outer.add_edge(START, "delegate")
    outer.add_edge("delegate", END)
    outer.compile(name="supervisor").invoke(
        {"messages": [("human", "2+3?")]}, config={"callbacks": [SentryCallbackHandler()]}
    )
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    root = root_of(spans)
    assert root.name == "invoke_agent supervisor"
    delegate = by_name(spans, "delegate")
    inner_agents = [s for s in spans if s.op == "gen_ai.invoke_agent" and s is not root]
    assert len(inner_agents) == 1
    assert inner_agents[0].attributes["gen_ai.agent.name"] == "math_agent"
    assert inner_agents[0].parent_span_id == delegate.span_id


def test_hidden_runs_are_skipped_and_their_children_reattached(sentry: LocalReceiver) -> None:
    model = fake_model("hi")
    hidden = RunnableLambda(lambda x: model.invoke(x)).with_config(tags=["langsmith:hidden"], run_name="internal")
    outer = RunnableLambda(lambda x: hidden.invoke(x)).with_config(run_name="Outer")
    outer.invoke("hello", config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry)
    check_trace(spans, generations=1)
    assert "internal" not in [s.name for s in spans]
    outer_span = by_name(spans, "Outer")
    generation = next(s for s in spans if s.op == "gen_ai.chat")
    assert generation.parent_span_id == outer_span.span_id
    assert slc.stats()["runs_open"] == 0


def test_graph_interrupt_is_not_an_error(sentry: LocalReceiver) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.types import interrupt

    def approve(state: MessagesState) -> dict:
        answer = interrupt("approve?")
        return {"messages": [("ai", str(answer))]}

    graph = StateGraph(MessagesState)
    graph.add_node("approve", approve)
    graph.add_edge(START, "approve")
    graph.add_edge("approve", END)
    app = graph.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t1"}}
    app.invoke({"messages": [("human", "deploy")]}, config={"callbacks": [SentryCallbackHandler()], **thread})
    assert paused(app, thread)
    spans = delivered(sentry)
    check_trace(spans)
    assert spans and all(s.status_code != 2 for s in spans)
    assert by_name(spans, "approve").attributes.get("sentry_llm_callbacks.langgraph.interrupted") is True


@pytest.mark.parametrize(("goto", "mark"), [("billing", "billing"), (["a", "b"], True), ("", True)])
def test_handoff_to_the_parent_graph_is_marked_with_its_target(
    sentry: LocalReceiver, goto: Any, mark: str | bool
) -> None:
    from langgraph.errors import ParentCommand
    from langgraph.types import Command

    handler = SentryCallbackHandler()
    run_id = uuid.uuid4()
    handler.on_chain_start(None, {}, run_id=run_id, name="frontline")
    handler.on_chain_error(ParentCommand(Command(graph=Command.PARENT, goto=goto)), run_id=run_id)
    (span,) = check_trace(delivered(sentry, 1)).spans
    assert span.attributes["sentry_llm_callbacks.langgraph.handoff"] == mark
    assert "sentry_llm_callbacks.langgraph.interrupted" not in span.attributes


# --------------------------------------------------------------------------- errors


def test_user_exceptions_propagate_unchanged_and_are_recorded(sentry: LocalReceiver) -> None:
    boom = ValueError("disk quota exceeded on /var/data")

    @tool
    def failing(path: str) -> str:
        """Always fails."""
        raise boom

    chain = RunnableLambda(lambda x: x).with_config(run_name="Before") | failing
    with pytest.raises(ValueError) as info:
        chain.invoke("p", config={"callbacks": [SentryCallbackHandler()]})
    assert info.value is boom
    spans = delivered(sentry, 3)
    check_trace(spans, root_error=True)
    tool_span = next(s for s in spans if s.op == "gen_ai.execute_tool")
    assert tool_span.status_code == 2
    assert tool_span.status_message == "ValueError: disk quota exceeded on /var/data"
    assert tool_span.attributes["error.type"] == "ValueError"
    name, event = tool_span.events[0]
    assert name == "exception"
    assert event["exception.type"] == "ValueError"
    assert "disk quota" in event["exception.message"]
    assert "Traceback" in event["exception.stacktrace"]
    assert by_name(spans, "Before").status_code != 2
    assert root_of(spans).status_code == 2


async def test_cancelled_run_still_ends_its_span(sentry: LocalReceiver) -> None:
    started = asyncio.Event()

    async def slow(x: Any) -> Any:
        started.set()
        await asyncio.sleep(10)  # a step still running when it is cancelled (long before 10 s)
        return x

    chain = RunnableLambda(lambda x: x, afunc=slow).with_config(run_name="Slow step")
    task = asyncio.create_task(chain.ainvoke(1, config={"callbacks": [SentryCallbackHandler()]}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spans = delivered(sentry, 1)
    check_trace(spans, root_error=True)  # the user saw the CancelledError
    span = by_name(spans, "Slow step")
    assert span.attributes["sentry_llm_callbacks.run.cancelled"] is True
    assert span.attributes["error.type"] == "CancelledError"
    assert slc.stats()["runs_open"] == 0


def test_abandoned_stream_is_ended(sentry: LocalReceiver) -> None:
    import gc

    model = fake_model("a b c d e f g h")
    chain = simple_chain(model)
    stream = chain.stream({"question": "q"}, config={"callbacks": [SentryCallbackHandler()]})
    next(stream)
    next(stream)
    stream.close()  # the consumer walks away
    del stream
    gc.collect()
    spans = delivered(sentry)
    closed = sorted((s.name, s.attributes.get("sentry_llm_callbacks.stream.closed_early")) for s in spans)
    # the prompt had finished; the sequence, the model and the parser stopped with the consumer
    assert closed == [
        ("ChatPromptTemplate", None),
        ("RunnableSequence", True),
        ("StrOutputParser", True),
        ("chat fake-chat", True),
    ]
    check_trace(spans, generations=1)
    assert slc.stats()["runs_open"] == 0


def test_reaper_ends_runs_that_never_end(sentry: LocalReceiver) -> None:
    from sentry_llm_callbacks import _state

    slc.configure(dsn=sentry.dsn, run_timeout=0.05)
    handler = SentryCallbackHandler()
    import uuid

    run_id = uuid.uuid4()
    handler.on_chain_start(None, {"x": 1}, run_id=run_id, name="Never ends")
    assert slc.stats()["runs_open"] == 1
    import time

    time.sleep(0.1)  # the run must be older than the timeout: its age is what the reaper reads
    assert _state.recorder.reap(0.05) == 1
    spans = delivered(sentry, 1)
    check_trace(spans, root_error=True)  # abandoned: ERROR "abandoned"
    span = by_name(spans, "Never ends")
    assert span.attributes["sentry_llm_callbacks.run.abandoned"] is True
    assert slc.stats()["runs_abandoned"] >= 1 and slc.stats()["runs_open"] == 0
    handler.on_chain_end({"x": 2}, run_id=run_id)  # a late end is ignored
    assert slc.flush(2)
    assert len(sentry.spans) == 1


# --------------------------------------------------------------------------- concurrency


async def test_twenty_concurrent_ainvoke_keep_their_own_trees(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()

    async def one(i: int) -> str:
        chain = simple_chain(fake_model(f"answer {i}"))
        return await chain.ainvoke(
            {"question": f"q{i}"},
            config={"callbacks": [handler], "metadata": {"trace": {"trace_name": f"Request {i}"}}},
        )

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [f"answer {i}" for i in range(20)]
    spans = delivered(sentry, 80)
    assert len(spans) == 80
    check_traces(spans, 20, generations=1)
    for i in range(20):
        root = by_name(spans, f"Request {i}")
        members = [s for s in spans if s.trace_id == root.trace_id]
        assert len(members) == 4
        assert all(s.parent_span_id == root.span_id for s in members if s is not root)
        generation = next(s for s in members if s.op == "gen_ai.chat")
        assert f"answer {i}" in generation.attributes["gen_ai.output.messages"]


def test_thread_pool_sharing_one_handler(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()

    def one(i: int) -> str:
        return simple_chain(fake_model(f"a{i}")).invoke(
            {"question": str(i)}, config={"callbacks": [handler], "metadata": {"trace": {"trace_name": f"T{i}"}}}
        )

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(40))) == [f"a{i}" for i in range(40)]
    spans = delivered(sentry, 160)
    assert len({s.trace_id for s in spans}) == 40
    check_traces(spans, 40, generations=1)
    for i in range(40):
        root = by_name(spans, f"T{i}")
        members = [s for s in spans if s.trace_id == root.trace_id]
        assert len(members) == 4 and all(s.parent_span_id == root.span_id for s in members if s is not root)


def test_batch_runs_each_become_a_trace(sentry: LocalReceiver) -> None:
    chain = RunnableLambda(lambda x: x * 2).with_config(run_name="Double")
    assert chain.batch([1, 2, 3], config={"callbacks": [SentryCallbackHandler()]}) == [2, 4, 6]
    spans = delivered(sentry, 3)
    assert len({s.trace_id for s in spans}) == 3
    check_traces(spans, 3)


def test_stream_of_a_chain(sentry: LocalReceiver) -> None:
    chain = simple_chain(fake_model("streamed words here"))
    out = "".join(chain.stream({"question": "q"}, config={"callbacks": [SentryCallbackHandler()]}))
    assert out == "streamed words here"
    spans = delivered(sentry, 4)
    check_trace(spans, generations=1)
    generation = next(s for s in spans if s.op == "gen_ai.chat")
    assert generation.attributes["gen_ai.response.streaming"] is True
    assert "gen_ai.response.time_to_first_chunk" in generation.attributes


# --------------------------------------------------------------------------- malformed payloads


class ScriptedLLM(BaseLLM):
    """A completion model whose provider answers whatever ``result`` builds, malformed or not."""

    result: Any
    model_name: str = "scripted-1"

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _generate(self, prompts: list[str], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> LLMResult:
        return self.result()


class ScriptedChat(BaseChatModel):
    """A chat model whose provider answers whatever ``result`` builds."""

    result: Any
    model_name: str = "scripted-chat-1"

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _generate(self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return self.result()


def ended_cleanly(span: ReceivedSpan) -> None:
    assert span.status_code != 2, f"{span.name} is ERROR: {span.status_message}"
    assert "sentry_llm_callbacks.run.abandoned" not in span.attributes


def test_generation_info_that_is_not_a_dict_costs_only_the_finish_reasons(sentry: LocalReceiver) -> None:
    def reply() -> LLMResult:
        generation = Generation.model_construct(text="pong", generation_info="not a dict", type="Generation")
        usage = {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
        return LLMResult(generations=[[generation]], llm_output={"token_usage": usage, "model_name": "scripted-1"})

    chain = RunnableLambda(lambda x: x).with_config(run_name="Before") | ScriptedLLM(result=reply)
    assert chain.invoke("ping", config={"callbacks": [SentryCallbackHandler()]}) == "pong"
    trace = check_trace(delivered(sentry, 3), generations=1, usage=[(4, 1)])
    (generation,) = trace.generations
    ended_cleanly(generation)
    assert generation.attributes["gen_ai.response.model"] == "scripted-1"
    assert "gen_ai.response.finish_reasons" not in generation.attributes
    assert json.loads(generation.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "pong"
    assert slc.stats()["runs_open"] == 0


def test_usage_given_as_strings_is_reported_missing_and_the_run_ends(sentry: LocalReceiver) -> None:
    def completion() -> LLMResult:
        usage = {"prompt_tokens": "12", "completion_tokens": "3"}
        return LLMResult(generations=[[Generation(text="a")]], llm_output={"token_usage": usage, "model_name": "m"})

    def chat() -> ChatResult:
        message = AIMessage(content="b", response_metadata={"token_usage": {"prompt_tokens": "12", "x": None}})
        return ChatResult(generations=[ChatGeneration(message=message)])

    handler = SentryCallbackHandler()
    ScriptedLLM(result=completion).invoke("q", config={"callbacks": [handler]})
    ScriptedChat(result=chat).invoke("q", config={"callbacks": [handler]})
    traces = check_traces(delivered(sentry, 2), 2, generations=1)
    for trace in traces:
        (generation,) = trace.generations
        ended_cleanly(generation)
        assert generation.attributes["sentry_llm_callbacks.usage.source"] == "missing"
    assert slc.stats()["runs_open"] == 0


def test_empty_generations_end_the_run(sentry: LocalReceiver) -> None:
    def empty() -> LLMResult:
        return LLMResult.model_construct(generations=[[]], llm_output=None, run=None, type="LLMResult")

    with pytest.raises(IndexError):  # LangChain itself cannot read an empty answer
        ScriptedLLM(result=empty).invoke("q", config={"callbacks": [SentryCallbackHandler()]})
    (span,) = delivered(sentry, 1)
    ended_cleanly(span)
    assert span.attributes["gen_ai.request.model"] or span.attributes["sentry.op"] == "gen_ai.text_completion"
    assert slc.stats()["runs_open"] == 0


def malformed_results() -> list[Any]:
    usage = {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}
    hostile_message = AIMessage.model_construct(
        content="hi", response_metadata="oops", usage_metadata=usage, type="ai", tool_calls=[], id=None
    )
    return [
        LLMResult.model_construct(generations=[[Generation(text="x")]], llm_output=["wrong"], run=None),
        LLMResult.model_construct(generations=[[ChatGeneration(message=AIMessage("x"))]], llm_output="str", run=None),
        LLMResult.model_construct(generations=[[ChatGeneration.model_construct(message=hostile_message)]], run=None),
        LLMResult.model_construct(generations="garbage", llm_output=None, run=None),
        LLMResult.model_construct(generations=[None], llm_output=None, run=None),
        LLMResult.model_construct(generations=[[object()]], llm_output={"model_name": 3}, run=None),
        None,
        object(),
    ]


def test_hostile_llm_end_payloads_end_the_run_with_what_could_be_read(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()
    results = malformed_results()
    for i, result in enumerate(results):
        run_id = uuid.uuid4()
        handler.on_chat_model_start(
            {"kwargs": {"model": "fake-model"}},
            [[HumanMessage("hi")]],
            run_id=run_id,
            invocation_params={"temperature": 0.5},
            metadata={"trace": {"trace_name": f"payload {i}"}},
        )
        handler.on_llm_end(result, run_id=run_id)
    assert slc.stats()["runs_open"] == 0
    traces = check_traces(delivered(sentry, len(results)), len(results), generations=1)
    for trace in traces:
        ended_cleanly(trace.root)
        assert trace.root.attributes["gen_ai.request.model"] == "fake-model"
        assert trace.root.attributes["gen_ai.request.temperature"] == 0.5
    # the usage_metadata survives a response_metadata of the wrong type
    hostile = next(t for t in traces if t.root.name == "payload 2")
    assert hostile.usage() == [(9, 2)]


def test_hostile_start_payloads_still_open_and_close_their_runs(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()
    root, model, tool_run, retriever, child = (uuid.uuid4() for _ in range(5))
    handler.on_chain_start(None, {"q": 1}, run_id=root, metadata="not a dict", tags="not a list", name=7)
    handler.on_chain_start("str", None, run_id=child, parent_run_id=root, metadata={"langgraph_node": object()})
    handler.on_chat_model_start(
        {"kwargs": {"model": "m-2"}}, None, run_id=model, parent_run_id=child, invocation_params="p", metadata=[1]
    )
    odd_reason = Generation(text="x", generation_info={"finish_reason": 5})
    handler.on_llm_end(LLMResult(generations=[[odd_reason]]), run_id=model)
    handler.on_tool_start({"name": 3, "description": ["x"]}, "in", run_id=tool_run, parent_run_id=child, tags=[None])
    handler.on_tool_end(object(), run_id=tool_run)
    handler.on_retriever_start(None, None, run_id=retriever, parent_run_id=child, metadata=None)
    handler.on_retriever_end(iter([Document(page_content="d")]), run_id=retriever)  # no len()
    handler.on_chain_end(None, run_id=child)
    handler.on_chain_end({"out": 1}, run_id=root)
    assert slc.stats()["runs_open"] == 0
    trace = check_trace(delivered(sentry, 5), generations=1)
    assert trace.root.name == "chain"
    assert all(s.status_code != 2 for s in trace.spans)
    retrieval = next(s for s in trace.spans if s.name == "retriever")
    assert "sentry_llm_callbacks.retrieval.document_count" not in retrieval.attributes


def test_a_send_carries_its_state_in_the_conversation_shape(sentry: LocalReceiver) -> None:
    """A LangGraph ``Send`` in a routing step's output is written like the rest of the trace's
    content: its node, and its state's messages as role / parts, not as the messages' raw fields."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def route(state: MessagesState) -> list[Any]:
        return [Send("answer", {"messages": state["messages"], "topic": "keys"})]

    def answer(state: dict) -> dict:
        return {"messages": [AIMessage("rotated")]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_conditional_edges(START, route, ["answer"])
    graph.add_edge("answer", END)
    graph.compile(name="router").invoke(
        {"messages": [HumanMessage("How do I rotate keys?")]}, config={"callbacks": [SentryCallbackHandler()]}
    )
    trace = check_trace(delivered(sentry, 3), generations=0)
    routing = next(s for s in trace.spans if s.name == "route")
    (sent,) = json.loads(routing.attributes["output.value"])
    assert sent["type"] == "Send" and sent["node"] == "answer" and sent["arg"]["topic"] == "keys"
    question = {"role": "user", "parts": [{"type": "text", "content": "How do I rotate keys?"}]}
    assert sent["arg"]["messages"] == [question]
