"""What we send, as Sentry's own views read it: conversations in Privacy Mode, the app's Sentry SDK
and OpenTelemetry traces (sampled or not), duplicate integrations, models, agents, sampling."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from sentry_llm_callbacks.sentry_sdk import interop as sentry_sdk_interop
from tests.support.invariants import check_trace, check_traces
from tests.support.langchain_models import react_agent, simple_chain
from tests.support.markers import needs_llamaindex_agents
from tests.support.openai_server import OpenAIServer
from tests.support.sentry_app import ai_integrations, drop_everything
from tests.support.spans import delivered

#: A DSN nobody listens on: sentry_sdk is active, and ``before_send`` keeps every event local.
UNUSED_DSN = "http://abc@127.0.0.1:9/1"


@pytest.fixture
def app_sentry() -> Iterator[list[dict[str, Any]]]:
    """The app's own ``sentry_sdk``, errors only (no tracing), keeping its events in a list."""
    import sentry_sdk

    events: list[dict[str, Any]] = []

    def keep(event: dict[str, Any], hint: Any) -> None:
        events.append(event)
        return None

    sentry_sdk_interop._reset_for_tests()
    # LangGraph's integration is on by default when langgraph is installed; named so an earlier
    # test's disabled_integrations cannot leave it off in this process.
    langgraph = [i for i in ai_integrations() if i.identifier == "langgraph"]
    sentry_sdk.init(dsn=UNUSED_DSN, before_send=keep, integrations=langgraph)
    try:
        yield events
    finally:
        sentry_sdk.init(dsn=None)
        sentry_sdk_interop._reset_for_tests()


def usage_model(model_name: str | None = None) -> GenericFakeChatModel:
    metadata = {"model_name": model_name} if model_name else {}
    usage = {"input_tokens": 11, "output_tokens": 3, "total_tokens": 14}
    return GenericFakeChatModel(
        messages=iter([AIMessage(content="Rotate the key.", usage_metadata=usage, response_metadata=metadata)])
    )


# --------------------------------------------------------------------------- Conversations view


def test_privacy_mode_keeps_conversations_listed_without_content(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    chain = simple_chain(usage_model("gpt-4o-mini"))
    chain.invoke(
        {"question": "Where is the secret prompt?"},
        config={"callbacks": [SentryCallbackHandler()], "metadata": {"session_id": "conv-1"}},
    )
    trace = check_trace(delivered(receiver), generations=1, usage=[(11, 3)])
    generation = trace.generations[0]
    # Sentry lists a conversation only when a span with gen_ai.conversation.id has both message attributes
    assert generation.attributes["gen_ai.conversation.id"] == "conv-1"
    assert generation.attributes["gen_ai.input.messages"] == "[Filtered]"
    assert generation.attributes["gen_ai.output.messages"] == "[Filtered]"
    body = b"".join(receiver.bodies)
    assert b"secret prompt" not in body and b"Rotate the key" not in body
    assert all("gen_ai.input.messages" not in s.attributes for s in trace.spans if s is not generation)


# --------------------------------------------------------------------------- the app's own traces


_ERRORS_ONLY_APP = """
import json, sys
import sentry_sdk
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict
import sentry_llm_callbacks as slc
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from sentry_llm_callbacks.devtools.receiver import LocalReceiver

events = []
sentry_sdk.init(dsn="%s", before_send=lambda event, hint: events.append(event))  # errors only, defaults
seen = {}

class State(TypedDict):
    x: int

def node(state):
    sentry_sdk.capture_message("inside the graph")  # what the app's own errors carry here
    seen["trace_id"] = events[-1]["contexts"]["trace"]["trace_id"]
    return state

graph = StateGraph(State)
graph.add_node("step", node)
graph.add_edge(START, "step")
graph.add_edge("step", END)
with LocalReceiver() as receiver:
    slc.configure(dsn=receiver.dsn)
    graph.compile().invoke({"x": 1}, config={"callbacks": [SentryCallbackHandler()]})
    assert slc.flush(10)
    spans = [{"trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_span_id} for s in receiver.spans]
print(json.dumps({"langgraph_integration": sentry_sdk.get_client().get_integration("langgraph") is not None,
                  "error_trace_id": seen["trace_id"], "spans": spans}))
"""


@pytest.mark.skipif(
    not any(i.identifier == "langgraph" for i in ai_integrations()),
    reason="this sentry-sdk has no LangGraph integration, whose unsampled transaction this is about",
)
def test_unsampled_sentry_sdk_span_lends_its_trace_id_but_is_not_a_parent() -> None:
    """An errors-only ``sentry_sdk.init`` wraps each LangGraph run in a transaction it never sends.
    (A fresh interpreter: sentry-sdk never re-enables an integration an earlier init disabled.)"""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _ERRORS_ONLY_APP % UNUSED_DSN], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # on by default, as for users, in every sentry-sdk that has it
    assert report["langgraph_integration"] is any(i.identifier == "langgraph" for i in ai_integrations())
    spans = report["spans"]
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_span_id"] not in ids]
    assert len(roots) == 1 and roots[0]["parent_span_id"] == ""  # nobody sent the SDK's span: no parent
    assert {s["trace_id"] for s in spans} == {report["error_trace_id"]}  # the app's errors link to our trace


