"""What the trace page shows of a span, without a browser: attributes grouped, messages as a
conversation, errors, the time axis, the link to Sentry, and the page's HTML holding hostile
values inert. The browser drives the same pages in ``test_waterfall_browser.py``."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools import details, trace_page
from sentry_llm_callbacks.devtools.details import Message, Part, conversation, error_details, io_content
from sentry_llm_callbacks.devtools.receiver import ReceivedSpan
from sentry_llm_callbacks.devtools.waterfall import fmt_tick, from_attributes, render_trace
from tests.support.environment import REPO_ROOT

MS = 1_000_000
TRACE = "ab" * 16


def received(
    span_id: str = "a" * 16,
    parent: str = "",
    *,
    name: str = "span",
    start_ms: float = 0,
    end_ms: float = 10,
    status: tuple[int, str] = (0, ""),
    events: list[tuple[str, dict[str, Any]]] | None = None,
    **attributes: Any,
) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=TRACE,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        start_ns=int(start_ms * MS),
        end_ns=int(end_ms * MS),
        attributes={attr.SENTRY_OP: "function", **attributes},
        status_code=status[0],
        status_message=status[1],
        events=events or [],
        resource={"service.name": "llm-app"},
    )


def text(role: str, content: str) -> Message:
    return Message(role, (Part("text", content),))


QUESTION = "Why are payments failing?"
#: What the package sends for a model call's input (Sentry's message shape).
SENTRY_INPUT = json.dumps([{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}])


# --------------------------------------------------------------------------- conversations


def test_a_langgraph_roots_raw_input_reads_as_the_same_conversation_as_its_model_calls() -> None:
    """The root of a LangGraph agent carries the app's own input, ``("human", "...")`` pairs
    under ``messages``; the model call under it carries Sentry's shape. Both show one user message."""
    root_input = json.dumps({"messages": [["human", QUESTION]]})
    assert conversation(root_input) == conversation(SENTRY_INPUT) == [text("user", QUESTION)]


@pytest.mark.parametrize(
    ("value", "roles"),
    [
        ([["system", "Be brief"], ["human", "hi"], ["ai", "hello"]], ["system", "user", "assistant"]),
        ({"messages": ["hi", {"type": "ai", "content": "hello"}]}, ["user", "assistant"]),  # LangChain dumps
        (
            [
                {"role": "developer", "content": "Be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            ["developer", "user"],
        ),
        ({"role": "assistant", "parts": [{"type": "text", "content": "one message"}]}, ["assistant"]),
    ],
)
def test_every_message_shape_reads_as_roles_in_order(value: Any, roles: list[str]) -> None:
    found = conversation(json.dumps(value))
    assert found is not None and [m.role for m in found] == roles


def test_tool_calls_and_results_keep_their_name_arguments_and_id() -> None:
    sentry = [
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "search", "arguments": {"q": "x"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "result": "found it"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "done"}], "finish_reason": "stop"},
    ]
    openai = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "search", "arguments": '{"q": "x"}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "found it"},
        {"role": "assistant", "content": "done", "finish_reason": "stop"},
    ]
    langchain = [
        {"type": "ai", "content": "", "tool_calls": [{"name": "search", "args": {"q": "x"}, "id": "c1"}]},
        {"type": "tool", "content": "found it", "tool_call_id": "c1"},
        {"type": "ai", "content": "done", "finish_reason": "stop"},
    ]
    expected = [
        Message("assistant", (Part("tool_call", '{\n  "q": "x"\n}', "search", "c1"),)),
        Message("tool", (Part("tool_result", "found it", None, "c1"),)),
        Message("assistant", (Part("text", "done"),), "stop"),
    ]
    for shape in (sentry, openai, langchain):
        assert conversation(json.dumps(shape)) == expected, shape


@pytest.mark.parametrize(
    "value",
    [
        "[Filtered]",  # Privacy Mode's placeholder
        "plain text",
        "42",
        json.dumps(["doc one", "doc two"]),  # embeddings input, documents: strings are not messages
        json.dumps({"question": "why?"}),
        json.dumps([["human", "hi"], {"not": "a message"}]),  # one item that is not a message: not a conversation
        json.dumps([{"type": "evaluation", "answers": {}}]),  # a score's output
        "[]",
        "[not json",
    ],
)
def test_what_is_not_a_conversation_is_left_to_the_raw_view(value: str) -> None:
    assert conversation(value) is None


