"""Conversations from what the app already has (SPEC 8d), as they arrive over the wire.

A LangGraph thread is the conversation of every span of its runs; an explicit ``session_id``
wins. A run resumed after an interrupt is a new trace in the same conversation whose root links
to the interrupted run's root, and carries ``sentry.previous_trace``: Sentry's trace view offers
the two as previous and next traces. A LlamaIndex chat engine's or agent's memory key does the
same as a thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import MessagesState  # at module level: node annotations are read by name
from opentelemetry.trace import SpanContext

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.core.conversations import InterruptedRoots
from sentry_llm_callbacks.core.metadata import MetadataLayer
from sentry_llm_callbacks.core.roots import trace_attributes
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedLink, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler

from .conftest import delivered, paused
from .invariants import Trace, check_traces

SESSION = "session.id"
CONVERSATION = "gen_ai.conversation.id"
PREVIOUS_TRACE = "sentry.previous_trace"


def _has_langgraph_interrupts() -> bool:
    if importlib.util.find_spec("langgraph") is None:
        return False
    import langgraph.types

    return hasattr(langgraph.types, "interrupt") and hasattr(langgraph.types, "Command")


#: ``interrupt()`` and ``Command(resume=...)`` came with langgraph 0.2.57.
needs_langgraph_interrupts = pytest.mark.skipif(
    not _has_langgraph_interrupts(), reason="this langgraph has no interrupt() / Command(resume=...)"
)


def _checkpointer() -> Any:
    try:
        from langgraph.checkpoint.memory import InMemorySaver
    except ImportError:  # older langgraph: the same saver under its first name
        from langgraph.checkpoint.memory import MemorySaver as InMemorySaver
    return InMemorySaver()


def approval_graph(approvals: int = 1) -> Any:
    """plan (a model call) -> ``approvals`` nodes each stopping at an interrupt -> execute (a model call)."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    llm = GenericFakeChatModel(messages=iter([AIMessage(content=f"answer {i}") for i in range(8)]))

    def plan(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    def approver(i: int) -> Callable[[MessagesState], dict]:
        def approve(state: MessagesState) -> dict:
            return {"messages": [("human", str(interrupt(f"approve step {i}?")))]}

        return approve

    def execute(state: MessagesState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("plan", plan)
    previous = "plan"
    graph.add_edge(START, "plan")
    for i in range(approvals):
        graph.add_node(f"approve_{i}", approver(i))
        graph.add_edge(previous, f"approve_{i}")
        previous = f"approve_{i}"
    graph.add_node("execute", execute)
    graph.add_edge(previous, "execute")
    graph.add_edge("execute", END)
    return graph.compile(checkpointer=_checkpointer())


def run_config(handler: SentryCallbackHandler | None, thread_id: str, **metadata: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    if handler is not None:
        config["callbacks"] = [handler]
    if metadata:
        config["metadata"] = metadata
    return config


def resume(value: str) -> Any:
    from langgraph.types import Command

    return Command(resume=value)


def conversation_of(spans: list[ReceivedSpan]) -> set[tuple[Any, Any]]:
    return {(s.attributes.get(SESSION), s.attributes.get(CONVERSATION)) for s in spans}


def assert_continues(resumed: Trace, interrupted: Trace) -> None:
    """``resumed``'s root links to ``interrupted``'s root, as Sentry's trace view reads it; no other span links."""
    previous = interrupted.root
    assert resumed.root.links == [
        ReceivedLink(
            previous.trace_id, previous.span_id, sampled=True, attributes={"sentry.link.type": "previous_trace"}
        )
    ]
    assert resumed.root.attributes[PREVIOUS_TRACE] == f"{previous.trace_id}-{previous.span_id}-1"
    assert not [s.name for s in resumed.spans if s is not resumed.root and s.links]


def assert_starts_nothing(trace: Trace) -> None:
    assert not [s.name for s in trace.spans if s.links or PREVIOUS_TRACE in s.attributes]


# --------------------------------------------------------------------------- LangGraph threads


@needs_langgraph_interrupts
@pytest.mark.parametrize("privacy", [False, True], ids=["content", "privacy-mode"])
def test_a_thread_is_the_conversation_and_a_resume_links_to_the_interrupted_run(
    receiver: LocalReceiver, privacy: bool
) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=privacy)
    app, handler = approval_graph(), SentryCallbackHandler()
    config = run_config(handler, "support-thread-7")

    app.invoke({"messages": [("human", "deploy v2")]}, config=config)
    assert paused(app, config)
    final = app.invoke(resume("yes"), config=config)
    assert final["messages"][-1].content == "answer 1"

    interrupted, resumed = check_traces(delivered(receiver), 2)
    for trace in (interrupted, resumed):  # metadata, not content: sent in Privacy Mode too
        assert conversation_of(trace.spans) == {("support-thread-7", "support-thread-7")}
    assert_continues(resumed, interrupted)
    assert_starts_nothing(interrupted)
    (generation,) = resumed.generations
    if privacy:  # Sentry's Conversations view lists it: both message attributes, filtered
        assert generation.attributes["gen_ai.input.messages"] == "[Filtered]"
        assert generation.attributes["gen_ai.output.messages"] == "[Filtered]"
    else:
        assert "answer 1" in generation.attributes["gen_ai.output.messages"]


@needs_langgraph_interrupts
@pytest.mark.parametrize("layer", ["handler", "trace_context", "run metadata"])
def test_an_explicit_session_id_wins_over_the_thread(sentry: LocalReceiver, layer: str) -> None:
    app = approval_graph()
    handler = SentryCallbackHandler(session_id="ticket-1234" if layer == "handler" else None)
    metadata = {"session_id": "ticket-1234"} if layer == "run metadata" else {}
    config = run_config(handler, "thread-9", **metadata)
    with slc.trace_context(session_id="ticket-1234" if layer == "trace_context" else None):
        app.invoke({"messages": [("human", "refund order 17")]}, config=config)
        app.invoke(resume("approved"), config=config)

    interrupted, resumed = check_traces(delivered(sentry), 2)
    for trace in (interrupted, resumed):
        assert conversation_of(trace.spans) == {("ticket-1234", "ticket-1234")}
    assert_continues(resumed, interrupted)  # the thread still says which run a resume continues


@needs_langgraph_interrupts
def test_each_resume_links_to_the_run_it_resumes_and_a_finished_thread_to_nothing(sentry: LocalReceiver) -> None:
    app, handler = approval_graph(approvals=2), SentryCallbackHandler()
    config = run_config(handler, "thread-2")
    app.invoke({"messages": [("human", "migrate the database")]}, config=config)
    app.invoke(resume("step 0 ok"), config=config)  # stops again, at the second approval
    assert paused(app, config)
    app.invoke(resume("step 1 ok"), config=config)
    assert not paused(app, config)
    app.invoke({"messages": [("human", "thanks")]}, config=config)  # a new turn, no resume

    first, second, third, fourth = check_traces(delivered(sentry), 4)
    assert_continues(second, first)
    assert_continues(third, second)
    assert_starts_nothing(first)
    assert_starts_nothing(fourth)
    assert all(conversation_of(t.spans) == {("thread-2", "thread-2")} for t in (first, second, third, fourth))


@needs_langgraph_interrupts
def test_threads_do_not_link_to_each_other(sentry: LocalReceiver) -> None:
    app, handler = approval_graph(), SentryCallbackHandler()
    first, second = run_config(handler, "thread-a"), run_config(handler, "thread-b")
    app.invoke({"messages": [("human", "a")]}, config=first)
    app.invoke({"messages": [("human", "b")]}, config=second)
    app.invoke(resume("ok b"), config=second)
    app.invoke(resume("ok a"), config=first)

    traces = check_traces(delivered(sentry), 4)
    by_thread: dict[str, list[Trace]] = {}
    for trace in traces:
        ((thread, _),) = conversation_of(trace.spans)
        by_thread.setdefault(thread, []).append(trace)
    for interrupted, resumed in by_thread.values():
        assert_continues(resumed, interrupted)


@needs_langgraph_interrupts
def test_a_resume_of_a_run_not_traced_here_has_no_link(sentry: LocalReceiver) -> None:
    app = approval_graph()
    app.invoke({"messages": [("human", "deploy")]}, config=run_config(None, "thread-untraced"))
    app.invoke(resume("yes"), config=run_config(SentryCallbackHandler(), "thread-untraced"))

    (resumed,) = check_traces(delivered(sentry), 1)
    assert_starts_nothing(resumed)
    assert conversation_of(resumed.spans) == {("thread-untraced", "thread-untraced")}


def test_without_a_thread_or_session_there_is_no_conversation(sentry: LocalReceiver) -> None:
    from langchain_core.runnables import RunnableLambda

    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
    (trace,) = check_traces(delivered(sentry), 1)
    assert conversation_of(trace.spans) == {(None, None)}


# --------------------------------------------------------------------------- the core's rule and map


def test_the_core_decides_an_explicit_session_wins_over_the_framework_key() -> None:
    framework = MetadataLayer.build(conversation="thread-1", strict=False)
    assert trace_attributes(framework, None, None)[CONVERSATION] == "thread-1"
    explicit = MetadataLayer.build(session_id="s-1", strict=True)
    for layered in (framework.over(explicit), explicit.over(framework)):
        attributes = trace_attributes(layered, None, None)
        assert (attributes[SESSION], attributes[CONVERSATION]) == ("s-1", "s-1")
        assert layered.conversation == "thread-1"  # still the key a resume is found by


@pytest.mark.parametrize(("value", "key"), [("t-1", "t-1"), (7, "7"), ("", None), (True, None), ({"id": 1}, None)])
def test_a_conversation_key_is_an_id_or_nothing(value: object, key: str | None) -> None:
    assert MetadataLayer.build(conversation=value, strict=False).conversation == key


def test_the_interrupted_roots_are_bounded_oldest_first() -> None:
    roots = InterruptedRoots(capacity=3)
    contexts = {f"t{i}": SpanContext(1, i + 1, False) for i in range(5)}
    for key, context in contexts.items():
        roots.interrupted(key, context)
    assert len(roots) == 3
    assert [roots.get(k) for k in contexts] == [None, None, contexts["t2"], contexts["t3"], contexts["t4"]]
    roots.completed("t3")
    roots.completed("never-seen")
    assert roots.get("t3") is None and len(roots) == 2


@needs_langgraph_interrupts
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_forgets_the_parents_interrupted_runs(sentry: LocalReceiver) -> None:
    app = approval_graph()
    app.invoke({"messages": [("human", "deploy")]}, config=run_config(SentryCallbackHandler(), "thread-fork"))
    interrupted = _state.recorder._roots.interrupted
    assert interrupted.get("thread-fork") is not None
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's to resume, and a lock it can take
        forgotten = len(interrupted) == 0
        interrupted.interrupted("child-thread", SpanContext(1, 1, False))
        os._exit(0 if forgotten and interrupted.get("child-thread") is not None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert interrupted.get("thread-fork") is not None  # the parent keeps its own


# --------------------------------------------------------------------------- LlamaIndex memory keys


def chat_engine(memory: Any = None) -> Any:
    from llama_index.core.chat_engine import SimpleChatEngine
    from llama_index.core.llms import MockLLM

    return SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=4), memory=memory)


def buffer(key: str | None = None) -> Any:
    from llama_index.core.memory import ChatMemoryBuffer

    return ChatMemoryBuffer.from_defaults(chat_store_key=key) if key else ChatMemoryBuffer.from_defaults()


def test_a_chat_engines_memory_key_is_the_conversation(sentry: LocalReceiver) -> None:
    slc.set_global_handler(frameworks=("llamaindex",))
    engine = chat_engine(buffer("user-42"))
    engine.chat("hello")
    engine.chat("and again")
    chat_engine(buffer()).chat("a memory on LlamaIndex's shared default key")

    first, second, shared = check_traces(delivered(sentry), 3)
    assert conversation_of(first.spans) == conversation_of(second.spans) == {("user-42", "user-42")}
    assert conversation_of(shared.spans) == {(None, None)}


def test_an_explicit_session_id_wins_over_the_memory_key(sentry: LocalReceiver) -> None:
    slc.set_global_handler(frameworks=("llamaindex",), session_id="s-explicit")
    chat_engine(buffer("user-42")).chat("hello")
    (trace,) = check_traces(delivered(sentry), 1)
    assert conversation_of(trace.spans) == {("s-explicit", "s-explicit")}


def _llamaindex_has(module: str, name: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    return hasattr(importlib.import_module(module), name)


@pytest.mark.skipif(
    not (
        _llamaindex_has("llama_index.core.agent.workflow", "FunctionAgent")
        and _llamaindex_has("llama_index.core.llms.mock", "MockFunctionCallingLLM")
        and _llamaindex_has("llama_index.core.memory", "Memory")
    ),
    reason="this llama-index-core has no workflow agents, MockFunctionCallingLLM or Memory",
)
def test_a_workflow_agents_memory_is_the_conversation(sentry: LocalReceiver) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.memory import Memory

    slc.set_global_handler(frameworks=("llamaindex",))
    agent = FunctionAgent(name="helper", tools=[], llm=MockFunctionCallingLLM(max_tokens=4))

    async def conversation() -> None:
        await agent.run(user_msg="hi", memory=Memory.from_defaults(session_id="sess-9"))
        await agent.run(user_msg="hi", memory=buffer("k-7"))

    asyncio.run(conversation())
    first, second = check_traces(delivered(sentry), 2)
    assert conversation_of(first.spans) == {("sess-9", "sess-9")}
    assert conversation_of(second.spans) == {("k-7", "k-7")}