def test_unsampled_opentelemetry_span_lends_its_trace_id_but_is_not_a_parent(sentry: LocalReceiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    app_tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("app")
    with app_tracer.start_as_current_span("HTTP POST /ask") as app_span:
        assert not app_span.is_recording()
        RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()], "run_name": "LLM work"})
    trace = check_trace(delivered(sentry, 1))
    assert trace.root.trace_id == format(app_span.get_span_context().trace_id, "032x")


def test_sampled_ambient_parent_keeps_the_app_trace_whole_under_head_sampling(sentry: LocalReceiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    slc.configure(dsn=sentry.dsn, sample_rate=0.0)
    with TracerProvider().get_tracer("app").start_as_current_span("request") as app_span:
        RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()], "run_name": "LLM work"})
    trace = check_trace(delivered(sentry, 1), remote_parent=format(app_span.get_span_context().span_id, "016x"))
    # Kept by the parent's decision, not our rate of 0: counted once, as sentry-sdk does.
    assert trace.root.attributes["sentry.client_sample_rate"] == 1.0


# --------------------------------------------------------------------------- duplicate integrations


def test_duplicate_sentry_sdk_ai_integrations_are_named_once_with_the_fix(
    sentry: LocalReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    import sentry_sdk

    sentry_sdk_interop._reset_for_tests()
    sentry_sdk.init(dsn=UNUSED_DSN, traces_sample_rate=1.0, **drop_everything())
    try:
        caplog.set_level(logging.WARNING, logger="sentry_llm_callbacks")
        for _ in range(3):
            RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
        warnings = [r.getMessage() for r in caplog.records if "sentry_sdk is also tracing" in r.getMessage()]
        assert len(warnings) == 1, warnings
        # the AI integrations this process's client really runs (an earlier init may have disabled some)
        active = [n for n in sentry_sdk_interop.DUPLICATING_INTEGRATIONS if n in sentry_sdk.get_client().integrations]
        assert active
        for name in active:
            cls = sentry_sdk_interop.DUPLICATING_INTEGRATIONS[name].rpartition(".")[2]
            assert name in warnings[0] and f"{cls}()" in warnings[0]
        assert "disabled_integrations=[" in warnings[0]
        assert sentry_sdk_interop.duplicate_warning == warnings[0]
    finally:
        sentry_sdk.init(dsn=None)
        sentry_sdk_interop._reset_for_tests()


def test_errors_only_sentry_sdk_is_not_a_duplicate(
    sentry: LocalReceiver, app_sentry: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sentry_llm_callbacks")
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
    assert not [r for r in caplog.records if "sentry_sdk is also tracing" in r.getMessage()]


# --------------------------------------------------------------------------- models and agents


def test_request_model_is_taken_from_the_response_model_when_unknown(sentry: LocalReceiver) -> None:
    model = usage_model("gpt-4o-mini-2024-07-18")
    model.invoke("hi", config={"callbacks": [SentryCallbackHandler()]})
    trace = check_trace(delivered(sentry, 1), generations=1, usage=[(11, 3)])
    generation = trace.generations[0]
    assert generation.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert generation.attributes["gen_ai.request.model"] == "gpt-4o-mini-2024-07-18"


def test_every_span_under_an_agent_carries_its_agent_name(sentry: LocalReceiver) -> None:
    agent = react_agent()
    agent.invoke({"messages": [("human", "2+3?")]}, config={"callbacks": [SentryCallbackHandler()]})
    trace = check_trace(delivered(sentry), generations=2)
    assert trace.root.attributes["gen_ai.agent.name"] == "LangGraph"
    below = [s for s in trace.spans if s is not trace.root]
    assert below and all(s.attributes.get("gen_ai.agent.name") == "LangGraph" for s in below), [
        (s.name, s.attributes.get("gen_ai.agent.name")) for s in below
    ]
    tool = trace.with_op("gen_ai.execute_tool")[0]
    assert trace.depth(tool) >= 2  # nested below a node: Sentry itself would not reach it from the root


def test_spans_outside_any_agent_have_no_agent_name(sentry: LocalReceiver) -> None:
    simple_chain(usage_model()).invoke({"question": "q"}, config={"callbacks": [SentryCallbackHandler()]})
    trace = check_trace(delivered(sentry), generations=1)
    assert all("gen_ai.agent.name" not in s.attributes for s in trace.spans)


# --------------------------------------------------------------------------- sampling


def test_sampled_traces_carry_the_client_sample_rate_on_every_span(sentry: LocalReceiver) -> None:
    slc.configure(dsn=sentry.dsn, sample_rate=0.5)
    handler = SentryCallbackHandler()
    chain = simple_chain(GenericFakeChatModel(messages=iter([AIMessage(content=str(i)) for i in range(40)])))
    for i in range(40):
        chain.invoke({"question": str(i)}, config={"callbacks": [handler]})
    spans = delivered(sentry)
    traces = {s.trace_id for s in spans}
    assert 0 < len(traces) < 40  # head sampling kept some traces and dropped others
    check_traces(spans, len(traces), generations=1)
    assert all(s.attributes["sentry.client_sample_rate"] == 0.5 for s in spans)


def test_unsampled_configuration_sends_no_sample_rate(sentry: LocalReceiver) -> None:
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
    assert all("sentry.client_sample_rate" not in s.attributes for s in delivered(sentry, 1))


def test_tool_definitions_use_the_conventions_flat_shape() -> None:
    from sentry_llm_callbacks.core.message_shapes import tool_definitions

    nested = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]
    assert tool_definitions(nested) == [
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}
    ]
    anthropic = [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]
    assert tool_definitions(anthropic) == [
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}
    ]
    assert tool_definitions("not a list") == "not a list"
    assert json.dumps(tool_definitions([{"weird": 1}])) == '[{"weird": 1}]'


