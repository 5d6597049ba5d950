"""LlamaIndex as users write it, every trace run through the invariant checker.

Real LlamaIndex objects throughout: ``OpenAI`` against the local OpenAI-compatible server (real
HTTP, real usage per reply), ``MockEmbedding`` / ``MockLLM`` / ``CustomLLM`` subclasses where the
point is LlamaIndex's own plumbing, and export over HTTP to the local receiver.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.core.tools import FunctionTool

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from tests.support.invariants import Trace, check_trace, check_traces
from tests.support.markers import needs_llamaindex_agents
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import delivered

CLOSED_EARLY = "sentry_llm_callbacks.stream.closed_early"
CANCELLED = "sentry_llm_callbacks.run.cancelled"
DOCS = [
    "Runbook: restart the payments pod when charges fail.",
    "Postmortem: null card tokens came from mobile v3.2.",
    "On-call: page the payments team.",
]


#: Tests here set LlamaIndex's global Settings.callback_manager; each gets back the one before it.
pytestmark = pytest.mark.usefixtures("llamaindex_settings")


def li_openai(server: OpenAIServer, **kwargs: Any) -> Any:
    from llama_index.llms.openai import OpenAI

    return OpenAI(model="gpt-4o-mini", api_base=server.base_url, api_key="x", **kwargs)


def replies(n: int, *, base: int = 100) -> list[tuple[int, int]]:
    """Queue-able usage that differs per call, so each span must carry its own."""
    return [(base + 10 * i, 1 + i) for i in range(n)]


def queue_usage(server: OpenAIServer, usage: list[tuple[int, int]], content: str = "Restart the pod.") -> None:
    server.queue(
        *(
            Reply(content=content, usage={"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o})
            for i, o in usage
        )
    )


def build_index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents([Document(text=t) for t in DOCS], embed_model=MockEmbedding(embed_dim=8))


def traced(receiver: LocalReceiver) -> None:
    """Global tracing from here on, and nothing received so far (index building) kept."""
    assert slc.flush(5)
    receiver.clear()
    slc.set_global_handler()


def settled(receiver: LocalReceiver) -> list[ReceivedSpan]:
    spans = delivered(receiver)
    assert slc.stats()["runs_open"] == 0, f"runs left open: {slc.stats()}"
    return spans


def llm_calls(trace: Trace) -> list[ReceivedSpan]:
    """The trace's chat and completion generations (embeddings aside), in start order."""
    return sorted(trace.with_op("gen_ai.chat") + trace.with_op("gen_ai.text_completion"), key=lambda s: s.start_ns)


# --------------------------------------------------------------------------- concurrency on one LLM object


def test_concurrent_acomplete_on_one_llm_are_separate_generations(
    sentry: LocalReceiver, openai_server: OpenAIServer
) -> None:
    usage = replies(5)
    queue_usage(openai_server, usage)
    llm = li_openai(openai_server)
    traced(sentry)

    async def run() -> None:
        await asyncio.gather(*(llm.acomplete(f"question {i}") for i in range(5)))

    asyncio.run(run())
    assert len(openai_server.requests) == 5
    traces = check_traces(settled(sentry), 5, generations=1)
    assert sorted(u for t in traces for u in t.usage()) == sorted(usage)


