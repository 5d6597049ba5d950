"""Errors the app never saw become Sentry issues linked to the failed run's span.

The app's ``sentry_sdk`` is initialised for real against a local Sentry-like envelope endpoint;
assertions are on the envelopes it received and on the spans our receiver decoded.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from sentry_llm_callbacks.sentry_sdk.issues import SentryIssues
from tests.support.environment import REPO_ROOT
from tests.support.invariants import check_trace, check_traces
from tests.support.llamaindex_models import li_openai
from tests.support.markers import needs_llamaindex_agents
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.sentry_app import EnvelopeEndpoint, ai_integrations, mechanism_of
from tests.support.spans import delivered

SECRET = "customer-4471-ssn"  # in every exception message: must never leave in Privacy Mode


@pytest.fixture
def endpoint() -> Iterator[EnvelopeEndpoint]:
    server = EnvelopeEndpoint().start()
    yield server
    server.stop()


def _init_sdk(dsn: str | None, **options: Any) -> None:
    sentry_sdk.init(dsn=dsn, **options)


@pytest.fixture
def sdk_without_ai_integrations(endpoint: EnvelopeEndpoint) -> Iterator[EnvelopeEndpoint]:
    """The app's sentry_sdk with its default integrations except its own LangChain / LangGraph ones."""
    _init_sdk(endpoint.dsn, disabled_integrations=ai_integrations())
    # sentry-sdk honours disabled_integrations only for integrations not yet set up in the process:
    # where an earlier test set them up, they come off this client, as in a fresh process.
    active = sentry_sdk.get_client().integrations
    for integration in ai_integrations():
        active.pop(integration.identifier, None)
    yield endpoint
    _close_sdk()


def _close_sdk() -> None:
    """Leave no client behind: the SDK's patches (set up once per process) are inert without one."""
    client = sentry_sdk.get_client()
    client.flush(timeout=5)
    client.close()
    sentry_sdk.get_global_scope().set_client(None)


def sdk_events(endpoint: EnvelopeEndpoint) -> list[dict[str, Any]]:
    """Everything the app's SDK sent by now (its transport delivers before flush returns)."""
    sentry_sdk.flush(timeout=5)
    return endpoint.events


# --------------------------------------------------------------------------- scenarios


class NamedFake(GenericFakeChatModel):
    model_name: str = "fake-model"


class ToolCallingFake(NamedFake):
    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


class FailingModel(NamedFake):
    """A chat model that raises for its first ``failures`` calls, then answers."""

    model_name: str = "primary-model"
    failures: int = 1_000_000
    calls: int = 0

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"upstream refused the prompt of {SECRET}")
        return super()._generate(messages, *args, **kwargs)


@tool
def lookup_account(account: str) -> str:
    """Look up an account."""
    raise ValueError(f"no account for {SECRET}")


def agent_with_failing_tool() -> Any:
    from langgraph.prebuilt import ToolNode, create_react_agent

    messages = iter(
        [
            AIMessage(content="", tool_calls=[{"name": "lookup_account", "args": {"account": "a1"}, "id": "c1"}]),
            AIMessage(content="I could not find it."),
        ]
    )
    tools = ToolNode([lookup_account], handle_tool_errors=True)
    return create_react_agent(ToolCallingFake(messages=messages), tools, name="support_agent")


def run_agent() -> None:
    agent_with_failing_tool().invoke(
        {"messages": [("human", "find account a1")]}, config={"callbacks": [SentryCallbackHandler()]}
    )


def tool_span(spans: list[ReceivedSpan]) -> ReceivedSpan:
    (span,) = [s for s in spans if s.op == "gen_ai.execute_tool"]
    return span


def test_a_tool_error_turned_into_a_message_is_one_issue_on_the_tool_span(
    sentry: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint
) -> None:
    run_agent()
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    span = tool_span(spans)
    assert span.status_code == 2

    events = sdk_events(sdk_without_ai_integrations)
    assert len(events) == 1, events
    (event,) = events
    trace = event["contexts"]["trace"]
    assert (trace["trace_id"], trace["span_id"]) == (span.trace_id, span.span_id)
    assert trace["parent_span_id"] == span.parent_span_id
    assert event["tags"]["gen_ai.tool.name"] == "lookup_account"
    assert event["tags"]["gen_ai.agent.name"] == "support_agent"
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ValueError"
    assert SECRET in exception["value"]  # outside Privacy Mode the SDK's full event is sent
    assert exception["mechanism"] == {"type": "sentry_llm_callbacks", "handled": True}


