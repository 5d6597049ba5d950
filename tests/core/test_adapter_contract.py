"""A framework adapter written only against the contract (sentry_llm_callbacks.core.adapter) gets
the whole trace model: names, ops, metadata, Privacy Mode, usage, errors, global handlers and
nesting across frameworks. The toy framework and its adapter live in this file and nowhere else."""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.core import adapter as contract
from sentry_llm_callbacks.core.calls import ModelRequest, ModelResponse, ToolCall, ToolResult
from sentry_llm_callbacks.core.kinds import RunKind
from sentry_llm_callbacks.core.message_shapes import ContentShapes, content_parts
from sentry_llm_callbacks.core.metadata import MetadataLayer
from sentry_llm_callbacks.core.usage import Usage
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_trace
from tests.support.spans import delivered

# --------------------------------------------------------------------------- the toy framework

_ids = itertools.count(1)
_current: contextvars.ContextVar[int | None] = contextvars.ContextVar("toy_current", default=None)
#: The framework's own hook list: what its callbacks are.
HOOKS: list[Any] = []


def _step(kind: str, name: str, work: Callable[[], Any], **details: Any) -> Any:
    """Every toy operation: tell the hooks it started, run it, tell them how it ended."""
    run_id, parent = next(_ids), _current.get()
    for hook in HOOKS:
        hook.started(run_id, parent, kind, name, details)
    token = _current.set(run_id)
    try:
        result = work()
    except Exception as exc:
        for hook in HOOKS:
            hook.failed(run_id, exc)
        raise
    finally:
        _current.reset(token)
    for hook in HOOKS:
        hook.ended(run_id, result)
    return result


def toy_agent(name: str, body: Callable[[], Any]) -> Any:
    return _step("agent", name, body)


def toy_model(prompt: str, *, model: str = "toy-model-1") -> dict[str, Any]:
    reply = {"text": f"reply to {prompt}", "input_tokens": 11, "output_tokens": 4}
    return _step("model", model, lambda: reply, prompt=prompt)


def toy_tool(name: str, fn: Callable[..., Any], **arguments: Any) -> Any:
    return _step("tool", name, lambda: fn(**arguments), arguments=arguments)


# --------------------------------------------------------------------------- its adapter

_SHAPES = ContentShapes(
    read_message=lambda m: (m["role"], content_parts(m["content"])),
    read_output=lambda reply: (reply, None, "stop"),  # (message, text if no message, finish reason)
)
_KINDS = {"agent": RunKind.AGENT, "model": RunKind.CHAT, "tool": RunKind.TOOL}


class ToyHandler:
    """The adapter's handler: translation to the recorder's neutral calls, nothing else."""

    def __init__(
        self,
        *,
        user: str | None = None,
        session_id: str | None = None,
        trace: Mapping[str, Any] | None = None,
        privacy_mode: bool | None = None,
    ) -> None:
        self.layer = MetadataLayer.build(
            user=user, session_id=session_id, trace=trace, privacy_mode=privacy_mode, strict=True
        )
        self.recorder = contract.recorder()

    def started(self, run_id: int, parent: int | None, kind: str, name: str, details: dict[str, Any]) -> None:
        run = self.recorder.start_run(
            ("toy", run_id),
            ("toy", parent) if parent else None,
            kind=_KINDS[kind],
            name=name,
            explicit_name=kind == "agent",
            handler_layer=self.layer,
        )
        if kind == "model":
            self.recorder.record_request(
                run,
                ModelRequest(
                    model=name,
                    provider="toy",
                    messages=[{"role": "user", "content": details["prompt"]}],
                    shapes=_SHAPES,
                ),
            )
        elif kind == "tool":
            self.recorder.record_tool_call(run, ToolCall(name=name, arguments=details["arguments"]))

    def ended(self, run_id: int, result: Any) -> None:
        key = ("toy", run_id)
        run = self.recorder.get(key)
        if run is not None and run.kind == RunKind.CHAT:
            usage = Usage(input_tokens=result["input_tokens"], output_tokens=result["output_tokens"])
            self.recorder.record_response(
                run,
                ModelResponse(outputs=[{"role": "assistant", "content": result["text"]}], shapes=_SHAPES, usage=usage),
            )
        elif run is not None and run.kind == RunKind.TOOL:
            self.recorder.record_tool_result(run, ToolResult(result=result))
        self.recorder.end_run(key)

    def failed(self, run_id: int, error: BaseException) -> None:
        self.recorder.fail_run(("toy", run_id), error)


_global: list[ToyHandler] = []


def _set_global(**handler_kwargs: Any) -> None:
    _unset_global()
    _global.append(ToyHandler(**handler_kwargs))
    HOOKS.append(_global[0])


