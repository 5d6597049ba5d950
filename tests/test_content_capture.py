"""Content is captured when a run starts or ends and rendered later, on the export thread: what
arrives is the content as it was at that moment, and the same content seen by several runs of
a trace (a LangGraph state handed to a node and the steps inside it) is rendered once."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import attributes as attr
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from sentry_llm_callbacks.receiver import LocalReceiver

from .conftest import by_name, delivered
from .invariants import check_trace


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
