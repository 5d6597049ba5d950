"""Real-world LangChain and LangGraph usage, each run through the trace-invariant checker.

Every scenario is written as an application would write it, against real framework objects (fake
chat models from langchain-core, or ChatOpenAI against the local OpenAI-compatible server), and
asserts on what arrived at the local receiver: one trace per invocation with the right shape, each
LLM call one generation with its own usage, errors where the user's code failed and only there.
"""

from __future__ import annotations

import asyncio
import gc
import json
import operator
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, chain
from langchain_core.tools import tool
from langgraph.graph import MessagesState
from langgraph.types import Command
from pydantic import BaseModel

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import Trace, check_trace, check_traces
from tests.support.langchain_models import add, multiply, paused
from tests.support.markers import needs_async_context
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import delivered

CLOSED_EARLY = "sentry_llm_callbacks.stream.closed_early"
INTERRUPTED = "sentry_llm_callbacks.langgraph.interrupted"
HANDOFF = "sentry_llm_callbacks.langgraph.handoff"


def reply(content: str, usage: tuple[int, int], tool_calls: list[dict[str, Any]] | None = None) -> AIMessage:
    """An answer with its own token usage, as a provider reports it."""
    counts = {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)}
    return AIMessage(content=content, usage_metadata=counts, tool_calls=tool_calls or [])


class ScenarioModel(GenericFakeChatModel):
    """A fake chat model that binds tools and streams its answers with their usage (the last
    chunk carries it, as OpenAI's ``stream_usage`` does)."""

    model_name: str = "scenario-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _reply(self, messages: Any) -> AIMessage:
        return next(self.messages)

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Iterator[Any]:
        message = self._reply(messages)
        assert isinstance(message, AIMessage)
        words = str(message.content).split(" ") if message.content else [""]
        for i, word in enumerate(words):
            last = i == len(words) - 1
            chunk = AIMessageChunk(
                content=word if i == 0 else " " + word,
                usage_metadata=message.usage_metadata if last else None,
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": n}
                    for n, c in enumerate(message.tool_calls)
                ]
                if last
                else [],
            )
            if run_manager is not None:
                run_manager.on_llm_new_token(str(chunk.content), chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)


def model(*messages: AIMessage) -> ScenarioModel:
    return ScenarioModel(messages=iter(messages))


def config(handler: SentryCallbackHandler | None = None, **extra: Any) -> dict[str, Any]:
    return {"callbacks": [handler or SentryCallbackHandler()], **extra}


def by_name(trace: Trace, name: str) -> ReceivedSpan:
    return trace.named(name)


def ok(span: ReceivedSpan) -> bool:
    return span.status_code != 2


def open_runs() -> int:
    return int(slc.stats()["runs_open"])


@tool
def flaky_lookup(key: str) -> str:
    """Look a key up in a store that is down."""
    raise ConnectionError(f"store unreachable for {key}")


# --------------------------------------------------------------------------- LangGraph