def test_a_model_call_reads_as_system_then_its_messages_and_its_output() -> None:
    inputs, outputs = io_content(
        {
            attr.SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "You are a careful SRE."}]),
            attr.INPUT_MESSAGES: SENTRY_INPUT,
            attr.TOOL_DEFINITIONS: json.dumps([{"type": "function", "name": "search"}]),
            attr.OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]),
            attr.REQUEST_MODEL: "gpt-4o-mini",
        }
    )
    assert inputs.messages == [text("system", "You are a careful SRE."), text("user", QUESTION)]
    assert outputs.messages == [text("assistant", "ok")]
    assert [key for key, _ in inputs.raw] == [attr.SYSTEM_INSTRUCTIONS, attr.INPUT_MESSAGES, attr.TOOL_DEFINITIONS]
    assert '"content": "Why are payments failing?"' in dict(inputs.raw)[attr.INPUT_MESSAGES]  # indented JSON


def test_a_tool_span_reads_as_a_tool_call_and_its_result() -> None:
    inputs, outputs = io_content(
        {
            attr.TOOL_NAME: "search_logs",
            attr.TOOL_CALL_ARGUMENTS: '{"query":"payment errors"}',
            attr.TOOL_CALL_RESULT: "NPE",
        }
    )
    assert inputs.messages == [
        Message("assistant", (Part("tool_call", '{\n  "query": "payment errors"\n}', "search_logs"),))
    ]
    assert outputs.messages == [Message("tool", (Part("tool_result", "NPE", "search_logs"),))]


def test_content_that_is_no_conversation_is_still_shown_raw() -> None:
    inputs, outputs = io_content({attr.INPUT_VALUE: "1", attr.OUTPUT_VALUE: '{"answer":2}'})
    assert inputs.messages is None and inputs.raw == [(attr.INPUT_VALUE, "1")]
    assert outputs.messages is None and outputs.raw == [(attr.OUTPUT_VALUE, '{\n  "answer": 2\n}')]
    assert io_content({attr.USER_ID: "u1"})[0].raw == []


def test_preview_is_one_line() -> None:
    messages = conversation(json.dumps([["system", "Be\nbrief"], ["human", "x" * 500]]))
    assert messages is not None
    line = details.preview(messages)
    assert line.startswith("system: Be brief · user: xxx") and len(line) == 160 and "\n" not in line


def test_a_hostile_value_is_cut_at_the_page_limit() -> None:
    huge = "x" * (details.MAX_VALUE_CHARS + 10)
    assert details.show_value(huge).endswith("… [cut 10 chars]")
    (message,) = conversation(json.dumps([["human", huge]])) or []
    assert message.parts[0].text.endswith("… [cut 10 chars]")


# --------------------------------------------------------------------------- attributes


SPAN_ATTRIBUTES: dict[str, Any] = {
    attr.SENTRY_OP: "gen_ai.chat",
    attr.SENTRY_DESCRIPTION: "chat gpt-4o-mini",
    attr.OPERATION_NAME: "chat",
    attr.PROVIDER_NAME: "openai",
    attr.REQUEST_MODEL: "gpt-4o-mini",
    attr.REQUEST_TEMPERATURE: 0.2,
    attr.RESPONSE_FINISH_REASONS: ["stop"],
    attr.RESPONSE_ID: "chatcmpl-1",
    attr.USAGE_INPUT_TOKENS: 412,
    attr.USAGE_CACHE_READ: 256,
    attr.COST_TOTAL: 0.0001,
    attr.USAGE_SOURCE: "provider",
    attr.USER_ID: "user_42",
    attr.SESSION_ID: "sess_7",
    attr.CONVERSATION_ID: "sess_7",
    attr.SENTRY_ENVIRONMENT: "prod",
    "trace.metadata.team": "sre",
    attr.LANGGRAPH_NODE: "agent",
    "some.vendor.key": True,
    attr.INPUT_MESSAGES: SENTRY_INPUT,
    attr.OUTPUT_VALUE: "done",
}