def test_notebook_summary_names_duplicate_integrations_once(sentry: LocalReceiver) -> None:
    import sentry_sdk
    from IPython.core.interactiveshell import InteractiveShell

    from sentry_llm_callbacks.devtools import jupyter

    sentry_sdk_interop._reset_for_tests()
    sentry_sdk.init(dsn=UNUSED_DSN, traces_sample_rate=1.0, **drop_everything())
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("%load_ext sentry_llm_callbacks")
        cell = "from langchain_core.runnables import RunnableLambda\nRunnableLambda(lambda x: x).invoke(1)"
        shell.run_cell(cell)
        first = jupyter._active.last_summary  # type: ignore[union-attr]
        shell.run_cell(cell)
        second = jupyter._active.last_summary  # type: ignore[union-attr]
        assert "disabled_integrations=[" in first._repr_html_() and "sentry-llm-warning" in first._repr_html_()
        assert "sentry-llm-warning" not in second._repr_html_() and "disabled_integrations" not in repr(second)
    finally:
        shell.run_cell("%unload_ext sentry_llm_callbacks")
        InteractiveShell.clear_instance()
        sentry_sdk.init(dsn=None)
        sentry_sdk_interop._reset_for_tests()


@needs_llamaindex_agents
def test_every_span_under_a_llamaindex_agent_carries_its_agent_name(
    sentry: LocalReceiver, openai_server: OpenAIServer
) -> None:
    from tests.support.llamaindex_models import run_multiply_agent

    slc.set_global_handler(frameworks=("llamaindex",))
    run_multiply_agent(openai_server)
    trace = check_trace(delivered(sentry), generations=2)
    root = trace.root
    assert root.op == "gen_ai.invoke_agent"
    below = [s for s in trace.spans if s is not root]
    assert {s.op for s in below} >= {"gen_ai.chat", "gen_ai.execute_tool"}
    assert all(s.attributes.get("gen_ai.agent.name") == "calculator" for s in below), [
        (s.name, s.attributes.get("gen_ai.agent.name")) for s in below
    ]