def test_concurrent_acomplete_inside_one_tool_is_one_trace(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    usage = replies(5, base=300)
    queue_usage(openai_server, usage)
    llm = li_openai(openai_server)

    async def ask_all(topic: str) -> str:
        """Ask five questions at once."""
        answers = await asyncio.gather(*(llm.acomplete(f"{topic} {i}") for i in range(5)))
        return " ".join(a.text for a in answers)

    tool = FunctionTool.from_defaults(async_fn=ask_all, name="ask_all")
    traced(sentry)
    asyncio.run(tool.acall(topic="charges"))
    trace = check_trace(settled(sentry), generations=5, usage=usage)
    assert trace.root.name == "execute_tool ask_all"
    assert {trace.parent(g).span_id for g in trace.generations} == {trace.root.span_id}
    assert len({(g.start_ns, g.end_ns) for g in trace.generations}) == 5  # each call its own timing


def test_threads_calling_complete_on_one_shared_llm(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    usage = replies(10, base=500)
    queue_usage(openai_server, usage)
    llm = li_openai(openai_server)
    traced(sentry)
    start = threading.Barrier(10)

    def call(i: int) -> None:
        start.wait()
        llm.complete(f"question {i}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(openai_server.requests) == 10
    traces = check_traces(settled(sentry), 10, generations=1)
    assert sorted(u for t in traces for u in t.usage()) == sorted(usage)


def test_concurrent_streams_of_a_custom_llm_are_separate_generations(sentry: LocalReceiver) -> None:
    """``CustomLLM.astream_chat`` reads ``stream_chat`` lazily: one call, one span, even when
    two streams of the same object are read interleaved."""
    llm = MockLLM(max_tokens=4)
    traced(sentry)

    async def read(i: int) -> str:
        stream = await llm.astream_chat([ChatMessage(role="user", content=f"tell me about item {i}")])
        text = ""
        async for chunk in stream:
            text = chunk.message.content or ""
            await asyncio.sleep(0)  # interleave with the other reader
        return text

    async def run() -> list[str]:
        return await asyncio.gather(read(1), read(2))

    assert all(asyncio.run(run()))
    traces = check_traces(settled(sentry), 2, generations=1)
    assert all(t.root.attributes["gen_ai.response.streaming"] is True for t in traces)


@pytest.mark.parametrize("entry", ["TreeSummarize", "get_response_synthesizer"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tree_summarize_use_async_one_generation_per_request(
    sentry: LocalReceiver, openai_server: OpenAIServer, entry: str, mode: str
) -> None:
    from llama_index.core import PromptHelper, get_response_synthesizer
    from llama_index.core.response_synthesizers import TreeSummarize

    queue_usage(openai_server, replies(8, base=700), content="Summary.")
    llm = li_openai(openai_server)
    helper = PromptHelper(context_window=400, num_output=50, chunk_size_limit=120)
    if entry == "TreeSummarize":
        synthesizer = TreeSummarize(llm=llm, use_async=True, prompt_helper=helper)
    else:
        synthesizer = get_response_synthesizer(
            llm=llm, response_mode="tree_summarize", use_async=True, prompt_helper=helper
        )
    nodes = [NodeWithScore(node=TextNode(text=f"{DOCS[i % 3]} Detail {i}. " * 6), score=1.0) for i in range(6)]
    traced(sentry)
    if mode == "sync":
        synthesizer.synthesize("What fails?", nodes)
    else:
        asyncio.run(synthesizer.asynthesize("What fails?", nodes))
    requests = len(openai_server.requests)
    assert requests >= 3
    expected = [(700 + 10 * i, 1 + i) for i in range(requests)]
    trace = check_trace(settled(sentry), generations=requests, usage=expected)
    assert trace.root.name == "TreeSummarize.synthesize"


# --------------------------------------------------------------------------- query engines


def test_query_engine_sync_and_async(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    usage = replies(2, base=40)
    queue_usage(openai_server, usage)
    engine = build_index().as_query_engine(llm=li_openai(openai_server), similarity_top_k=2)
    traced(sentry)
    assert "Restart" in str(engine.query("Why do charges fail?"))
    assert "Restart" in str(asyncio.run(engine.aquery("Who is on call?")))
    traces = check_traces(settled(sentry), 2, generations=2)  # the query's embedding and the chat
    assert sorted(u for t in traces for u in t.usage()) == usage
    for trace in traces:
        assert trace.root.name == "RetrieverQueryEngine.query"
        (generation,) = trace.with_op("gen_ai.chat")
        assert trace.parent(generation).name == "CompactAndRefine.synthesize"


STREAM_LAZY = ("CompactAndRefine.synthesize", "chat gpt-4o-mini")  # read after query() returned


def test_streaming_query_read_fully_sync(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(content="one two three four five"))
    engine = build_index().as_query_engine(llm=li_openai(openai_server), streaming=True)
    traced(sentry)
    response = engine.query("stream it")
    assert "".join(response.response_gen).startswith("one two")
    trace = check_trace(settled(sentry), generations=2, lazy=STREAM_LAZY)
    generation = trace.with_op("gen_ai.chat")[0]
    assert trace.parent(generation).name == "CompactAndRefine.synthesize"
    assert "one two three" in generation.attributes["gen_ai.output.messages"]
    assert CLOSED_EARLY not in generation.attributes


async def test_streaming_query_read_fully_async(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(content="one two three four five"))
    engine = build_index().as_query_engine(llm=li_openai(openai_server), streaming=True)
    traced(sentry)
    response = await engine.aquery("stream it")
    assert slc.stats()["runs_open"] >= 1  # the synthesis waits for its stream
    text = "".join([token async for token in response.async_response_gen()])
    assert text.startswith("one two")
    trace = check_trace(settled(sentry), generations=2, lazy=STREAM_LAZY)
    synthesize = trace.named("CompactAndRefine.synthesize")
    generation = trace.with_op("gen_ai.chat")[0]
    assert trace.parent(generation) is synthesize and trace.parent(synthesize) is trace.root
    assert generation.attributes["gen_ai.response.streaming"] is True
    assert "one two three" in generation.attributes["gen_ai.output.messages"]
    assert generation.end_ns <= synthesize.end_ns


def test_streaming_query_read_halfway_sync(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(content="one two three four five six seven"))
    engine = build_index().as_query_engine(llm=li_openai(openai_server), streaming=True)
    traced(sentry)
    response = engine.query("stream it")
    for _ in zip(range(2), response.response_gen, strict=False):
        pass
    del response  # the user moves on: the stream is closed
    gc.collect()
    trace = check_trace(settled(sentry), generations=2, lazy=STREAM_LAZY)
    _assert_closed_early(trace)


def test_streaming_query_read_halfway_async(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    openai_server.queue(Reply(content="one two three four five six seven"))
    engine = build_index().as_query_engine(llm=li_openai(openai_server), streaming=True)
    traced(sentry)

    async def read_two() -> None:
        response = await engine.aquery("stream it")
        read = 0
        async for _ in response.async_response_gen():
            read += 1
            if read == 2:
                break  # asyncio closes the abandoned generators at the latest when the loop shuts down
        assert read == 2

    asyncio.run(read_two())
    trace = check_trace(settled(sentry), generations=2, lazy=STREAM_LAZY)
    _assert_closed_early(trace)


def _assert_closed_early(trace: Trace) -> None:
    generation = trace.with_op("gen_ai.chat")[0]
    synthesize = trace.named("CompactAndRefine.synthesize")
    for span in (generation, synthesize):
        assert span.status_code != 2, f"{span.name}: {span.status_message}"
        assert span.attributes[CLOSED_EARLY] is True
        assert CANCELLED not in span.attributes


def test_cancelled_stream_is_a_cancellation(sentry: LocalReceiver) -> None:
    class SlowLLM(CustomLLM):
        """Streams one token, then waits for a second that never comes."""

        model: str = "slow-1"

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name=self.model)

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text="x")

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
            yield CompletionResponse(text="x", delta="x")

        @llm_completion_callback()
        async def astream_complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponseAsyncGen:
            async def gen() -> AsyncGenerator[CompletionResponse, None]:
                yield CompletionResponse(text="first", delta="first")
                await asyncio.Event().wait()
                yield CompletionResponse(text="never", delta="never")

            return gen()

    llm = SlowLLM()
    traced(sentry)

    async def run() -> None:
        first = asyncio.Event()

        async def read() -> None:
            async for _ in await llm.astream_complete("go"):
                first.set()

        task = asyncio.create_task(read())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    trace = check_trace(settled(sentry), generations=1, root_error=True)
    generation = trace.root
    assert generation.status_message == "cancelled"
    assert generation.attributes[CANCELLED] is True
    assert CLOSED_EARLY not in generation.attributes


# --------------------------------------------------------------------------- chat engines with memory


def chat_engine(server: OpenAIServer, mode: str) -> Any:
    from llama_index.core.memory import ChatMemoryBuffer

    memory = ChatMemoryBuffer.from_defaults(token_limit=2000)
    if mode == "simple":
        from llama_index.core.chat_engine import SimpleChatEngine

        return SimpleChatEngine.from_defaults(llm=li_openai(server), memory=memory)
    return build_index().as_chat_engine(chat_mode=mode, llm=li_openai(server), memory=memory)


ENGINE_NAMES = {
    "simple": "SimpleChatEngine",
    "context": "ContextChatEngine",
    "condense_plus_context": "CondensePlusContextChatEngine",
}


@pytest.mark.parametrize("mode", sorted(ENGINE_NAMES))
def test_chat_engine_with_memory(sentry: LocalReceiver, openai_server: OpenAIServer, mode: str) -> None:
    engine = chat_engine(openai_server, mode)
    traced(sentry)
    usage = replies(4, base=60)
    queue_usage(openai_server, usage)
    engine.chat("Why do charges fail?")
    engine.chat("And who do I page?")
    assert "Why do charges fail?" in json.dumps(openai_server.requests[-1]["messages"])  # memory carried over
    calls = len(openai_server.requests)
    traces = check_traces(settled(sentry), 2)
    assert [t.root.name for t in traces] == [f"{ENGINE_NAMES[mode]}.chat"] * 2
    assert sum(len(llm_calls(t)) for t in traces) == calls
    assert sorted(u for t in traces for u in t.usage()) == usage[:calls]


@pytest.mark.parametrize("mode", sorted(ENGINE_NAMES))
def test_chat_engine_stream_chat(sentry: LocalReceiver, openai_server: OpenAIServer, mode: str) -> None:
    engine = chat_engine(openai_server, mode)
    traced(sentry)
    openai_server.queue(Reply(content="Restart the payments pod."), Reply(content="Page the payments team."))
    response = engine.stream_chat("Why do charges fail?")
    assert "".join(response.response_gen).strip() == "Restart the payments pod."
    # Sync stream_chat: LlamaIndex reads the stream in its own thread; the engine's span ends
    # when stream_chat returns, what the stream does ends later, in the same trace.
    spans = settled(sentry)
    lazy = {s.name for s in spans if s.op == "gen_ai.chat" or s.name.endswith(".synthesize")}
    trace = check_trace(spans, lazy=lazy)
    assert trace.root.name == f"{ENGINE_NAMES[mode]}.stream_chat"
    assert len(llm_calls(trace)) == len(openai_server.requests)
    assert "Restart the payments pod." in llm_calls(trace)[-1].attributes["gen_ai.output.messages"]


@pytest.mark.parametrize("mode", sorted(ENGINE_NAMES))
def test_chat_engine_astream_chat(sentry: LocalReceiver, openai_server: OpenAIServer, mode: str) -> None:
    engine = chat_engine(openai_server, mode)
    traced(sentry)
    openai_server.queue(
        Reply(content="Restart the payments pod."),
        Reply(content="Who is on call?"),
        Reply(content="Page the payments team."),
    )

    async def converse() -> list[str]:
        answers = []
        for question in ("Why do charges fail?", "And who do I page?"):
            response = await engine.astream_chat(question)
            answers.append("".join([t async for t in response.async_response_gen()]).strip())
        return answers

    first, second = asyncio.run(converse())
    assert first == "Restart the payments pod." and second
    traces = check_traces(settled(sentry), 2)
    assert "Why do charges fail?" in json.dumps(openai_server.requests[-1]["messages"])  # memory carried over
    assert [t.root.name for t in traces] == [f"{ENGINE_NAMES[mode]}.astream_chat"] * 2
    assert sum(len(llm_calls(t)) for t in traces) == len(openai_server.requests)
    for trace in traces:
        streamed = llm_calls(trace)[-1]
        assert streamed.attributes["gen_ai.response.streaming"] is True
        # the stream's end event belongs to the generation, not to the engine around it
        assert "gen_ai.output.messages" in streamed.attributes
        assert "gen_ai.output.messages" not in trace.root.attributes
        assert "gen_ai.response.model" not in trace.root.attributes


# --------------------------------------------------------------------------- agents and composed engines


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@needs_llamaindex_agents
def test_function_agent_with_parallel_tool_calls(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    openai_server.queue(
        Reply(
            content="",
            tool_calls=[
                {"id": "call_1", "name": "multiply", "args": {"a": 6, "b": 7}},
                {"id": "call_2", "name": "add", "args": {"a": 1, "b": 2}},
            ],
        ),
        Reply(content="42 and 3."),
    )
    agent = FunctionAgent(
        name="calculator",
        tools=[FunctionTool.from_defaults(multiply), FunctionTool.from_defaults(add)],
        llm=li_openai(openai_server),
    )
    traced(sentry)

    async def run() -> Any:
        return await agent.run("6 times 7, and 1 plus 2?")

    assert "42" in str(asyncio.run(run()))
    trace = check_trace(settled(sentry), generations=2)
    assert trace.root.name == "invoke_agent calculator"
    tools = {s.name: s for s in trace.with_op("gen_ai.execute_tool")}
    assert set(tools) == {"execute_tool multiply", "execute_tool add"}
    assert tools["execute_tool multiply"].attributes["gen_ai.tool.call.result"] == "42"
    assert tools["execute_tool add"].attributes["gen_ai.tool.call.result"] == "3"


@needs_llamaindex_agents
def test_agent_workflow_hands_off_between_agents(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent

    llm = li_openai(openai_server)
    router = FunctionAgent(
        name="router", description="Routes questions.", system_prompt="Route.", llm=llm, can_handoff_to=["math"]
    )
    math = FunctionAgent(name="math", description="Does math.", tools=[FunctionTool.from_defaults(multiply)], llm=llm)
    openai_server.queue(
        Reply(
            content="",
            tool_calls=[{"id": "h1", "name": "handoff", "args": {"to_agent": "math", "reason": "math question"}}],
        ),
        Reply(content="", tool_calls=[{"id": "m1", "name": "multiply", "args": {"a": 6, "b": 7}}]),
        Reply(content="It is 42."),
    )
    workflow = AgentWorkflow(agents=[router, math], root_agent="router")
    traced(sentry)

    async def run() -> Any:
        return await workflow.run(user_msg="6 times 7?")

    assert "42" in str(asyncio.run(run()))
    trace = check_trace(settled(sentry), generations=3)  # a handoff is control flow, not an error
    assert trace.root.op == "gen_ai.invoke_agent"
    assert {s.name for s in trace.with_op("gen_ai.execute_tool")} == {"execute_tool handoff", "execute_tool multiply"}


@pytest.mark.parametrize("use_async", [False, True])
def test_sub_question_query_engine(sentry: LocalReceiver, openai_server: OpenAIServer, use_async: bool) -> None:
    from llama_index.core.query_engine import SubQuestionQueryEngine
    from llama_index.core.question_gen import LLMQuestionGenerator
    from llama_index.core.tools import QueryEngineTool

    llm = li_openai(openai_server)
    index = build_index()
    tools = [
        QueryEngineTool.from_defaults(index.as_query_engine(llm=llm), name="runbooks", description="Runbooks."),
        QueryEngineTool.from_defaults(index.as_query_engine(llm=llm), name="oncall", description="On-call."),
    ]
    plan = {
        "items": [
            {"sub_question": "What fails?", "tool_name": "runbooks"},
            {"sub_question": "Who is paged?", "tool_name": "oncall"},
        ]
    }
    usage = replies(4, base=900)
    openai_server.queue(
        Reply(content=f"```json\n{json.dumps(plan)}\n```", usage=_usage(usage[0])),
        *(Reply(content="An answer.", usage=_usage(u)) for u in usage[1:]),
    )
    engine = SubQuestionQueryEngine.from_defaults(
        query_engine_tools=tools,
        llm=llm,
        question_gen=LLMQuestionGenerator.from_defaults(llm=llm),
        use_async=use_async,
    )
    traced(sentry)
    engine.query("What fails and who is paged?")
    assert len(openai_server.requests) == 4
    trace = check_trace(settled(sentry), usage=usage)
    assert trace.root.name == "SubQuestionQueryEngine.query"
    assert len(llm_calls(trace)) == 4
    sub_queries = [s for s in trace.spans if s.name == "RetrieverQueryEngine.query"]
    assert len(sub_queries) == 2


def test_router_query_engine(sentry: LocalReceiver, openai_server: OpenAIServer) -> None:
    from llama_index.core.query_engine import RouterQueryEngine
    from llama_index.core.selectors import LLMSingleSelector
    from llama_index.core.tools import QueryEngineTool

    llm = li_openai(openai_server)
    index = build_index()
    tools = [
        QueryEngineTool.from_defaults(index.as_query_engine(llm=llm), name="runbooks", description="Runbooks."),
        QueryEngineTool.from_defaults(index.as_query_engine(llm=llm), name="oncall", description="On-call."),
    ]
    usage = replies(2, base=1200)
    openai_server.queue(
        Reply(content=json.dumps([{"choice": 2, "reason": "on-call question"}]), usage=_usage(usage[0])),
        Reply(content="Page the payments team.", usage=_usage(usage[1])),
    )
    engine = RouterQueryEngine(selector=LLMSingleSelector.from_defaults(llm=llm), query_engine_tools=tools, llm=llm)
    traced(sentry)
    assert "Page" in str(engine.query("Who do I page?"))
    trace = check_trace(settled(sentry), usage=usage)
    assert trace.root.name == "RouterQueryEngine.query"
    assert len(llm_calls(trace)) == 2
    inner = [s for s in trace.spans if s.name == "RetrieverQueryEngine.query"]
    assert len(inner) == 1 and trace.parent(inner[0]) is not None


def _usage(pair: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": pair[0], "completion_tokens": pair[1], "total_tokens": sum(pair)}


def test_ingestion_pipeline_with_mock_embedding(sentry: LocalReceiver) -> None:
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=8)
    pipeline = IngestionPipeline(transformations=[splitter, MockEmbedding(embed_dim=8)])
    traced(sentry)
    nodes = pipeline.run(documents=[Document(text=" ".join(DOCS * 4))])
    assert nodes and all(n.embedding for n in nodes)
    spans = settled(sentry)
    assert spans
    traces = check_traces(spans, len({s.trace_id for s in spans}))
    embeddings = [g for t in traces for g in t.with_op("gen_ai.embeddings")]
    assert embeddings
    assert sum(g.attributes["sentry_llm_callbacks.embeddings.input_count"] for g in embeddings) == len(nodes)


# --------------------------------------------------------------------------- malformed payloads


class Exploding:
    """A provider payload whose every field read raises (a lazy SDK object gone wrong)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"cannot read {name}")


MALFORMED_RAW: dict[str, Any] = {
    "exploding": Exploding(),
    "not-a-dict": "raw text",
    "usage-as-strings": {"usage": {"prompt_tokens": "12", "completion_tokens": "x", "total_tokens": None}},
    "wrong-field-types": {"model": 5, "id": ["x"], "choices": "stop", "usage": "many"},
    "missing-fields": {},
}


class OddLLM(CustomLLM):
    """A custom LLM whose responses carry a malformed provider payload."""

    model: str = "odd-1"
    raw: Any = None

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    def _response(self, text: str, delta: str | None = None) -> CompletionResponse:
        response = CompletionResponse(text=text, delta=delta, raw=self.raw)
        response.additional_kwargs = ["not", "a", "mapping"]  # type: ignore[assignment]  # a wrong type
        return response

    def _chat_response(self, text: str, delta: str | None = None) -> ChatResponse:
        response = ChatResponse(message=ChatMessage(role="assistant", content=text), delta=delta, raw=self.raw)
        response.message.additional_kwargs = 42  # type: ignore[assignment]  # a wrong type
        response.additional_kwargs = "tokens: many"  # type: ignore[assignment]
        return response

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._response("An odd answer.")

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = ""
        for word in ("An ", "odd ", "answer."):
            text += word
            yield self._response(text, word)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_response("An odd answer.")

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for word in ("An ", "odd ", "answer."):
                text += word
                yield self._chat_response(text, word)

        return gen()


CALLS = ["complete", "stream_complete", "acomplete", "astream_complete", "chat", "stream_chat"]


@pytest.mark.parametrize("payload", sorted(MALFORMED_RAW))
@pytest.mark.parametrize("call", CALLS)
def test_malformed_payload_never_loses_the_run(
    sentry: LocalReceiver, caplog: pytest.LogCaptureFixture, payload: str, call: str
) -> None:
    llm = OddLLM(raw=MALFORMED_RAW[payload])
    traced(sentry)
    chat_input = [ChatMessage(role="user", content="Say something odd.")]

    async def run_async() -> str:
        if call == "acomplete":
            return (await llm.acomplete("Say something odd.")).text
        return [r async for r in await llm.astream_complete("Say something odd.")][-1].text

    if call == "complete":
        text = llm.complete("Say something odd.").text
    elif call == "stream_complete":
        text = [r.text for r in llm.stream_complete("Say something odd.")][-1]
    elif call == "chat":
        text = llm.chat(chat_input).message.content or ""
    elif call == "stream_chat":
        text = [r.message.content for r in llm.stream_chat(chat_input)][-1] or ""
    else:
        text = asyncio.run(run_async())
    assert text == "An odd answer."
    (generation,) = check_trace(settled(sentry), generations=1).generations
    assert generation.name.endswith("odd-1")
    assert generation.attributes["sentry_llm_callbacks.usage.source"] == "missing"
    assert "An odd answer." in generation.attributes["gen_ai.output.messages"]  # the other extractors still ran
    if payload == "exploding":
        assert any("could not read" in r.getMessage() for r in caplog.records)