def test_interrupt_then_resume_is_two_traces_neither_failed(sentry: LocalReceiver) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.types import Command, interrupt

    llm = model(reply("Deploy plan: roll out v2.", (30, 8)), reply("Deployed.", (45, 3)))

    def plan(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    def approve(state: MessagesState) -> dict:
        decision = interrupt("approve the plan?")
        return {"messages": [("human", str(decision))]}

    def execute(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    for name, node in (("plan", plan), ("approve", approve), ("execute", execute)):
        graph.add_node(name, node)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "approve")
    graph.add_edge("approve", "execute")
    graph.add_edge("execute", END)
    app = graph.compile(checkpointer=InMemorySaver())
    handler = SentryCallbackHandler()
    thread = {"configurable": {"thread_id": "deploy-1"}}
    app.invoke({"messages": [("human", "deploy v2")]}, config=config(handler, **thread))
    assert paused(app, thread)
    final = app.invoke(Command(resume="yes"), config=config(handler, **thread))
    assert final["messages"][-1].content == "Deployed."

    asked, resumed = check_traces(delivered(sentry), 2)
    check_trace(asked.spans, generations=1, usage=[(30, 8)])
    check_trace(resumed.spans, generations=1, usage=[(45, 3)])
    assert by_name(asked, "approve").attributes[INTERRUPTED] is True
    assert INTERRUPTED not in by_name(resumed, "approve").attributes
    assert all(ok(s) for s in asked.spans + resumed.spans)
    assert [s.name for s in resumed.children(resumed.root)] == ["approve", "execute"]
    assert open_runs() == 0


class FanOut(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


def fan_out_graph(llm: ScenarioModel) -> Any:
    from langgraph.graph import END, START, StateGraph

    def research(state: dict) -> dict:
        return {"notes": [str(llm.invoke(f"research {state['topic']}").content)]}

    async def aresearch(state: dict) -> dict:
        return {"notes": [str((await llm.ainvoke(f"research {state['topic']}")).content)]}

    def dispatch(state: FanOut) -> list[Any]:
        from langgraph.types import Send

        return [Send("research", {"topic": t}) for t in state["topics"]]

    graph = StateGraph(FanOut)
    graph.add_node("research", RunnableLambda(research, afunc=aresearch))
    graph.add_conditional_edges(START, dispatch, ["research"])
    graph.add_edge("research", END)
    return graph.compile(name="fan_out")


FAN_OUT_USAGE = [(10, 1), (20, 2), (30, 3)]


def fan_out_model() -> ScenarioModel:
    return model(*(reply(f"note {i}", usage) for i, usage in enumerate(FAN_OUT_USAGE)))


def check_fan_out(spans: list[ReceivedSpan]) -> None:
    trace = check_trace(spans, generations=3, usage=FAN_OUT_USAGE)
    assert trace.root.name == "invoke_agent fan_out"
    workers = [s for s in trace.children(trace.root) if s.name == "research"]
    assert len(workers) == 3 and all(w.attributes["sentry_llm_callbacks.langgraph.node"] == "research" for w in workers)
    for worker in workers:
        (generation,) = [s for s in trace.spans if worker in trace.ancestors(s) and s.op == "gen_ai.chat"]
        assert generation in trace.generations


def test_send_fan_out_sync(sentry: LocalReceiver) -> None:
    result = fan_out_graph(fan_out_model()).invoke({"topics": ["a", "b", "c"]}, config=config())
    assert sorted(result["notes"]) == ["note 0", "note 1", "note 2"]
    check_fan_out(delivered(sentry))


@needs_async_context
async def test_send_fan_out_async(sentry: LocalReceiver) -> None:
    result = await fan_out_graph(fan_out_model()).ainvoke({"topics": ["a", "b", "c"]}, config=config())
    assert sorted(result["notes"]) == ["note 0", "note 1", "note 2"]
    check_fan_out(delivered(sentry))


def test_compiled_subgraph_as_a_node(sentry: LocalReceiver) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    llm = model(reply("triaged", (12, 2)), reply("fixed", (18, 4)))

    def triage(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    def fix(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    inner = StateGraph(MessagesState)
    inner.add_node("fix", fix)
    inner.add_edge(START, "fix")
    inner.add_edge("fix", END)
    outer = StateGraph(MessagesState)
    outer.add_node("triage", triage)
    outer.add_node("repair", inner.compile(name="repair_team"))
    outer.add_edge(START, "triage")
    outer.add_edge("triage", "repair")
    outer.add_edge("repair", END)
    outer.compile(name="oncall").invoke({"messages": [("human", "pager fired")]}, config=config())

    trace = check_trace(delivered(sentry), generations=2, usage=[(12, 2), (18, 4)])
    assert trace.root.name == "invoke_agent oncall"
    repair = by_name(trace, "repair")
    team = by_name(trace, "invoke_agent repair_team")
    assert trace.parent(team) is repair and team.op == "gen_ai.invoke_agent"
    assert trace.parent(by_name(trace, "fix")) is team


def test_command_handoff_to_the_parent_is_not_an_interrupt(sentry: LocalReceiver) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.types import Command

    llm = model(reply("this needs billing", (15, 4)), reply("refund issued", (22, 5)))

    def frontline(state: MessagesState) -> Command:
        answer = llm.invoke(state["messages"])
        return Command(graph=Command.PARENT, goto="billing", update={"messages": [answer]})

    def billing(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    support = StateGraph(MessagesState)
    support.add_node("frontline", frontline)
    support.add_edge(START, "frontline")
    parent = StateGraph(MessagesState)
    parent.add_node("support", support.compile(name="support_team"))
    parent.add_node("billing", billing)
    parent.add_edge(START, "support")
    parent.add_edge("billing", END)
    result = parent.compile(name="helpdesk").invoke({"messages": [("human", "refund please")]}, config=config())
    assert result["messages"][-1].content == "refund issued"

    trace = check_trace(delivered(sentry), generations=2, usage=[(15, 4), (22, 5)])
    assert all(ok(s) for s in trace.spans)
    assert not [s.name for s in trace.spans if INTERRUPTED in s.attributes]
    handed_off = [s for s in trace.spans if HANDOFF in s.attributes]
    assert handed_off and {s.attributes[HANDOFF] for s in handed_off} == {"billing"}
    assert by_name(trace, "frontline") in handed_off
    assert trace.parent(by_name(trace, "billing")) is trace.root


def react_model(*messages: AIMessage) -> ScenarioModel:
    return model(*messages)


def test_react_agent_with_parallel_tool_calls(sentry: LocalReceiver) -> None:
    from langgraph.prebuilt import create_react_agent

    llm = react_model(
        reply(
            "",
            (40, 12),
            tool_calls=[
                {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"},
                {"name": "multiply", "args": {"a": 4, "b": 5}, "id": "call_mul"},
            ],
        ),
        reply("5 and 20.", (70, 6)),
    )
    # version="v2": each tool call its own task (LangGraph's default since langgraph-prebuilt 0.2)
    agent = create_react_agent(llm, [add, multiply], name="calculator", version="v2")
    result = agent.invoke({"messages": [("human", "2+3 and 4*5?")]}, config=config())
    assert result["messages"][-1].content == "5 and 20."

    trace = check_trace(delivered(sentry), generations=2, usage=[(40, 12), (70, 6)])
    assert trace.root.name == "invoke_agent calculator"
    # one "tools" node per call (LangGraph sends each tool call to its own task), side by side
    assert [n.name for n in trace.children(trace.root)] == ["agent", "tools", "tools", "agent"]
    tools = [s for s in trace.spans if s.op == "gen_ai.execute_tool"]
    assert sorted(s.name for s in tools) == ["execute_tool add", "execute_tool multiply"]
    assert {trace.parent(s).name for s in tools} == {"tools"}  # type: ignore[union-attr]
    assert trace.parent(tools[0]) is not trace.parent(tools[1])
    assert {s.attributes["gen_ai.tool.call.result"] for s in tools} == {"5", "20"}


def test_tool_error_handled_by_the_tool_node_marks_only_the_tool(sentry: LocalReceiver) -> None:
    from langgraph.prebuilt import ToolNode, create_react_agent

    llm = react_model(
        reply("", (20, 5), tool_calls=[{"name": "flaky_lookup", "args": {"key": "k1"}, "id": "c1"}]),
        reply("The store is down.", (35, 6)),
    )
    agent = create_react_agent(llm, ToolNode([flaky_lookup], handle_tool_errors=True))
    result = agent.invoke({"messages": [("human", "look up k1")]}, config=config())
    assert result["messages"][-1].content == "The store is down."

    trace = check_trace(delivered(sentry), generations=2, usage=[(20, 5), (35, 6)])
    (tool_span,) = [s for s in trace.spans if s.op == "gen_ai.execute_tool"]
    assert tool_span.status_code == 2 and tool_span.attributes["error.type"] == "ConnectionError"
    assert all(ok(s) for s in trace.spans if s is not tool_span)


def test_tool_error_not_handled_fails_the_run(sentry: LocalReceiver) -> None:
    from langgraph.prebuilt import ToolNode, create_react_agent

    llm = react_model(reply("", (20, 5), tool_calls=[{"name": "flaky_lookup", "args": {"key": "k1"}, "id": "c1"}]))
    agent = create_react_agent(llm, ToolNode([flaky_lookup], handle_tool_errors=False))
    with pytest.raises(ConnectionError):
        agent.invoke({"messages": [("human", "look up k1")]}, config=config())

    trace = check_trace(delivered(sentry), generations=1, usage=[(20, 5)], root_error=True)
    (tool_span,) = [s for s in trace.spans if s.op == "gen_ai.execute_tool"]
    assert tool_span.status_code == 2
    assert all(s.status_code == 2 for s in trace.ancestors(tool_span))
    assert ok(trace.generations[0])


@pytest.mark.parametrize("mode", ["messages", "updates", "values"])
def test_graph_stream_modes(sentry: LocalReceiver, mode: str) -> None:
    from langgraph.prebuilt import create_react_agent

    llm = react_model(
        reply("", (25, 7), tool_calls=[{"name": "add", "args": {"a": 1, "b": 1}, "id": "c1"}]),
        reply("It is 2.", (50, 4)),
    )
    agent = create_react_agent(llm, [add])
    chunks = list(agent.stream({"messages": [("human", "1+1?")]}, config=config(), stream_mode=mode))
    assert chunks

    trace = check_trace(delivered(sentry), generations=2, usage=[(25, 7), (50, 4)])
    assert trace.root.name == "invoke_agent LangGraph"
    assert len([s for s in trace.spans if s.op == "gen_ai.execute_tool"]) == 1
    if mode == "messages":  # the graph streams its model calls token by token
        assert all(g.attributes["gen_ai.response.streaming"] is True for g in trace.generations)


async def test_astream_events_v2(sentry: LocalReceiver) -> None:
    from langgraph.prebuilt import create_react_agent

    llm = react_model(
        reply("", (25, 7), tool_calls=[{"name": "add", "args": {"a": 1, "b": 1}, "id": "c1"}]),
        reply("It is 2.", (50, 4)),
    )
    agent = create_react_agent(llm, [add])
    kinds = [e["event"] async for e in agent.astream_events({"messages": [("human", "1+1?")]}, config(), version="v2")]
    assert "on_chat_model_stream" in kinds and "on_tool_end" in kinds

    trace = check_trace(delivered(sentry), generations=2, usage=[(25, 7), (50, 4)])
    assert all(g.attributes["gen_ai.response.streaming"] is True for g in trace.generations)


async def test_ten_concurrent_ainvoke_on_one_handler(sentry: LocalReceiver) -> None:
    from langgraph.prebuilt import create_react_agent

    handler = SentryCallbackHandler()

    async def one(i: int) -> str:
        llm = react_model(
            reply("", (100 + i, 10 + i), tool_calls=[{"name": "add", "args": {"a": i, "b": 1}, "id": f"c{i}"}]),
            reply(f"answer {i}", (200 + i, 20 + i)),
        )
        agent = create_react_agent(llm, [add])
        out = await agent.ainvoke(
            {"messages": [("human", f"{i}+1?")]},
            config=config(handler, metadata={"trace": {"trace_name": f"request {i}"}}),
        )
        return str(out["messages"][-1].content)

    assert await asyncio.gather(*(one(i) for i in range(10))) == [f"answer {i}" for i in range(10)]
    traces = check_traces(delivered(sentry), 10, generations=2)
    for trace in traces:
        i = int(trace.root.name.removeprefix("request "))
        assert trace.usage() == [(100 + i, 10 + i), (200 + i, 20 + i)]
        (tool_span,) = [s for s in trace.spans if s.op == "gen_ai.execute_tool"]
        assert tool_span.attributes["gen_ai.tool.call.result"] == str(i + 1)
    assert open_runs() == 0


def test_graph_stream_abandoned_halfway(sentry: LocalReceiver) -> None:
    from langgraph.prebuilt import create_react_agent

    llm = react_model(
        reply("", (25, 7), tool_calls=[{"name": "add", "args": {"a": 1, "b": 1}, "id": "c1"}]),
        reply("It is 2.", (50, 4)),
    )
    stream = create_react_agent(llm, [add]).stream(
        {"messages": [("human", "1+1?")]}, config=config(), stream_mode="updates"
    )
    next(stream)  # the first model call's update, then the consumer walks away
    stream.close()

    trace = check_trace(delivered(sentry), generations=1, usage=[(25, 7)])
    assert trace.root.attributes[CLOSED_EARLY] is True
    assert all(ok(s) for s in trace.spans)
    assert open_runs() == 0


# --------------------------------------------------------------------------- LCEL


def prompt() -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{question}")])


def test_runnable_parallel_keeps_each_call_apart(sentry: LocalReceiver) -> None:
    both = RunnableParallel(
        summary=prompt() | model(reply("short", (11, 1))) | StrOutputParser(),
        title=prompt() | model(reply("Title", (13, 2))) | StrOutputParser(),
    )
    assert both.invoke({"question": "q"}, config=config()) == {"summary": "short", "title": "Title"}
    trace = check_trace(delivered(sentry), generations=2, usage=[(11, 1), (13, 2)])
    branches = trace.children(trace.root)
    assert len(branches) == 2
    for branch in branches:
        assert len([g for g in trace.generations if branch in trace.ancestors(g)]) == 1


class KeyedModel(ScenarioModel):
    """Answers question ``qN`` with the N-th reply, whatever order the calls come in (LangChain's
    ``batch`` may call the model in another order than its inputs', even with ``max_concurrency=1``)."""

    replies: tuple[AIMessage, ...] = ()

    def _reply(self, messages: Any) -> AIMessage:
        return self.replies[int(str(messages[-1].content).removeprefix("q"))]

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])


def test_batch_gives_one_trace_per_input(sentry: LocalReceiver) -> None:
    llm = KeyedModel(messages=iter(()), replies=tuple(reply(f"a{i}", (10 * (i + 1), i + 1)) for i in range(3)))
    answers = (prompt() | llm | StrOutputParser()).batch(
        [{"question": f"q{i}"} for i in range(3)], config=config(), max_concurrency=1
    )
    assert answers == ["a0", "a1", "a2"]
    traces = check_traces(delivered(sentry), 3, generations=1)
    assert sorted(u for t in traces for u in t.usage()) == [(10, 1), (20, 2), (30, 3)]


class Outage(ScenarioModel):
    """A provider that is down."""

    model_name: str = "primary-model"

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("provider timed out")


def test_fallback_that_succeeds_does_not_fail_the_root(sentry: LocalReceiver) -> None:
    primary = Outage(messages=iter([]))
    backup = model(reply("from the backup", (9, 3)))
    answer = (prompt() | primary.with_fallbacks([backup]) | StrOutputParser()).invoke(
        {"question": "q"}, config=config()
    )
    assert answer == "from the backup"
    trace = check_trace(delivered(sentry), generations=2, usage=[(9, 3)])
    failed, served = sorted(trace.generations, key=lambda s: s.start_ns)
    assert failed.status_code == 2 and failed.attributes["error.type"] == "TimeoutError"
    assert ok(served) and served.attributes["gen_ai.usage.input_tokens"] == 9
    assert all(ok(s) for s in trace.ancestors(served))


def test_retry_after_a_failure(sentry: LocalReceiver) -> None:
    attempts: list[int] = []

    def flaky(question: str) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("reset by peer")
        return question

    step = RunnableLambda(flaky).with_config(run_name="Fetch context")
    pipeline = step.with_retry(stop_after_attempt=3, wait_exponential_jitter=False) | model(reply("done", (5, 1)))
    assert pipeline.invoke("q", config=config()).content == "done"
    trace = check_trace(delivered(sentry), generations=1, usage=[(5, 1)])
    retried = by_name(trace, "Fetch context")  # the retrying wrapper carries the run name
    tries = trace.children(retried)
    assert [t.name for t in tries] == ["flaky", "flaky"]
    assert [t.status_code == 2 for t in tries] == [True, False]
    assert tries[0].attributes["error.type"] == "ConnectionError" and ok(retried)


class Incident(BaseModel):
    service: str
    severity: int


def test_structured_output_with_chat_openai(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    from langchain_openai import ChatOpenAI

    openai_server.queue(
        Reply(
            content="",
            tool_calls=[{"id": "call_1", "name": "Incident", "args": {"service": "checkout", "severity": 2}}],
            usage={"prompt_tokens": 80, "completion_tokens": 14, "total_tokens": 94},
        )
    )
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=openai_server.base_url, api_key="x")
    extractor = prompt() | llm.with_structured_output(Incident, method="function_calling")
    assert extractor.invoke({"question": "checkout is down"}, config=config()) == Incident(
        service="checkout", severity=2
    )
    trace = check_trace(delivered(sentry), generations=1, usage=[(80, 14)])
    (generation,) = trace.generations
    assert generation.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert json.loads(generation.attributes["gen_ai.tool.definitions"])[0]["name"] == "Incident"  # flat shape


def test_chain_decorated_function_with_two_calls(sentry: LocalReceiver) -> None:
    llm = model(reply("draft", (20, 5)), reply("final", (30, 6)))

    @chain
    def write_then_edit(topic: str) -> str:
        draft = llm.invoke(f"write about {topic}")
        return str(llm.invoke(f"edit: {draft.content}").content)

    assert write_then_edit.invoke("outages", config=config()) == "final"
    trace = check_trace(delivered(sentry), generations=2, usage=[(20, 5), (30, 6)])
    assert trace.root.name == "write_then_edit"
    assert all(trace.parent(g) is trace.root for g in trace.generations)


def test_shared_handler_in_a_thread_pool(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()

    def one(i: int) -> str:
        pipeline = prompt() | model(reply(f"a{i}", (i + 1, 1))) | StrOutputParser()
        return pipeline.invoke({"question": str(i)}, config=config(handler))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(12))) == [f"a{i}" for i in range(12)]
    traces = check_traces(delivered(sentry), 12, generations=1)
    assert sorted(t.usage()[0] for t in traces) == [(i + 1, 1) for i in range(12)]


def streamed_pipeline() -> Any:
    return prompt() | model(reply("one two three four five six", (17, 6))) | StrOutputParser()


def check_closed_early(spans: list[ReceivedSpan]) -> Trace:
    """The consumer stopped reading: nothing failed, and every run the stop ended says so."""
    trace = check_trace(spans, generations=1)
    assert all(ok(s) for s in trace.spans)
    assert "sentry_llm_callbacks.run.cancelled" not in {k for s in trace.spans for k in s.attributes}
    cut = {s.name for s in trace.spans if s.attributes.get(CLOSED_EARLY) is True}
    assert cut == {"RunnableSequence", "chat scenario-model", "StrOutputParser"}, cut
    assert open_runs() == 0
    return trace


def test_sync_stream_abandoned_halfway(sentry: LocalReceiver) -> None:
    stream = streamed_pipeline().stream({"question": "q"}, config=config())
    assert next(stream) == "one" and next(stream) == " two"
    stream.close()
    check_closed_early(delivered(sentry))


def test_sync_stream_dropped_without_close(sentry: LocalReceiver) -> None:
    for chunk in streamed_pipeline().stream({"question": "q"}, config=config()):
        assert chunk == "one"
        break
    gc.collect()
    check_closed_early(delivered(sentry))


async def settle() -> None:
    """Let the event loop finalise the async generators the consumer dropped."""
    for i in range(200):
        if i % 20 == 0:  # the generators may sit in reference cycles with their exceptions
            gc.collect()
        if open_runs() == 0:
            return
        await asyncio.sleep(0)


async def test_async_stream_closed_with_aclose(sentry: LocalReceiver) -> None:
    stream = streamed_pipeline().astream({"question": "q"}, config=config())
    assert await anext(stream) == "one"
    await stream.aclose()
    del stream
    await settle()
    check_closed_early(delivered(sentry))


async def test_async_stream_abandoned_with_break(sentry: LocalReceiver) -> None:
    async for chunk in streamed_pipeline().astream({"question": "q"}, config=config()):
        assert chunk == "one"
        break
    await settle()
    check_closed_early(delivered(sentry))


def test_stream_read_to_the_end_is_not_closed_early(sentry: LocalReceiver) -> None:
    assert "".join(streamed_pipeline().stream({"question": "q"}, config=config())) == "one two three four five six"
    trace = check_trace(delivered(sentry), generations=1, usage=[(17, 6)])
    assert not [s.name for s in trace.spans if CLOSED_EARLY in s.attributes]


@needs_async_context
async def test_async_graph_stream_closed_while_a_node_runs(sentry: LocalReceiver) -> None:
    """LangGraph turns the consumer's stop into an asyncio cancellation of the node still running:
    the graph's run is closed early (not an error), the node and the model call inside it are
    cancelled, and all of them end inside the graph's span."""
    from langgraph.prebuilt import create_react_agent

    llm = react_model(reply("thinking about it for a while", (25, 7)))
    stream = create_react_agent(llm, [add]).astream(
        {"messages": [("human", "1+1?")]}, config=config(), stream_mode="messages"
    )
    await anext(stream)  # the first token of the model call, then the consumer walks away
    await stream.aclose()
    del stream
    await settle()

    trace = check_trace(delivered(sentry), generations=1)
    assert trace.root.attributes[CLOSED_EARLY] is True and ok(trace.root)
    (generation,) = trace.generations
    assert generation.attributes["sentry_llm_callbacks.run.cancelled"] is True
    assert all(s.status_message == "cancelled" for s in trace.ancestors(generation) if s is not trace.root)
    assert open_runs() == 0


def test_an_unsampled_sentry_sdk_transaction_is_not_a_parent(sentry: LocalReceiver) -> None:
    """The Sentry SDK's own LangGraph integration opens a transaction around every graph run, even
    when it samples the trace out; that transaction is never sent, so it cannot be the parent."""
    import sentry_sdk

    sentry_sdk.init(dsn=None, traces_sample_rate=0.0)
    try:
        llm = model(reply("fine", (8, 2)))
        from langgraph.graph import END, START, MessagesState, StateGraph

        graph = StateGraph(MessagesState)
        graph.add_node("answer", lambda state: {"messages": [llm.invoke(state["messages"])]})
        graph.add_edge(START, "answer")
        graph.add_edge("answer", END)
        graph.compile().invoke({"messages": [("human", "ok?")]}, config=config())
    finally:
        sentry_sdk.init(dsn=None)
    check_trace(delivered(sentry), generations=1, usage=[(8, 2)])


def test_interrupt_inside_a_subgraph_is_not_an_error(sentry: LocalReceiver) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.types import Command, interrupt

    llm = model(reply("refund 40 EUR?", (16, 4)))

    def propose(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    def confirm(state: MessagesState) -> dict:
        return {"messages": [("human", str(interrupt("confirm the refund")))]}

    inner = StateGraph(MessagesState)
    inner.add_node("propose", propose)
    inner.add_node("confirm", confirm)
    inner.add_edge(START, "propose")
    inner.add_edge("propose", "confirm")
    inner.add_edge("confirm", END)
    outer = StateGraph(MessagesState)
    outer.add_node("refunds", inner.compile(name="refund_desk"))
    outer.add_edge(START, "refunds")
    outer.add_edge("refunds", END)
    app = outer.compile(name="support", checkpointer=InMemorySaver())
    handler = SentryCallbackHandler()
    thread = {"configurable": {"thread_id": "refund-7"}}
    app.invoke({"messages": [("human", "refund")]}, config=config(handler, **thread))
    assert paused(app, thread)
    app.invoke(Command(resume="yes"), config=config(handler, **thread))

    asked, resumed = check_traces(delivered(sentry), 2)
    check_trace(asked.spans, generations=1, usage=[(16, 4)])
    check_trace(resumed.spans, generations=0)
    assert all(ok(s) for s in asked.spans + resumed.spans)
    interrupted = {s.name for s in asked.spans if s.attributes.get(INTERRUPTED) is True}
    assert {"confirm", "invoke_agent refund_desk", "refunds"} <= interrupted
    assert HANDOFF not in {k for s in asked.spans for k in s.attributes}
    assert open_runs() == 0


async def test_cancelled_graph_run_cancels_the_runs_inside_it(sentry: LocalReceiver) -> None:
    from langgraph.prebuilt import create_react_agent

    entered = asyncio.Event()

    @tool
    async def wait_for_approval(ticket: str) -> str:
        """Wait until a human approves the ticket."""
        entered.set()
        await asyncio.Event().wait()  # never approved: the caller gives up
        return "approved"

    llm = react_model(
        reply("", (30, 5), tool_calls=[{"name": "wait_for_approval", "args": {"ticket": "T-1"}, "id": "c1"}])
    )
    agent = create_react_agent(llm, [wait_for_approval])
    task = asyncio.create_task(agent.ainvoke({"messages": [("human", "ship T-1")]}, config=config()))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()

    trace = check_trace(delivered(sentry), generations=1, usage=[(30, 5)], root_error=True)
    (tool_span,) = [s for s in trace.spans if s.op == "gen_ai.execute_tool"]
    assert tool_span.attributes["sentry_llm_callbacks.run.cancelled"] is True
    assert all(s.status_message == "cancelled" for s in trace.ancestors(tool_span))
    assert ok(trace.generations[0])
    assert open_runs() == 0


def test_chat_openai_stream_closed_halfway(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    from langchain_openai import ChatOpenAI

    openai_server.queue(Reply(content="one two three four five six seven eight"))
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=openai_server.base_url, api_key="x", stream_usage=True)
    stream = (prompt() | llm | StrOutputParser()).stream({"question": "count"}, config=config())
    next(stream), next(stream)  # the first words, then the consumer walks away
    stream.close()

    trace = check_trace(delivered(sentry), generations=1)
    assert all(ok(s) for s in trace.spans)
    (generation,) = trace.generations
    assert generation.attributes[CLOSED_EARLY] is True and trace.root.attributes[CLOSED_EARLY] is True
    assert open_runs() == 0