def test_attributes_are_grouped_and_every_one_is_shown_once() -> None:
    groups = details.group_attributes(SPAN_ATTRIBUTES, identifiers=[("span id", "a" * 16)])
    by_title = {g.title: dict(g.rows) for g in groups}
    assert list(by_title) == [
        "Model and parameters",
        "Usage and cost",
        "User, session and metadata",
        "Identifiers",
        "Other",
    ]
    assert by_title["Model and parameters"] == {
        attr.OPERATION_NAME: "chat",
        attr.PROVIDER_NAME: "openai",
        attr.REQUEST_MODEL: "gpt-4o-mini",
        attr.REQUEST_TEMPERATURE: "0.2",
        attr.RESPONSE_FINISH_REASONS: '["stop"]',
    }
    assert set(by_title["Usage and cost"]) == {
        attr.USAGE_INPUT_TOKENS,
        attr.USAGE_CACHE_READ,
        attr.COST_TOTAL,
        attr.USAGE_SOURCE,
    }
    assert by_title["User, session and metadata"][attr.USER_ID] == "user_42"
    assert by_title["User, session and metadata"]["trace.metadata.team"] == "sre"
    assert list(by_title["Identifiers"]) == ["span id", attr.RESPONSE_ID, attr.SENTRY_DESCRIPTION, attr.SENTRY_OP]
    assert by_title["Other"] == {attr.LANGGRAPH_NODE: "agent", "some.vendor.key": "true"}
    # Every attribute exactly once: in a group, or as input / output content.
    inputs, outputs = io_content(SPAN_ATTRIBUTES)
    shown = [key for g in groups for key, _ in g.rows if key != "span id"] + [k for k, _ in inputs.raw + outputs.raw]
    assert sorted(shown) == sorted(SPAN_ATTRIBUTES)


# --------------------------------------------------------------------------- errors


STACK = 'Traceback (most recent call last):\n  File "app.py", line 3, in charge\nValueError: card token <missing>'


def test_an_error_shows_its_type_message_and_stack() -> None:
    span = received(
        status=(2, "ValueError: card token <missing>"),
        events=[
            (
                "exception",
                {
                    attr.EXCEPTION_TYPE: "ValueError",
                    attr.EXCEPTION_MESSAGE: "card token <missing>",
                    attr.EXCEPTION_STACKTRACE: STACK,
                },
            )
        ],
        **{attr.ERROR_TYPE: "ValueError"},
    )
    assert error_details(span) == details.ErrorDetails("ValueError", "card token <missing>", STACK)


def test_in_privacy_mode_an_error_is_its_type_alone() -> None:
    """What the exporter sends in Privacy Mode: the type as status, error.type and the event."""
    span = received(
        status=(2, "ValueError"),
        events=[("exception", {attr.EXCEPTION_TYPE: "ValueError"})],
        **{attr.ERROR_TYPE: "ValueError"},
    )
    assert error_details(span) == details.ErrorDetails("ValueError", None, None)


def test_an_error_without_its_event_reads_its_status() -> None:
    assert error_details(received(status=(2, "cancelled"))) == details.ErrorDetails("cancelled", None, None)
    assert error_details(received(status=(2, "KeyError: 'x'"))) == details.ErrorDetails("KeyError", "'x'", None)
    assert error_details(received()) is None


# --------------------------------------------------------------------------- the link to Sentry


def test_the_sentry_link_needs_a_dsn_naming_the_organisation() -> None:
    link = details.trace_link_for_dsn("https://key@o4242.ingest.de.sentry.io/7")
    assert link is not None and link(TRACE) == f"https://sentry.io/organizations/4242/explore/traces/trace/{TRACE}/"
    for dsn in (None, "", "not a dsn", "https://key@sentry.example.com/7", "http://public@127.0.0.1:4318/1"):
        assert details.trace_link_for_dsn(dsn) is None, dsn


# --------------------------------------------------------------------------- the time axis


def test_the_time_axis_has_a_label_at_each_third() -> None:
    spans = [
        from_attributes(
            trace_id=TRACE, span_id="r", parent_id="", name="r", start_ns=0, end_ns=200 * MS, attributes={}, error=None
        )
    ]
    ticks = re.findall(r'class="slc-tick" style="[^"]*left:([\d.]+)%[^"]*">([^<]*)<', render_trace(spans))
    assert ticks == [("0.000", "0"), ("33.333", "67"), ("66.667", "133"), ("100.000", "200 ms")]
    spans = [dataclasses.replace(spans[0], end_ns=1500 * MS)]  # milliseconds, then seconds: units differ
    ticks = re.findall(r'class="slc-tick" style="[^"]*left:([\d.]+)%[^"]*">([^<]*)<', render_trace(spans))
    assert [label for _, label in ticks] == ["0", "500 ms", "1.00", "1.50 s"]
    labels = [fmt_tick(ms) for ms in (0, 0.25, 4.25, 145.2, 1250, 65_000)]
    assert labels == ["0", "0.25 ms", "4.2 ms", "145 ms", "1.25 s", "65.0 s"]


# --------------------------------------------------------------------------- the page's HTML

EVIL = "</script><script>window.pwned=1</script>\"'<img src=x onerror=alert(1)>&amp;"