def _unset_global() -> None:
    for handler in _global:
        HOOKS.remove(handler)
    _global.clear()


def _current_toy_run() -> tuple[str, int] | None:
    run_id = _current.get()
    return ("toy", run_id) if run_id is not None else None


TOY = contract.FrameworkAdapter("toy", _set_global, _unset_global, _current_toy_run)


@pytest.fixture(autouse=True)
def toy_registered() -> Iterator[None]:
    contract.register(TOY)
    yield
    _unset_global()
    HOOKS.clear()
    contract.unregister("toy")


def calculator(a: int, b: int) -> int:
    return a + b


def broken(**_: Any) -> None:
    raise ValueError("SECRET-ERROR-DETAIL")


# --------------------------------------------------------------------------- what arrives


def test_a_toy_adapter_gets_the_whole_trace_model(receiver: LocalReceiver) -> None:
    assert isinstance(TOY, contract.Adapter)
    slc.configure(dsn=receiver.dsn, environment="staging")
    slc.set_global_handler(frameworks=("toy",), user="user-7", session_id="sess-7", trace={"team": "ml"})

    def body() -> int:
        toy_model("SECRET-PROMPT what is 2+3")
        with pytest.raises(ValueError):
            toy_tool("broken", broken, x=1)
        return toy_tool("calculator", calculator, a=2, b=3)

    assert toy_agent("Planner", body) == 5
    spans = delivered(receiver, 4)
    trace = check_trace(spans, generations=1, usage=[(11, 4)])
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"Planner", "chat toy-model-1", "execute_tool broken", "execute_tool calculator"}
    root, model = by_name["Planner"], by_name["chat toy-model-1"]
    assert trace.root is root
    assert root.attributes["sentry.op"] == "gen_ai.invoke_agent" and root.attributes["gen_ai.agent.name"] == "Planner"
    assert model.attributes["sentry.op"] == "gen_ai.chat"
    assert model.attributes["gen_ai.request.model"] == "toy-model-1"
    assert model.attributes["gen_ai.provider.name"] == "toy"
    assert model.attributes["gen_ai.agent.name"] == "Planner"
    assert "SECRET-PROMPT" in model.attributes["gen_ai.input.messages"]
    assert "reply to" in model.attributes["gen_ai.output.messages"]
    calc = by_name["execute_tool calculator"]
    assert calc.attributes["sentry.op"] == "gen_ai.execute_tool" and calc.attributes["gen_ai.tool.name"] == "calculator"
    assert calc.attributes["gen_ai.tool.call.result"] == "5"
    failed = by_name["execute_tool broken"]
    assert failed.status_code == 2 and failed.attributes["error.type"] == "ValueError"
    for span in spans:  # the trace's metadata on every span
        assert span.attributes["user.id"] == "user-7"
        assert span.attributes["gen_ai.conversation.id"] == "sess-7"
        assert span.attributes["trace.metadata.team"] == "ml"
        assert span.attributes["sentry.environment"] == "staging"


def test_privacy_mode_holds_for_a_toy_adapter(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    slc.set_global_handler(frameworks=("toy",))

    def body() -> None:
        toy_model("SECRET-PROMPT")
        with pytest.raises(ValueError):
            toy_tool("broken", broken, x="SECRET-ARGUMENT")

    toy_agent("Planner", body)
    spans = delivered(receiver, 3)
    check_trace(spans, generations=1, usage=[(11, 4)])
    wire = b"".join(receiver.bodies)
    for secret in (b"SECRET-PROMPT", b"reply to", b"SECRET-ARGUMENT", b"SECRET-ERROR-DETAIL"):
        assert secret not in wire, secret
    model = next(s for s in spans if s.attributes.get("sentry.op") == "gen_ai.chat")
    assert model.attributes["gen_ai.usage.input_tokens"] == 11


def test_a_toy_run_and_a_langchain_run_nest_across_frameworks(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    slc.set_global_handler(frameworks=("toy",))
    chain = RunnableLambda(lambda q: f"answer to {q}").with_config(run_name="LangChainStep")

    def body() -> str:
        return chain.invoke("q", config={"callbacks": [SentryCallbackHandler()]})

    toy_agent("Planner", body)
    spans = delivered(receiver, 2)
    trace = check_trace(spans)
    assert trace.root.name == "Planner"
    step = next(s for s in spans if s.name == "LangChainStep")
    assert step.parent_span_id == trace.root.span_id


def test_unknown_frameworks_are_named_and_unregistered_ones_are_gone() -> None:
    assert "toy" in contract.names()
    contract.unregister("toy")
    with pytest.raises(slc.ConfigurationError, match="unknown framework 'toy'"):
        slc.set_global_handler(frameworks=("toy",))
    contract.register(TOY)
