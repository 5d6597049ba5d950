"""Metadata layers and precedence, Privacy Mode, masking and limits, bad input, secrets in logs."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import DEFAULT_KEY, LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.langchain_models import TinyRetriever
from tests.support.spans import by_name, delivered

SECRETS = {
    "prompt": "SECRET-PROMPT-7f3a",
    "system": "SECRET-SYSTEM-19bc",
    "completion": "SECRET-COMPLETION-88d1",
    "tool_arg": "SECRET-TOOLARG-4e02",
    "tool_out": "SECRET-TOOLOUT-a771",
    "document": "SECRET-DOCUMENT-0c5d",
    "error": "SECRET-ERROR-MSG-3b9e",
    "chain_in": "SECRET-CHAININ-5d20",
}


def run_secret_workload(handler: SentryCallbackHandler, metadata: dict[str, Any] | None = None) -> None:
    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        return f"result {SECRETS['tool_out']}"

    @tool
    def explode(query: str) -> str:
        """Fails with a secret in its message."""
        raise RuntimeError(f"failed with {SECRETS['error']}")

    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content=f"answer {SECRETS['completion']}",
                    usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
                )
            ]
        )
    )
    prompt = ChatPromptTemplate.from_messages([("system", SECRETS["system"]), ("human", "{q}")])
    config: dict[str, Any] = {"callbacks": [handler], "metadata": metadata or {}}
    (prompt | model).invoke({"q": SECRETS["prompt"]}, config=config)
    lookup.invoke({"query": SECRETS["tool_arg"]}, config=config)
    with pytest.raises(RuntimeError):
        explode.invoke({"query": "x"}, config=config)
    TinyRetriever(docs=[Document(page_content=SECRETS["document"])]).invoke("q", config=config)
    RunnableLambda(lambda x: "ok").invoke({"in": SECRETS["chain_in"]}, config=config)


def exported_bytes(receiver: LocalReceiver) -> bytes:
    return b"".join(receiver.bodies)


@pytest.mark.parametrize("where", ["configure", "handler", "trace_context", "run_metadata"])
def test_privacy_mode_sends_no_content_bytes(receiver: LocalReceiver, where: str) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=(where == "configure"))
    handler = SentryCallbackHandler(privacy_mode=True if where == "handler" else None, user="user_1")
    metadata = {"privacy_mode": True, "trace": {"team": "ml"}} if where == "run_metadata" else {"trace": {"team": "ml"}}
    if where == "trace_context":
        with slc.trace_context(privacy_mode=True):
            run_secret_workload(handler, metadata)
    else:
        run_secret_workload(handler, metadata)
    spans = delivered(receiver)
    raw = exported_bytes(receiver)
    assert len(spans) == 7  # prompt, model, sequence, two tools, retriever, lambda
    for label, secret in SECRETS.items():
        assert secret.encode() not in raw, f"{label} leaked in Privacy Mode ({where})"
    # What Privacy Mode still sends
    generation = next(s for s in spans if s.op == "gen_ai.chat")
    assert generation.attributes["gen_ai.usage.input_tokens"] == 10
    assert generation.attributes["user.id"] == "user_1"
    assert generation.attributes["trace.metadata.team"] == "ml"
    failed = next(s for s in spans if s.status_code == 2)
    assert failed.status_message == "RuntimeError"
    assert failed.attributes["error.type"] == "RuntimeError"
    assert failed.events[0][1] == {"exception.type": "RuntimeError"}
    assert any(s.op == "gen_ai.execute_tool" and s.attributes["gen_ai.tool.name"] == "lookup" for s in spans)


def test_without_privacy_mode_the_same_content_is_sent(sentry: LocalReceiver) -> None:
    run_secret_workload(SentryCallbackHandler())
    delivered(sentry)
    raw = exported_bytes(sentry)
    for label, secret in SECRETS.items():
        assert secret.encode() in raw, f"{label} was expected in the export"


def test_a_handler_cannot_loosen_a_private_destination(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    run_secret_workload(SentryCallbackHandler(privacy_mode=False), {"privacy_mode": False})
    delivered(receiver)
    raw = exported_bytes(receiver)
    assert not any(secret.encode() in raw for secret in SECRETS.values())


def test_privacy_for_one_nested_run_only(sentry: LocalReceiver) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content=SECRETS["completion"])]))
    private_step = RunnableLambda(lambda x: model.invoke(x)).with_config(
        run_name="Private step", metadata={"privacy_mode": True}
    )
    chain = RunnableLambda(lambda x: x).with_config(run_name="Public") | private_step
    chain.invoke(SECRETS["chain_in"], config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry)
    assert SECRETS["chain_in"] in by_name(spans, "Public").attributes["input.value"]
    private = by_name(spans, "Private step")
    assert "input.value" not in private.attributes
    generation = next(s for s in spans if s.op == "gen_ai.chat")
    assert generation.attributes["gen_ai.output.messages"] == "[Filtered]"  # placeholder: Conversations view


def test_mask_and_size_limit_and_data_uris(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, mask=lambda text: text.replace("4111-1111", "####"), max_content_chars=200)
    chain = RunnableLambda(lambda x: "ok").with_config(run_name="Card")
    blob = "data:image/png;base64," + "iVBORw0KGgo" * 500
    chain.invoke(
        {"card": "4111-1111", "image": blob, "pad": "y" * 1000}, config={"callbacks": [SentryCallbackHandler()]}
    )
    (span,) = delivered(receiver, 1)
    text = span.attributes["input.value"]
    assert "4111-1111" not in text and "####" in text
    assert "iVBORw0KGgoiVBORw0KGgo" not in text and "data:image/png;base64,<" in text
    assert "...[truncated " in text and len(text) < 260


# --------------------------------------------------------------------------- precedence


def test_metadata_precedence_and_key_by_key_merge(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn, environment="from-configure", release="r-configure")
    handler = SentryCallbackHandler(
        user="handler-user",
        session_id="handler-session",
        trace={"team": "ml", "trace_name": "Handler name", "tier": "gold"},
    )
    chain = RunnableLambda(lambda x: x)
    with slc.trace_context(session_id="context-session", trace={"tier": "silver", "region": "eu"}):
        chain.invoke(
            1,
            config={
                "callbacks": [handler],
                "metadata": {"user": "run-user", "trace": {"trace_name": "Run name", "release": "r-run"}},
            },
        )
    (span,) = delivered(receiver, 1)
    a = span.attributes
    assert span.name == "Run name"
    assert a["user.id"] == "run-user"
    assert a["session.id"] == "context-session"
    assert a["trace.metadata.team"] == "ml"
    assert a["trace.metadata.tier"] == "silver"
    assert a["trace.metadata.region"] == "eu"
    assert a["sentry.environment"] == "from-configure"
    assert a["sentry.release"] == "r-run"
    assert span.resource["deployment.environment.name"] == "from-configure"


async def test_trace_context_reaches_asyncio_tasks_not_plain_threads(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler()
    chain = RunnableLambda(lambda x: x)

    async def in_task() -> None:
        await chain.ainvoke(1, config={"callbacks": [handler], "run_name": "task"})

    seen: list[Any] = []
    with slc.trace_context(user="ctx-user"):
        await asyncio.create_task(in_task())
        thread = threading.Thread(
            target=lambda: seen.append(chain.invoke(2, config={"callbacks": [handler], "run_name": "thread"}))
        )
        thread.start()
        thread.join()
    spans = delivered(sentry, 2)
    assert by_name(spans, "task").attributes["user.id"] == "ctx-user"
    assert "user.id" not in by_name(spans, "thread").attributes


def test_trace_context_validates_at_configuration_time() -> None:
    with (
        pytest.raises(slc.ConfigurationError, match=r"trace\.parent_span_id"),
        slc.trace_context(trace={"parent_span_id": "nothex"}),
    ):
        pass
    with pytest.raises(slc.ConfigurationError, match="trace"):
        SentryCallbackHandler(trace="not a dict")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ambient parents


def test_root_joins_the_apps_own_opentelemetry_span(sentry: LocalReceiver) -> None:
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider

    app_tracer = TracerProvider().get_tracer("app")
    with app_tracer.start_as_current_span("HTTP POST /ask") as app_span:
        RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()], "run_name": "LLM work"})
    span = by_name(delivered(sentry, 1), "LLM work")
    ctx = app_span.get_span_context()
    assert span.trace_id == format(ctx.trace_id, "032x")
    assert span.parent_span_id == format(ctx.span_id, "016x")
    assert otel_trace.get_current_span() is otel_trace.INVALID_SPAN


def test_root_joins_the_current_sentry_sdk_transaction(sentry: LocalReceiver) -> None:
    import sentry_sdk

    from tests.support.sentry_app import app_transaction

    # No default integrations: they patch the process for good (its stdlib one starts a span for
    # every subprocess, in every later test).
    sentry_sdk.init(dsn=None, traces_sample_rate=1.0, default_integrations=False)
    try:
        with app_transaction("checkout") as transaction:
            RunnableLambda(lambda x: x).invoke(
                1, config={"callbacks": [SentryCallbackHandler()], "run_name": "LLM work"}
            )
        span = by_name(delivered(sentry, 1), "LLM work")
        assert span.trace_id == transaction.trace_id
        assert span.parent_span_id == transaction.span_id
        assert span.parent_is_remote is True
    finally:
        sentry_sdk.init(dsn=None, default_integrations=False)


def test_explicit_trace_id_wins_over_the_ambient_span(sentry: LocalReceiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    with TracerProvider().get_tracer("app").start_as_current_span("outer"):
        RunnableLambda(lambda x: x).invoke(
            1,
            config={
                "callbacks": [SentryCallbackHandler()],
                "run_name": "Own",
                "metadata": {"trace": {"trace_id": "job-7"}},
            },
        )
    (span,) = delivered(sentry, 1)
    assert span.trace_id == slc.trace_id_for("job-7") and span.parent_span_id == ""


# --------------------------------------------------------------------------- bad input at run time


@pytest.mark.parametrize(
    ("metadata", "warning"),
    [
        ({"trace": "not-a-dict"}, "must be a dict"),
        ({"trace": {"parent_span_id": "xyz"}}, "16 hex"),
        ({"trace": {"trace_id": 12345}}, "must be a string"),
        ({"user": object()}, "must be a string id"),
        ({"privacy_mode": "maybe"}, "True or False"),
    ],
)
def test_bad_metadata_is_logged_once_and_the_trace_still_goes_out(
    sentry: LocalReceiver, caplog: pytest.LogCaptureFixture, metadata: dict[str, Any], warning: str
) -> None:
    chain = RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)
    for _ in range(3):
        assert chain.invoke(5, config={"callbacks": [SentryCallbackHandler()], "metadata": metadata}) == 5
    spans = delivered(sentry, 9)
    assert len(spans) == 9
    hits = [r for r in caplog.records if r.levelno == logging.WARNING and warning in r.getMessage()]
    assert len(hits) == 1


def test_unserialisable_huge_and_odd_unicode_values(sentry: LocalReceiver) -> None:
    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    circular: dict[str, Any] = {}
    circular["self"] = circular
    odd = "bad \ud800 surrogate \U0001f600 \x00 nul"
    trace = {
        "trace_name": odd,
        "obj": object(),
        "weird": Weird(),
        "circular": circular,
        "huge": "z" * 200_000,
        "bigint": 2**80,
        "nested": {"a": [1, 2, {"b": odd}]},
    }
    chain = RunnableLambda(lambda x: x)
    chain.invoke(
        {"text": odd, "weird": Weird(), "circular": circular},
        config={"callbacks": [SentryCallbackHandler()], "metadata": {"trace": trace, "user": odd}},
    )
    (span,) = delivered(sentry, 1)
    assert span.name.startswith("bad ")
    assert span.attributes["trace.metadata.bigint"] == str(2**80)
    assert span.attributes["trace.metadata.circular"]
    assert "\ud800" not in span.attributes["user.id"]


def test_dsn_key_never_appears_in_logs(receiver: LocalReceiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    slc.configure(dsn=receiver.dsn)
    slc.test_connection()
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
    delivered(receiver, 1)
    slc.configure(dsn=f"http://{DEFAULT_KEY}@127.0.0.1:1/1")  # unreachable: failures are logged
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [SentryCallbackHandler()]})
    slc.flush(0.5)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "expected DEBUG records"
    assert DEFAULT_KEY not in text
    assert DEFAULT_KEY not in repr(SentryCallbackHandler())


def test_gzip_body_on_the_wire_is_really_compressed(sentry: LocalReceiver) -> None:
    RunnableLambda(lambda x: x).invoke("a" * 5000, config={"callbacks": [SentryCallbackHandler()]})
    delivered(sentry, 1)
    headers, body = sentry.headers[0], sentry.bodies[0]  # the receiver keeps the decompressed body
    assert headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) < len(body) / 5  # what crossed the wire was compressed


def test_content_is_a_snapshot_taken_when_the_run_ran(sentry: LocalReceiver) -> None:
    payload = {"question": "original", "history": ["a"]}
    RunnableLambda(lambda x: "ok").with_config(run_name="Snap").invoke(
        payload, config={"callbacks": [SentryCallbackHandler()]}
    )
    payload["question"] = "changed later"
    payload["history"].append("b")
    (span,) = delivered(sentry, 1)
    assert span.attributes["input.value"] == '{"question":"original","history":["a"]}'
