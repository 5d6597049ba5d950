"""The run map under threads: many children of one parent starting and ending at once, on a
LangGraph ``Send`` fan-out's thread pool, on a LlamaIndex engine under ``asyncio.gather``, and
straight on the recorder with the interpreter switching threads as often as it can."""

from __future__ import annotations

import asyncio
import operator
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.core.recorder import CHAIN
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_trace, check_traces
from tests.support.spans import delivered


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads every microsecond (between the interpreter's own check points)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def switch_between_opcodes() -> Iterator[None]:
    """Give the interpreter lock away between any two bytecodes of the run map's bookkeeping.

    CPython switches threads only at calls and backward jumps, so ``x.n += 1`` is never split
    there and a missing lock goes unseen; a free-threaded interpreter splits it anywhere. This
    makes every thread that starts or ends a run yield after each instruction, so an update
    without a lock is lost at once.
    """
    from sentry_llm_callbacks.core.runs import RunMap

    watched = {RunMap.add.__code__, RunMap.pop.__code__}

    def on_opcode(frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            time.sleep(0)  # gives the interpreter lock away: the switch is the point
        return on_opcode

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code in watched:
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            return on_opcode
        return None

    threading.settrace(tracer)
    yield
    threading.settrace(None)  # type: ignore[arg-type]


def test_children_of_one_parent_started_and_ended_on_many_threads_are_all_counted(
    sentry: LocalReceiver, switch_between_opcodes: None
) -> None:
    recorder = _state.recorder
    parent_key = uuid.uuid4()
    parent = recorder.start_run(parent_key, None, kind=CHAIN, name="parent", explicit_name=True, handler_layer=None)
    assert parent is not None
    threads, per_thread, rounds = 8, 10, 3
    all_open = threading.Barrier(threads)
    counted_while_open: list[int] = []

    def work() -> None:
        for round_ in range(rounds):
            keys = [uuid.uuid4() for _ in range(per_thread)]
            for key in keys:
                recorder.start_run(key, parent_key, kind=CHAIN, name="child", explicit_name=True, handler_layer=None)
            if round_ == 0:
                all_open.wait()
                counted_while_open.append(parent.open_children)
                all_open.wait()
            for key in keys:
                recorder.end_run(key)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert set(counted_while_open) == {threads * per_thread}  # every child open at once was counted
    assert parent.open_children == 0  # and every one that ended was taken off
    assert recorder.open_descendants(parent_key) == []
    recorder.end_run(parent_key)
    trace = check_trace(delivered(sentry))
    assert len(trace.children(trace.root)) == threads * per_thread * rounds
    assert slc.stats()["runs_open"] == 0


class FanOut(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


def test_a_wide_send_fan_out_on_langgraphs_thread_pool_is_one_whole_trace(
    sentry: LocalReceiver, busy_switching: None
) -> None:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    width = 48
    llm = GenericFakeChatModel(messages=iter([AIMessage(content=f"note {i}") for i in range(width)]))

    def research(state: dict) -> dict:
        return {"notes": [str(llm.invoke(f"research {state['topic']}").content)]}

    graph = StateGraph(FanOut)
    graph.add_node("research", RunnableLambda(research))
    graph.add_conditional_edges(START, lambda s: [Send("research", {"topic": t}) for t in s["topics"]], ["research"])
    graph.add_edge("research", END)
    handler = SentryCallbackHandler()  # one handler shared by every branch
    result = graph.compile(name="fan_out").invoke(
        {"topics": [str(i) for i in range(width)]}, config={"callbacks": [handler]}
    )
    assert len(result["notes"]) == width
    trace = check_trace(delivered(sentry), generations=width)
    assert len([s for s in trace.children(trace.root) if s.name == "research"]) == width
    assert slc.stats()["runs_open"] == 0


def test_concurrent_queries_on_one_llamaindex_engine_are_whole_traces(sentry: LocalReceiver) -> None:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    index = VectorStoreIndex.from_documents(  # built untraced: only the queries are traces
        [Document(text=f"runbook {i}: restart service {i}") for i in range(8)], embed_model=MockEmbedding(embed_dim=8)
    )
    slc.set_global_handler(frameworks=("llamaindex",))
    engine = index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=2)
    count = 20

    async def ask_all() -> list[Any]:
        return await asyncio.gather(*(engine.aquery(f"how to restart {i}?") for i in range(count)))

    assert len(asyncio.run(ask_all())) == count
    check_traces(delivered(sentry), count)
    assert slc.stats()["runs_open"] == 0