def test_a_primary_model_a_fallback_replaced_is_one_issue_on_its_generation(
    sentry: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint
) -> None:
    model = FailingModel(messages=iter([])).with_fallbacks([NamedFake(messages=iter(["fine"]))])
    model.invoke("hello", config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    (primary,) = [s for s in spans if s.op == "gen_ai.chat" and s.status_code == 2]

    (event,) = sdk_events(sdk_without_ai_integrations)
    assert event["contexts"]["trace"]["span_id"] == primary.span_id
    assert event["contexts"]["trace"]["trace_id"] == primary.trace_id
    assert event["tags"]["gen_ai.request.model"] == primary.attributes["gen_ai.request.model"] == "primary-model"
    assert event["exception"]["values"][-1]["type"] == "ConnectionError"


def test_a_retried_call_is_one_issue_per_failed_attempt(
    sentry: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint
) -> None:
    model = FailingModel(messages=iter(["ok"]), failures=1)
    model = model.with_retry(stop_after_attempt=3, wait_exponential_jitter=False)
    assert model.invoke("hello", config={"callbacks": [SentryCallbackHandler()]}).content == "ok"
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    (failed,) = [s for s in spans if s.op == "gen_ai.chat" and s.status_code == 2]

    (event,) = sdk_events(sdk_without_ai_integrations)
    assert event["contexts"]["trace"]["span_id"] == failed.span_id


def _raise_through(_: Any) -> Any:
    return lookup_account.invoke({"account": "a1"})


def _wrap_and_raise(_: Any) -> Any:
    try:
        lookup_account.invoke({"account": "a1"})
    except ValueError as exc:
        raise RuntimeError("account service failed") from exc


@pytest.mark.parametrize("step", [_raise_through, _wrap_and_raise], ids=["same-exception", "raised-from-it"])
def test_an_exception_that_reaches_the_user_is_left_to_the_app(
    sentry: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint, step: Any
) -> None:
    chain = RunnableLambda(step).with_config(run_name="Lookup")
    with pytest.raises((ValueError, RuntimeError)):
        chain.invoke("a1", config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry)
    check_trace(spans, root_error=True)
    assert tool_span(spans).status_code == 2
    assert sdk_events(sdk_without_ai_integrations) == []


def test_an_exception_the_app_captured_itself_is_not_captured_again(
    sentry: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint
) -> None:
    assert "dedupe" in sentry_sdk.get_client().integrations

    def swallow(_: Any) -> str:
        try:
            return lookup_account.invoke({"account": "a1"})
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
            return "no account"

    RunnableLambda(swallow).with_config(run_name="Lookup").invoke("a1", config={"callbacks": [SentryCallbackHandler()]})
    check_trace(delivered(sentry))
    events = sdk_events(sdk_without_ai_integrations)
    assert len(events) == 1 and sdk_without_ai_integrations.ours() == []


def test_capture_errors_false_captures_nothing(
    receiver: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint
) -> None:
    slc.configure(dsn=receiver.dsn, capture_errors=False)
    run_agent()
    check_trace(delivered(receiver), generations=2)
    assert sdk_events(sdk_without_ai_integrations) == []


def test_privacy_mode_sends_the_exception_type_only(
    receiver: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint
) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    run_agent()
    spans = delivered(receiver)
    check_trace(spans, generations=2)

    (event,) = sdk_events(sdk_without_ai_integrations)
    assert event["contexts"]["trace"]["span_id"] == tool_span(spans).span_id
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ValueError"
    assert "value" not in exception and "stacktrace" not in exception
    assert event["tags"]["gen_ai.tool.name"] == "lookup_account"
    assert sdk_without_ai_integrations.raw, "no envelope arrived"
    for body in sdk_without_ai_integrations.raw:
        assert SECRET.encode() not in body
        assert b"no account for" not in body


APP_WITH_DEFAULT_INTEGRATIONS = """
import sys
import sentry_sdk
import sentry_llm_callbacks as slc
from tests.sentry_sdk.test_error_capture import run_agent

disabled = []
if sys.argv[3] == "without-langchain":
    from sentry_sdk.integrations.langchain import LangchainIntegration

    disabled.append(LangchainIntegration())
sentry_sdk.init(dsn=sys.argv[1], disabled_integrations=disabled)
print(",".join(sorted(sentry_sdk.get_client().integrations)))
slc.configure(dsn=sys.argv[2])
run_agent()
assert slc.flush(10)
sentry_sdk.flush(10)
"""


def run_app(setup: str, receiver: LocalReceiver, endpoint: EnvelopeEndpoint) -> tuple[set[str], list[ReceivedSpan]]:
    """Run the agent in a fresh process with ``sentry_sdk.init(dsn=...)``: sentry-sdk sets each
    integration up once per process, so only a process of its own reproduces a plain app.
    Returns the SDK's active integrations and the spans that arrived."""
    done = subprocess.run(
        [sys.executable, "-c", APP_WITH_DEFAULT_INTEGRATIONS, endpoint.dsn, receiver.dsn, setup],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spans = receiver.wait_for_spans(7, 10)
    root = next(s for s in spans if s.op == "gen_ai.invoke_agent")
    check_trace(spans, generations=2, remote_parent=root.parent_span_id or None)
    assert tool_span(spans).status_code == 2
    return set(done.stdout.strip().split(",")), spans


needs_sdk_langgraph = pytest.mark.skipif(
    not any(i.identifier == "langgraph" for i in ai_integrations()),
    reason="this sentry-sdk has no LangGraph integration (sentry_sdk.integrations.langgraph)",
)


@needs_sdk_langgraph
def test_the_sdk_own_langchain_integration_captures_and_we_do_not(
    receiver: LocalReceiver, endpoint: EnvelopeEndpoint
) -> None:
    integrations, _ = run_app("defaults", receiver, endpoint)
    assert {"langchain", "langgraph"} <= integrations
    assert endpoint.ours() == []
    assert [mechanism_of(e) for e in endpoint.events] == ["langchain"]  # the SDK reported it itself


@needs_sdk_langgraph
def test_the_sdk_langgraph_integration_alone_reports_no_error_so_we_do(
    receiver: LocalReceiver, endpoint: EnvelopeEndpoint
) -> None:
    integrations, spans = run_app("without-langchain", receiver, endpoint)
    assert "langgraph" in integrations and "langchain" not in integrations
    (event,) = endpoint.events
    assert mechanism_of(event) == "sentry_llm_callbacks"
    assert event["contexts"]["trace"]["span_id"] == tool_span(spans).span_id


def test_nothing_is_kept_without_an_initialised_sdk(endpoint: EnvelopeEndpoint) -> None:
    issues = SentryIssues()
    assert not issues.wants_failures()  # sentry_sdk imported, no client
    _init_sdk(None, default_integrations=False)
    try:
        assert not issues.wants_failures()  # a client without a DSN sends nothing
    finally:
        _close_sdk()
    _init_sdk(endpoint.dsn, default_integrations=False)
    try:
        assert issues.wants_failures()
    finally:
        _close_sdk()
    assert not issues.wants_failures()


@needs_llamaindex_agents
def test_a_llamaindex_agent_tool_error_is_one_issue_on_the_tool_span(
    sentry: LocalReceiver, sdk_without_ai_integrations: EnvelopeEndpoint, openai_server: OpenAIServer
) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    def lookup(account: str) -> str:
        """Look up an account."""
        raise ValueError(f"no account for {SECRET}")

    openai_server.queue(
        Reply(content="", tool_calls=[{"id": "call_1", "name": "lookup", "args": {"account": "a1"}}]),
        Reply(content="I could not find it."),
    )
    agent = FunctionAgent(name="accounts", tools=[FunctionTool.from_defaults(lookup)], llm=li_openai(openai_server))
    slc.set_global_handler(frameworks=("llamaindex",))

    async def run() -> Any:
        return await agent.run("find account a1")

    asyncio.run(run())
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    span = tool_span(spans)
    assert span.status_code == 2

    (event,) = sdk_events(sdk_without_ai_integrations)
    assert (event["contexts"]["trace"]["trace_id"], event["contexts"]["trace"]["span_id"]) == (
        span.trace_id,
        span.span_id,
    )
    assert event["tags"]["gen_ai.tool.name"] == "lookup"
    assert event["tags"]["gen_ai.agent.name"] == "accounts"


# --------------------------------------------------------------------------- an SDK we cannot use

#: An app that never configured logging, with a sentry-sdk that lost (or changed) what we need.
APP_WITH_CHANGED_SDK = """
import sys
import sentry_sdk
import sentry_llm_callbacks as slc
from tests.support.sentry_app import ai_integrations
from tests.sentry_sdk.test_error_capture import run_agent

sentry_sdk.init(dsn=sys.argv[1], disabled_integrations=ai_integrations())
{change}
slc.configure(dsn=sys.argv[2])
for _ in range(2):
    run_agent()
assert slc.flush(10)
sentry_sdk.flush(5)
print("app finished")
"""

SDK_CHANGES = {
    "no-new_scope": ("del sentry_sdk.new_scope", "sentry_sdk.new_scope"),
    "no-capture_event": ("del sentry_sdk.capture_event", "sentry_sdk.capture_event"),
    # there, but with other arguments (as event_from_exception lost client_options in 3.0)
    "capture_exception-changed": ("sentry_sdk.capture_exception = lambda error: None", "TypeError"),
}


@pytest.mark.parametrize("change", SDK_CHANGES)
def test_an_sdk_we_cannot_capture_with_is_named_once_and_tracing_goes_on(
    receiver: LocalReceiver, endpoint: EnvelopeEndpoint, change: str
) -> None:
    code, named = SDK_CHANGES[change]
    done = subprocess.run(
        [sys.executable, "-c", APP_WITH_CHANGED_SDK.format(change=code), endpoint.dsn, receiver.dsn],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "app finished", done.stderr
    warnings = [line for line in done.stderr.splitlines() if "SentryLlmCallbacksWarning" in line]
    assert len(warnings) == 1, done.stderr
    assert "cannot become Sentry issues" in warnings[0] and named in warnings[0]
    check_traces(receiver.wait_for_spans(14, 10), 2, generations=2)  # tracing is unaffected
    assert endpoint.ours() == []