def data_of(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="slc-data">(.*?)</script>', page, flags=re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_hostile_names_and_values_stay_text_in_the_trace_page() -> None:
    spans = [
        received(
            "a" * 16, name=EVIL, **{attr.USER_ID: EVIL, attr.INPUT_VALUE: json.dumps({"messages": [["human", EVIL]]})}
        ),
        received("b" * 16, "a" * 16, name="child", start_ms=1, **{EVIL: EVIL}),
    ]
    status, page = trace_page.trace_view(TRACE, spans, link='https://sentry.io/x"><script>alert(1)</script>')
    assert status == 200
    # The only scripts are the data island and the page's own script (admitted by its hash).
    assert page.count("<script") == page.count("</script>") == 2
    assert "<script>window" not in page and "<img" not in page and html.escape(EVIL) in page
    island = re.search(r'id="slc-data">(.*?)</script>', page, flags=re.S)
    assert island is not None and "<" not in island.group(1) and ">" not in island.group(1)
    data = data_of(page)
    assert data["spans"][0]["name"] == EVIL and data["spans"][0]["input"]["messages"][0]["parts"][0]["text"] == EVIL
    assert ["user.id", EVIL] in dict(data["spans"][0]["groups"])["User, session and metadata"]
    assert [EVIL, EVIL] in dict(data["spans"][1]["groups"])["Other"]
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy is not None
    scripts = next(d for d in html.unescape(policy.group(1)).split("; ") if d.startswith("script-src"))
    assert re.fullmatch(r"script-src 'sha256-[A-Za-z0-9+/=]{44}'", scripts)  # no inline script but the page's own


def test_hostile_values_stay_text_in_the_trace_list() -> None:
    spans = [received(name=EVIL, status=(2, EVIL), **{attr.USER_ID: EVIL, attr.SESSION_ID: "S1"})]
    page = trace_page.trace_list({TRACE: spans}, endpoint="http://127.0.0.1:1/v1/traces", dsn="http://k@127.0.0.1:1/1")
    assert "<img" not in page and page.count("<script") == 1
    row = re.search(r'<tr class="slc-trace-row" data-errors data-search="([^"]*)">', page)
    assert row is not None and html.unescape(row.group(1)) == f"{EVIL} {TRACE} {EVIL} s1 {EVIL} error".lower()


def test_each_span_in_the_page_carries_its_place_details_and_previews() -> None:
    spans = [
        received(
            "a" * 16, name="root", end_ms=30, **{attr.INPUT_VALUE: json.dumps({"messages": [["human", QUESTION]]})}
        ),
        received("b" * 16, "a" * 16, name="chat", start_ms=5, end_ms=20, **SPAN_ATTRIBUTES),
    ]
    _, page = trace_page.trace_view(TRACE, spans, link="https://sentry.io/t/")
    data = data_of(page)
    assert data["trace"] == {"id": TRACE, "link": "https://sentry.io/t/"}
    root, chat = data["spans"]
    assert (root["depth"], chat["depth"], chat["start"], chat["duration"]) == (0, 1, 5.0, 15.0)
    assert root["input"]["messages"] == chat["input"]["messages"]  # the root's raw input, normalised
    assert chat["input"]["raw"] == [
        ["input messages", attr.INPUT_MESSAGES, details.io_content(SPAN_ATTRIBUTES)[0].raw[0][1]]
    ]
    assert ["Resource", [["service.name", "llm-app"]]] in chat["groups"]
    assert "refresh" not in page  # complete: nothing reloads it
    # The rows show one-line previews (the panel shows the content whole).
    previews = re.findall(r'<pre class="slc-content" data-label="([^"]+)"[^>]*>([^<]*)</pre>', page)
    assert previews == [("input", f"user: {QUESTION}"), ("input messages", f"user: {QUESTION}"), ("output", "done")]


def test_serve_links_each_trace_to_sentry_when_sentry_dsn_names_the_organisation() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")},
        "SENTRY_DSN": "https://k@o4242.ingest.us.sentry.io/7",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentry_llm_callbacks", "serve", "--port", str(port), "--seconds", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None and "Listening on" in proc.stdout.readline()
        slc.configure(otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")
        sent = slc.send_test_trace(timeout=5)
        assert sent.ok
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/trace/{sent.trace_id}", timeout=10) as response:
            page = response.read().decode()
        link = f"https://sentry.io/organizations/4242/explore/traces/trace/{sent.trace_id}/"
        assert data_of(page)["trace"]["link"] == link and f'href="{link}"' in page
    finally:
        proc.terminate()
        proc.wait(10)
