"""A trace drawn as a waterfall: the renderer, the notebook summary and the local web page."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools.demo import run_langchain_agent
from sentry_llm_callbacks.devtools.jupyter import render_text
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan, format_trace_tree
from sentry_llm_callbacks.devtools.waterfall import (
    ERROR_COLOUR,
    MAX_SHOWN_CHARS,
    SpanSummary,
    from_attributes,
    ordered,
    render_trace,
    render_traces,
    resolve_content,
)
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.command_line import cli
from tests.support.environment import REPO_ROOT
from tests.support.invariants import check_trace
from tests.support.spans import delivered

MS = 1_000_000
TRACE = "ab" * 16


def span(
    span_id: str,
    parent: str = "",
    *,
    start_ms: float = 0,
    end_ms: float = 100,
    op: str = "function",
    name: str | None = None,
    error: str | None = None,
    **attributes: Any,
) -> SpanSummary:
    return from_attributes(
        trace_id=TRACE,
        span_id=span_id,
        parent_id=parent,
        name=name or span_id,
        start_ns=int(start_ms * MS),
        end_ns=int(end_ms * MS),
        attributes={attr.SENTRY_OP: op, **attributes},
        error=error,
    )


def rows(page: str) -> list[str]:
    return re.findall(r"<tr class=\"slc-row.*?</tr>", page, flags=re.S)


def row_of(page: str, name: str) -> str:
    found = [r for r in rows(page) if f'">{name}</span>' in r and 'class="slc-name"' in r]
    assert len(found) == 1, f"{len(found)} rows named {name!r}"
    return found[0]


# --------------------------------------------------------------------------- the renderer


def test_untrusted_names_and_content_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    page = render_trace(
        [span("root", name=evil, **{attr.INPUT_VALUE: '<img src=x onerror="alert(1)">', attr.OUTPUT_VALUE: "a & b"})],
        link='https://sentry.io/x"><script>',
    )
    assert "<script>" not in page and "<img" not in page
    assert html.escape(evil) in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and "a &amp; b" in page


def test_bars_are_placed_and_sized_on_the_trace_time_axis() -> None:
    page = render_trace(
        [
            span("root", start_ms=0, end_ms=200),
            span("first", "root", start_ms=50, end_ms=100),
            span("second", "root", start_ms=100, end_ms=200),
        ]
    )
    assert "left:0.000%;width:100.000%" in row_of(page, "root")
    assert "left:25.000%;width:25.000%" in row_of(page, "first")
    assert "left:50.000%;width:50.000%" in row_of(page, "second")
    assert "200.0 ms" in page  # the axis' right end


def test_rows_are_depth_first_in_start_order_and_indented_by_depth() -> None:
    spans = [
        span("late", "root", start_ms=60, end_ms=90),
        span("root", start_ms=0, end_ms=100),
        span("grandchild", "early", start_ms=20, end_ms=30),
        span("early", "root", start_ms=10, end_ms=50),
    ]
    assert [(d, s.name) for d, s in ordered(spans)] == [(0, "root"), (1, "early"), (2, "grandchild"), (1, "late")]
    page = render_trace(spans)
    assert "padding-left:8px" in row_of(page, "root") and "padding-left:36px" in row_of(page, "grandchild")


def test_a_deep_trace_renders_without_recursion() -> None:
    spans = [span("s0")] + [span(f"s{i}", f"s{i - 1}") for i in range(1, 3000)]
    assert len(ordered(spans)) == 3000


def received(summary: SpanSummary) -> ReceivedSpan:
    """The same span as the local receiver would have decoded it."""
    return ReceivedSpan(
        trace_id=summary.trace_id,
        span_id=summary.span_id,
        parent_span_id=summary.parent_id,
        name=summary.name,
        start_ns=summary.start_ns,
        end_ns=summary.end_ns,
        attributes={attr.SENTRY_OP: summary.op},
        status_code=0,
        status_message="",
        events=[],
        resource={},
    )


def row_names(spans: list[SpanSummary]) -> dict[str, list[str]]:
    """Span names in the order each view lists them: the receiver's text tree, the notebook's
    text summary, the waterfall."""
    tree = format_trace_tree([received(s) for s in spans]).splitlines()[1:]
    waterfall_ids = re.findall(r'data-span-id="([^"]+)"', render_trace(spans))
    by_id = {s.span_id: s.name for s in spans}
    return {
        "text tree": [line.strip().split("  [")[0] for line in tree],
        "notebook text": [line.strip().split(" [")[0] for line in render_text(spans).splitlines()],
        "waterfall": [by_id[span_id] for span_id in waterfall_ids],
    }


def test_every_view_lists_spans_in_the_same_order() -> None:
    spans = [
        span("late", "root", start_ms=60),
        span("orphan", "gone", start_ms=5),
        span("root", start_ms=0),
        span("grandchild", "early", start_ms=20),
        span("early", "root", start_ms=10),
        span("orphan child", "orphan", start_ms=6),
    ]
    views = row_names(spans)
    expected = ["root", "early", "grandchild", "late", "orphan", "orphan child"]
    assert views == {view: expected for view in views}


def test_parents_in_a_cycle_neither_loop_nor_hide_a_span() -> None:
    spans = [
        span("root", start_ms=0),
        span("a", "b", start_ms=10),
        span("b", "a", start_ms=20),
        span("self", "self", start_ms=30),
    ]
    assert [(d, s.name) for d, s in ordered(spans)] == [(0, "root"), (0, "self"), (0, "a"), (1, "b")]
    views = row_names(spans)
    assert views == {view: ["root", "self", "a", "b"] for view in views}
    assert 'data-span-id="a"' in render_trace(spans[1:3])  # a trace with no root at all still draws


def test_a_span_id_received_twice_is_listed_twice_without_looping() -> None:
    """An exporter's retry can deliver a span again; one copy under its own descendant once
    made the text tree recurse without end."""
    spans = [span("root", start_ms=0), span("x", "root", start_ms=10), span("y", "x", start_ms=20)]
    spans.append(span("x", "y", start_ms=30, name="x again"))
    assert [(d, s.name) for d, s in ordered(spans)] == [(0, "root"), (1, "x"), (2, "y"), (3, "x again")]
    views = row_names(spans)
    assert views["text tree"] == views["notebook text"] == ["root", "x", "y", "x again"]


def test_missing_usage_is_a_dash_never_zero() -> None:
    page = render_trace(
        [
            span("root"),
            span("no usage", "root", op="gen_ai.chat", **{attr.REQUEST_MODEL: "m1"}),
            span("half", "root", op="gen_ai.chat", **{attr.USAGE_INPUT_TOKENS: 12}),
            span("full", "root", op="gen_ai.chat", **{attr.USAGE_INPUT_TOKENS: 7, attr.USAGE_OUTPUT_TOKENS: 0}),
        ]
    )
    assert "—" in row_of(page, "no usage") and "0 → 0" not in page
    assert "12 → —" in row_of(page, "half")
    assert "7 → 0" in row_of(page, "full")  # a reported zero stays a zero
    assert "m1" in row_of(page, "no usage")
    assert "tokens 19 → 0" in page  # the trace's total counts what was reported


def test_model_tokens_cost_and_status_sit_in_their_own_padded_cells() -> None:
    page = render_trace(
        [
            span(
                "chat",
                op="gen_ai.chat",
                **{
                    attr.RESPONSE_MODEL: "gpt-4o-mini",
                    attr.USAGE_INPUT_TOKENS: 412,
                    attr.USAGE_OUTPUT_TOKENS: 38,
                    attr.COST_TOTAL: 0.000312,
                },
            )
        ]
    )
    cells = re.findall(r"<td style=\"([^\"]*)\"[^>]*>(.*?)</td>", row_of(page, "chat"), flags=re.S)
    texts = [re.sub(r"<[^>]+>", "", text) for _, text in cells]
    assert texts[2:] == ["100.0 ms", "gpt-4o-mini", "412 → 38", "$0.000312", "ok"]
    assert all("padding:4px 8px" in style for style, _ in cells)


def test_an_error_row_is_red_with_its_message() -> None:
    page = render_trace([span("root"), span("tool", "root", op="gen_ai.execute_tool", error="ValueError: nope")])
    row = row_of(page, "tool")
    assert 'class="slc-row slc-kind-tool slc-error"' in row
    assert f"background:{ERROR_COLOUR}" in row and "ValueError: nope" in row
    assert "slc-error" not in row_of(page, "root")
    assert "1 error(s)" in page


def test_colours_follow_the_kind() -> None:
    page = render_trace(
        [
            span("agent", op="gen_ai.invoke_agent"),
            span("chat", "agent", op="gen_ai.chat"),
            span("embed", "agent", op="gen_ai.embeddings"),
            span("tool", "agent", op="gen_ai.execute_tool"),
            span("chain", "agent", op="function"),
        ]
    )
    kinds = {name: re.search(r"slc-kind-(\w+)", row_of(page, name)).group(1) for name in ("agent", "chat", "tool")}
    assert kinds == {"agent": "agent", "chat": "model", "tool": "tool"}
    assert "slc-kind-model" in row_of(page, "embed") and "slc-kind-chain" in row_of(page, "chain")
    colours = {re.search(r"slc-bar[^>]*background:(#\w+)", r).group(1) for r in rows(page)}
    assert len(colours) == 4


def test_input_and_output_are_one_click_away_and_truncated() -> None:
    long = "x" * (MAX_SHOWN_CHARS + 500)
    page = render_trace(
        [
            span("root", **{attr.INPUT_VALUE: '{"question": "why?"}', attr.OUTPUT_VALUE: long}),
            span("tool", "root", op="gen_ai.execute_tool", **{attr.TOOL_CALL_ARGUMENTS: '{"q": 1}'}),
            span("bare", "root"),
        ]
    )
    root = row_of(page, "root")
    assert "<details" in root and '<details class="slc-details" open' not in root
    assert "{\n &quot;question&quot;: &quot;why?&quot;\n}" in root  # JSON indented for reading
    assert f'{"x" * MAX_SHOWN_CHARS}<span class="slc-truncated"' in root and "truncated 500 chars" in root
    assert 'data-label="tool arguments"' in row_of(page, "tool")
    assert "<details" not in row_of(page, "bare")
    assert '<details class="slc-details" open' in render_trace([span("r", **{attr.INPUT_VALUE: "q"})], expanded=True)


def test_content_held_unrendered_is_rendered_once_and_a_failure_shows_nothing() -> None:
    calls = []

    class Lazy:
        def render(self) -> str:
            calls.append(1)
            return "rendered input"

    def broken() -> str:
        raise RuntimeError("cannot render")

    summary = span("root", **{attr.INPUT_VALUE: Lazy(), attr.OUTPUT_VALUE: broken})
    resolve_content([summary])
    assert summary.content == [("input", "rendered input")] and calls == [1]
    assert "rendered input" in render_trace([summary])


def test_each_trace_gets_its_own_waterfall_and_link() -> None:
    other = from_attributes(
        trace_id="cd" * 16, span_id="x", parent_id="", name="other", start_ns=5, end_ns=9, attributes={}, error=None
    )
    page = render_traces([span("root"), other], link_for=lambda trace_id: f"https://example.test/{trace_id}")
    assert page.count('class="slc-waterfall"') == 2
    assert f"https://example.test/{TRACE}" in page and f"https://example.test/{'cd' * 16}" in page


# --------------------------------------------------------------------------- the notebook


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext sentry_llm_callbacks")
    yield shell
    shell.run_cell("%unload_ext sentry_llm_callbacks")
    InteractiveShell.clear_instance()


CHAT_CELL = (
    "from langchain_core.language_models.fake_chat_models import GenericFakeChatModel\n"
    "from langchain_core.messages import AIMessage\n"
    "GenericFakeChatModel(messages=iter([AIMessage(content='the <answer>')])).invoke('the <question>')\n"
)


def test_notebook_summary_is_the_waterfall_with_content_and_no_zero_tokens(sentry: LocalReceiver, shell) -> None:
    from sentry_llm_callbacks.devtools import jupyter

    shell.run_cell(CHAT_CELL)
    summary = jupyter._active.last_summary  # type: ignore[union-attr]
    page = summary._repr_html_()
    check_trace(sentry.spans, generations=1)
    assert 'class="slc-waterfall"' in page and len(rows(page)) == 1
    assert "the &lt;question&gt;" in page and "the &lt;answer&gt;" in page  # input and output, escaped
    assert "0 → 0" not in page and "—" in page  # the fake model reports no usage
    assert "<script" not in page and "<link" not in page and "@import" not in page  # self-contained
    assert "tokens — → —" in repr(summary)


def test_notebook_summary_shows_no_content_in_privacy_mode(sentry: LocalReceiver, shell) -> None:
    from sentry_llm_callbacks.devtools import jupyter

    shell.run_cell("%sentry_llm --privacy on")
    shell.run_cell(CHAT_CELL)
    page = jupyter._active.last_summary._repr_html_()  # type: ignore[union-attr]
    assert "question" not in page and "answer" not in page


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--usr someone", "unknown option '--usr'"),
        ("--user", "option '--user' needs a value"),
        ("--privacy maybe", "--privacy takes on or off, not 'maybe'"),
        ("--summary of", "--summary takes on or off, not 'of'"),
        ("--user 'unclosed", "No closing quotation"),
    ],
)
def test_magic_rejects_what_it_does_not_understand(shell, line: str, message: str) -> None:
    from IPython.core.error import UsageError

    from sentry_llm_callbacks.devtools import jupyter

    with pytest.raises(UsageError, match=re.escape(message)) as raised:
        jupyter._active.magic(line)  # type: ignore[union-attr]
    assert "Usage: %sentry_llm [--user U]" in str(raised.value)
    assert jupyter._active.handler_kwargs == {} and jupyter._active.show_summary  # nothing half-applied


def test_magic_error_reaches_the_cell_as_one_line(shell, capsys: pytest.CaptureFixture[str]) -> None:
    result = shell.run_cell("%sentry_llm --bogus 1")
    out = capsys.readouterr()
    assert "UsageError: %sentry_llm: unknown option '--bogus'" in out.err + out.out
    assert "Traceback" not in out.err + out.out
    assert result.error_in_exec is not None or result.error_before_exec is not None


# --------------------------------------------------------------------------- the local web page


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def send_demo_and_error() -> None:
    run_langchain_agent()

    def charge(x: int) -> int:
        raise ValueError("card token <missing>")

    with pytest.raises(ValueError):
        RunnableLambda(charge).with_config(run_name="Charge <card>").invoke(
            1, config={"callbacks": [SentryCallbackHandler()]}
        )


def test_page_lists_traces_newest_first_and_draws_each(sentry: LocalReceiver) -> None:
    send_demo_and_error()
    spans = delivered(sentry)
    assert len({s.trace_id for s in spans}) == 2
    agent = check_trace([s for s in spans if s.name != "Charge <card>"], generations=2, usage=[(412, 38), (502, 21)])
    failed = check_trace([s for s in spans if s.name == "Charge <card>"], root_error=True)
    status, page = get(f"http://127.0.0.1:{sentry.port}/")
    assert status == 200 and '<meta http-equiv="refresh" content="2">' in page
    listed = re.findall(r'href="/trace/([0-9a-f]{32})"', page)
    assert listed == [failed.trace_id, agent.trace_id]  # newest first
    assert "Charge &lt;card&gt;" in page and "914 → 59" in page and "$0.000153" in page
    assert re.search(r"data-errors.*?>1</span>", page)

    status, page = get(f"http://127.0.0.1:{sentry.port}/trace/{agent.trace_id}")
    assert status == 200 and len(rows(page)) == len(agent.spans)
    assert "refresh" not in page  # complete: opened details stay open
    chats = [r for r in rows(page) if "slc-kind-model" in r]
    assert len(chats) == 2 and "412 → 38" in chats[0] and "gpt-4o-mini" in chats[0]
    status, page = get(f"http://127.0.0.1:{sentry.port}/trace/{failed.trace_id}?open=all")
    assert "slc-error" in row_of(page, "Charge &lt;card&gt;") and "ValueError: card token &lt;missing&gt;" in page


def test_page_answers_unknown_paths_and_traces_with_404(receiver: LocalReceiver) -> None:
    assert get(f"http://127.0.0.1:{receiver.port}/nope")[0] == 404
    status, page = get(f"http://127.0.0.1:{receiver.port}/trace/{'0' * 32}")
    assert status == 404 and "has arrived yet" in page
    status, page = get(f"http://127.0.0.1:{receiver.port}/")
    assert status == 200 and "No traces yet" in page
    assert receiver.requests == 0  # page views are not OTLP requests


def test_trace_page_reloads_until_its_root_arrives() -> None:
    from sentry_llm_callbacks.devtools.trace_page import trace_view

    status, page = trace_view(TRACE, [received(span("child", "root-not-yet"))], expanded=False)
    assert status == 200 and 'http-equiv="refresh"' in page


def test_demo_keep_serving_prints_the_page_and_serves_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentry_llm_callbacks", "demo", "--keep-serving"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            match = re.search(r"The traces as a waterfall: (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url is not None, proc.stderr.read() if proc.stderr else ""
        status, page = get(url)
        assert status == 200 and "Error Analysis Agent" in page
    finally:
        proc.terminate()
        proc.wait(10)


def test_demo_without_dsn_says_how_to_see_the_page() -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stderr
    assert "sentry-llm-callbacks demo --keep-serving" in result.stdout
