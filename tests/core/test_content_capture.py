"""Content is captured when a run starts or ends and rendered later, on the export thread: what
arrives is the content as it was at that moment, and the same content seen by several runs of
a trace (a LangGraph state handed to a node and the steps inside it) is rendered once."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import ReadableSpan

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import RenderCache, finished_attributes
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.export.taps import TAPS
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_trace
from tests.support.spans import by_name, delivered


def _content(span: Any, key: str) -> Any:
    return json.loads(span.attributes[key])


def test_content_changed_in_place_between_runs_arrives_as_each_run_saw_it(sentry: LocalReceiver) -> None:
    def reply(state: dict[str, Any]) -> dict[str, Any]:
        state["messages"].append("reply")  # the same dict and list, changed in place
        return state

    chain = RunnableLambda(lambda state: state).with_config(run_name="Look") | RunnableLambda(reply).with_config(
        run_name="Reply"
    )
    chain.invoke({"messages": ["question"]}, config={"callbacks": [SentryCallbackHandler()]})

    spans = delivered(sentry, 3)
    check_trace(spans, generations=0)
    before, after = {"messages": ["question"]}, {"messages": ["question", "reply"]}
    root = next(s for s in spans if not s.parent_span_id)
    assert _content(root, attr.INPUT_VALUE) == before
    assert _content(root, attr.OUTPUT_VALUE) == after
    assert _content(by_name(spans, "Look"), attr.INPUT_VALUE) == before
    assert _content(by_name(spans, "Look"), attr.OUTPUT_VALUE) == before
    assert _content(by_name(spans, "Reply"), attr.INPUT_VALUE) == before
    assert _content(by_name(spans, "Reply"), attr.OUTPUT_VALUE) == after


def test_the_same_content_in_several_spans_of_a_trace_is_rendered_once(receiver: LocalReceiver) -> None:
    rendered: list[str] = []

    def mask(text: str) -> str:  # called once per rendering
        rendered.append(text)
        return text

    slc.configure(dsn=receiver.dsn, mask=mask)
    step = RunnableLambda(lambda state: state)
    chain = step.with_config(run_name="One") | step.with_config(run_name="Two") | step.with_config(run_name="Three")
    state = {"messages": ["question", "answer"], "step": 1}
    chain.invoke(state, config={"callbacks": [SentryCallbackHandler()]})

    spans = delivered(receiver, 4)
    check_trace(spans, generations=0)
    texts = [s.attributes[key] for s in spans for key in (attr.INPUT_VALUE, attr.OUTPUT_VALUE)]
    assert len(texts) == 8 and all(json.loads(text) == state for text in texts)
    # one rendering for the eight attributes (two if the export thread's timer split the trace)
    assert 1 <= len(rendered) <= 2, rendered


class ScriptedChatModel(BaseChatModel):
    """Answers with the next scripted message, each with its finish reason (as OpenAI reports it)."""

    replies: list[AIMessage]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.replies.pop(0))])


def _reply(content: str, reason: str, usage: tuple[int, int], *calls: dict[str, Any]) -> AIMessage:
    counts = {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)}
    return AIMessage(
        content=content, usage_metadata=counts, tool_calls=list(calls), response_metadata={"finish_reason": reason}
    )


def test_a_langgraph_agent_renders_byte_identical_with_messages_converted_once_per_chunk(
    sentry: LocalReceiver,
) -> None:
    from langgraph.prebuilt import create_react_agent

    from tests.support.langchain_models import add, multiply

    llm = ScriptedChatModel(
        replies=[
            _reply("", "tool_calls", (40, 12), {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_add"}),
            _reply("", "tool_calls", (50, 8), {"name": "multiply", "args": {"a": 5, "b": 4}, "id": "call_mul"}),
            _reply("20.", "stop", (70, 6)),
        ]
    )
    agent = create_react_agent(llm, [add, multiply], name="calculator")
    recorded: list[ReadableSpan] = []
    TAPS.add(recorded.append)
    try:
        question = {"messages": [("system", "Be terse."), ("human", "(2+3)*4?")]}
        agent.invoke(question, config={"callbacks": [SentryCallbackHandler()]})
    finally:
        TAPS.remove(recorded.append)

    trace = check_trace(delivered(sentry, len(recorded)), generations=3, usage=[(40, 12), (50, 8), (70, 6)])
    # the chunk as the export thread renders it, with one memo, against each span on its own
    chunk = RenderCache()
    with_memo = [finished_attributes(span.attributes, chunk) for span in recorded]
    alone = [finished_attributes(span.attributes) for span in recorded]
    assert with_memo == alone
    # the messages the memo holds are the seven of the final state (system, question, two tool
    # calls, two tool results, the answer), each converted once per converter (the memo's key),
    # however many steps' content held it
    messages = {id(entry[0]): entry[0] for entry in chunk.converted.values() if isinstance(entry[0], BaseMessage)}
    assert [type(m).__name__ for m in messages.values()] == [
        "SystemMessage",
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    # and what arrived is that rendering
    arrived = {s.span_id: s for s in trace.spans}
    for span, attributes in zip(recorded, with_memo, strict=True):
        assert attributes is not None
        received = arrived[format(span.context.span_id, "016x")].attributes
        for key in (attr.INPUT_VALUE, attr.OUTPUT_VALUE, attr.INPUT_MESSAGES, attr.OUTPUT_MESSAGES):
            assert received.get(key) == attributes.get(key), (span.name, key)
