"""The local trace page in a real browser: headless Chromium loads it after real runs.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it when missing); where
it cannot be installed the tests are skipped with the reason. Screenshots are saved in
``artifacts/`` for a person to look at: ``waterfall.png`` (the demo agent),
``waterfall-error.png`` (a failed run, its input and output opened), and the ``trace-page-*.png``
and ``trace-list-*.png`` of the details panel, the conversation, folding, errors and the list.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.demo import run_langchain_agent
from sentry_llm_callbacks.devtools.details import trace_link_for_dsn
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.browser import Browser
from tests.support.chromium import ARTIFACTS, chromium, needs_chromium
from tests.support.invariants import check_trace
from tests.support.langchain_models import chat_openai
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import delivered
from tests.support.waiting import wait_until

pytestmark = needs_chromium


def send_traces(sentry: LocalReceiver) -> tuple[str, str]:
    """The demo agent's trace and one that failed; returns their trace ids."""
    run_langchain_agent()

    def charge(reply: AIMessage) -> str:
        raise ValueError("card token <missing>")

    usage = {"input_tokens": 40, "output_tokens": 5, "total_tokens": 45}
    reply = AIMessage(content="charge 12.50 EUR", usage_metadata=usage, response_metadata={"model_name": "gpt-4o-mini"})
    model = GenericFakeChatModel(messages=iter([reply]))
    flow = RunnableLambda(lambda order: f"Charge order {order}").with_config(run_name="build prompt") | model
    flow = (flow | RunnableLambda(charge).with_config(run_name="charge")).with_config(run_name="Charge card")
    with pytest.raises(ValueError):
        flow.invoke(7, config={"callbacks": [SentryCallbackHandler()]})
    by_trace: dict[str, list] = {}
    for span in delivered(sentry):
        by_trace.setdefault(span.trace_id, []).append(span)
    assert len(by_trace) == 2
    (failed_spans,) = [t for t in by_trace.values() if any(s.name == "Charge card" for s in t)]
    (agent_spans,) = [t for t in by_trace.values() if t is not failed_spans]
    agent = check_trace(agent_spans, generations=2, usage=[(412, 38), (502, 21)])
    failed = check_trace(failed_spans, root_error=True, generations=1, usage=[(40, 5)])
    return agent.trace_id, failed.trace_id


def test_waterfall_renders_in_chromium(sentry: LocalReceiver, tmp_path: Path) -> None:
    agent, failed = send_traces(sentry)
    base = f"http://127.0.0.1:{sentry.port}"

    listing = chromium(tmp_path, "--dump-dom", f"{base}/")
    assert re.findall(r'href="/trace/([0-9a-f]{32})"', listing) == [failed, agent]

    dom = chromium(tmp_path, "--dump-dom", f"{base}/trace/{agent}?open=all")
    rows = re.findall(r'<tr class="slc-row[^"]*".*?</tr>', dom, flags=re.S)
    assert len(rows) == 15 and all('class="slc-bar' in row for row in rows)
    assert len(re.findall(r'class="slc-row slc-kind-model"', dom)) == 2
    assert 'class="slc-row slc-kind-tool"' in dom and 'class="slc-row slc-kind-agent"' in dom
    chat = next(row for row in rows if "slc-kind-model" in row)
    assert "gpt-4o-mini" in chat and "412 → 38" in chat and "$0.000065" in chat
    # The browser parsed the details as opened, with the model's input messages inside.
    assert re.search(r'<details class="slc-details" open="">', chat)
    assert 'data-label="input messages"' in chat and "Why are payments failing?" in chat

    dom = chromium(tmp_path, "--dump-dom", f"{base}/trace/{failed}")
    error_rows = re.findall(r'<tr class="slc-row slc-kind-chain slc-error".*?</tr>', dom, flags=re.S)
    assert len(error_rows) == 2  # the failing step and the run it failed
    assert all("background:#dc2626" in row for row in error_rows)
    assert "ValueError: card token &lt;missing&gt;" in error_rows[0]
    assert "slc-error" not in next(row for row in re.findall(r"<tr class=.*?</tr>", dom, flags=re.S) if "40 → 5" in row)

    ARTIFACTS.mkdir(exist_ok=True)
    for name, url in (("waterfall.png", f"/trace/{agent}"), ("waterfall-error.png", f"/trace/{failed}?open=all")):
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", base + url)
        assert shot.stat().st_size > 10_000  # a drawn page, not a blank one


# --------------------------------------------------------------------------- the trace page, driven

SYSTEM = "You are a careful SRE."
QUESTION = "Why are payments failing?"
ANSWER = "The card token is null; validate it before charging."
SENTRY_DSN = "https://key@o4242.ingest.us.sentry.io/7"
#: A span name and values a hostile client could send: each must stay text.
EVIL = '</script><script>window.pwned=1</script>"\'<img src=x onerror="window.pwned=2">'


@tool
def search_logs(query: str, hours: int = 24) -> str:
    """Search the service logs."""
    return "NullPointerException at PaymentService.charge(PaymentService.java:42)"


@dataclass
class Sent:
    """Traces that went over HTTP to a local receiver, by what they are."""

    receiver: LocalReceiver
    agent: str
    failed: str
    private: str
    hostile: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}"

    def spans(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.receiver.spans if s.trace_id == trace_id]

    def row(self, trace_id: str, name: str, index: int = 0) -> str:
        """The selector of the ``index``-th row named ``name`` (in start order)."""
        matches = sorted((s for s in self.spans(trace_id) if s.name == name), key=lambda s: s.start_ns)
        return f'tr.slc-row[data-span-id="{matches[index].span_id}"]'


def run_agent(server: OpenAIServer) -> None:
    """A LangGraph ReAct agent on ``ChatOpenAI`` (a real HTTP call to a local OpenAI-compatible
    server each time): a system prompt, one tool call, then the answer."""
    from langgraph.prebuilt import create_react_agent

    server.queue(
        Reply(
            content="",
            tool_calls=[{"id": "call_1", "name": "search_logs", "args": {"query": "payment errors", "hours": 2}}],
            usage={"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450},
        ),
        Reply(content=ANSWER, usage={"prompt_tokens": 502, "completion_tokens": 21, "total_tokens": 523}),
    )
    model = chat_openai(server, temperature=0.2, max_tokens=256)
    agent = create_react_agent(model, [search_logs], prompt=SYSTEM, name="sre_agent")
    metadata = {"user": "user_42", "session_id": "sess_7", "trace": {"trace_name": "Payments triage", "team": "sre"}}
    config = {"callbacks": [SentryCallbackHandler()], "metadata": metadata}
    agent.invoke({"messages": [("human", QUESTION)]}, config=config)


def fail(name: str, **handler: Any) -> None:
    def charge(order: int) -> str:
        raise ValueError("card token <missing>")

    with pytest.raises(ValueError):
        config = {"callbacks": [SentryCallbackHandler(**handler)]}
        RunnableLambda(charge).with_config(run_name=name).invoke(7, config=config)


@pytest.fixture(scope="module")
def sent() -> Iterator[Sent]:
    """An agent's trace, a failed run, the same failure in Privacy Mode and a hostile trace, each
    sent by the package over HTTP to a local receiver whose page links to a Sentry organisation."""
    server = OpenAIServer().start()
    with LocalReceiver() as receiver:
        receiver.trace_link = trace_link_for_dsn(SENTRY_DSN)
        slc.configure(dsn=receiver.dsn)
        ids = []
        for send in (
            lambda: run_agent(server),
            lambda: fail("Charge card"),
            lambda: fail("Charge card privately", privacy_mode=True),
            lambda: (
                RunnableLambda(lambda x: EVIL)
                .with_config(run_name=EVIL)
                .invoke({"q": EVIL}, config={"callbacks": [SentryCallbackHandler(user=EVIL, session_id=EVIL)]})
            ),
        ):
            send()
            assert slc.flush(10)
            ids.append(next(s.trace_id for s in receiver.spans if s.trace_id not in ids))
        slc.shutdown()
        check_trace([s for s in receiver.spans if s.trace_id == ids[0]], generations=2, usage=[(412, 38), (502, 21)])
        yield Sent(receiver, *ids)
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with Browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


def shot(browser: Browser, name: str) -> None:
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    browser.screenshot(path)
    assert path.stat().st_size > 10_000  # a drawn page, not a blank one


def drawn(browser: Browser, selector: str) -> list[str]:
    """The text of each element matching ``selector`` that is drawn (not hidden by folding or a toggle)."""
    return browser.evaluate(
        f"[...document.querySelectorAll({selector!r})].filter(e => e.getClientRects().length).map(e => e.textContent)"
    )


def panel_text(browser: Browser) -> str:
    return browser.evaluate("document.getElementById('slc-panel').innerText")


def test_selecting_a_row_opens_its_details_beside_the_waterfall(sent: Sent, browser: Browser) -> None:
    browser.open(f"{sent.base}/trace/{sent.agent}")
    assert browser.box("#slc-panel") is None  # nothing selected yet
    chat = sent.row(sent.agent, "chat gpt-4o-mini", 1)
    browser.click(chat)

    panel, table, row = browser.box("#slc-panel"), browser.box(".slc-waterfall table"), browser.box(chat)
    assert panel is not None and table is not None and row is not None
    assert panel["left"] >= table["right"] and panel["width"] >= 300  # beside, not inside a column
    assert panel["top"] <= row["top"] <= panel["bottom"]  # level with what it details
    assert browser.evaluate(f"document.querySelector({chat!r}).classList.contains('slc-selected')")
    text = panel_text(browser)
    assert "chat gpt-4o-mini" in text and sent.agent in text
    groups = drawn(browser, ".slc-group .slc-section-head")
    assert groups[:4] == ["Model and parameters", "Usage and cost", "User, session and metadata", "Identifiers"]
    rows = dict(
        browser.evaluate(
            "[...document.querySelectorAll('#slc-panel .slc-kv tr')]"
            ".map(r => [r.querySelector('th').textContent, r.querySelector('.slc-val').textContent])"
        )
    )
    assert rows["user.id"] == "user_42" and rows["session.id"] == rows["gen_ai.conversation.id"] == "sess_7"
    assert rows["gen_ai.request.model"] == "gpt-4o-mini" and rows["gen_ai.request.temperature"] == "0.2"
    assert rows["gen_ai.usage.input_tokens"] == "502" and rows["gen_ai.usage.output_tokens"] == "21"
    assert rows["gen_ai.response.finish_reasons"] == '["stop"]' and rows["trace.metadata.team"] == "sre"
    assert rows["trace id"] == sent.agent and rows["service.name"] == "llm-app"
    assert browser.evaluate("getComputedStyle(document.querySelector('.slc-val')).userSelect") != "none"
    link = browser.evaluate("document.querySelector('a.slc-sentry-link').href")
    assert link == f"https://sentry.io/organizations/4242/explore/traces/trace/{sent.agent}/"

    browser.grant_clipboard(sent.base)
    browser.click(".slc-ids .slc-copy")
    assert browser.evaluate("navigator.clipboard.readText()") == sent.agent
    shot(browser, "trace-page-details.png")

    # The selection is in the address: opening it again opens the same details.
    span_id = chat.split('"')[1]
    assert browser.evaluate("location.hash") == f"#span-{span_id}"
    browser.open("about:blank")
    browser.open(f"{sent.base}/trace/{sent.agent}#span-{span_id}")
    assert browser.box("#slc-panel") is not None and "502" in panel_text(browser)
    browser.key("Escape")
    assert browser.box("#slc-panel") is None


def roles(browser: Browser, side: str) -> list[str]:
    messages = f"document.querySelectorAll('#slc-panel .slc-{side} .slc-msg')"
    return browser.evaluate(f"[...{messages}].map(m => m.dataset.role)")


def test_messages_read_as_a_conversation_with_a_raw_json_toggle(sent: Sent, browser: Browser) -> None:
    browser.open(f"{sent.base}/trace/{sent.agent}")
    browser.click(sent.row(sent.agent, "chat gpt-4o-mini", 1))
    assert roles(browser, "input") == ["system", "user", "assistant", "tool"]
    assert roles(browser, "output") == ["assistant"]
    assert drawn(browser, ".slc-input .slc-part-text")[:2] == [SYSTEM, QUESTION]
    (call,) = drawn(browser, ".slc-input .slc-part-tool_call")
    assert "tool call search_logs" in call and '"query": "payment errors"' in call and '"hours": 2' in call
    (result,) = drawn(browser, ".slc-input .slc-part-tool_result")
    assert "NullPointerException at PaymentService.charge" in result
    assert drawn(browser, ".slc-output .slc-part-text") == [ANSWER]
    assert "finish: stop" in drawn(browser, ".slc-output .slc-role")[0]
    assert drawn(browser, ".slc-input .slc-raw") == []
    shot(browser, "trace-page-conversation.png")

    browser.click(".slc-input .slc-toggle")
    (raw,) = drawn(browser, ".slc-input .slc-raw")
    assert "gen_ai.input.messages" in raw and '"role": "tool"' in raw and "gen_ai.system_instructions" in raw
    assert drawn(browser, ".slc-input .slc-conversation") == [] and drawn(browser, ".slc-input .slc-toggle") == [
        "conversation"
    ]
    shot(browser, "trace-page-raw-json.png")
    browser.click(".slc-input .slc-toggle")
    assert drawn(browser, ".slc-input .slc-raw") == [] and len(drawn(browser, ".slc-input .slc-msg")) == 4

    # The root holds the app's raw input (("human", ...) pairs): it reads as the same user message.
    browser.click(sent.row(sent.agent, "Payments triage"))
    assert roles(browser, "input") == ["user"] and drawn(browser, ".slc-input .slc-part-text") == [QUESTION]
    assert roles(browser, "output") == ["user", "assistant", "tool", "assistant"]
    # A tool: its call with the arguments, and its result.
    browser.click(sent.row(sent.agent, "execute_tool search_logs"))
    assert roles(browser, "input") == ["assistant"] and roles(browser, "output") == ["tool"]
    assert '"query": "payment errors"' in drawn(browser, ".slc-input .slc-part-tool_call")[0]


def visible_rows(browser: Browser) -> list[str]:
    return browser.evaluate(
        "[...document.querySelectorAll('tr.slc-row')].filter(r => r.getClientRects().length)"
        ".map(r => r.querySelector('.slc-name').textContent)"
    )


def test_folding_hides_a_subtree_and_expand_all_stays_short(sent: Sent, browser: Browser) -> None:
    spans = sent.spans(sent.agent)
    browser.open(f"{sent.base}/trace/{sent.agent}")
    everything = visible_rows(browser)
    assert len(everything) == len(spans) == 15
    first_step = sent.row(sent.agent, "agent", 0)
    browser.click(f"{first_step} .slc-fold")
    folded = visible_rows(browser)
    below = ["call_model", "RunnableSequence", "Prompt", "chat gpt-4o-mini", "should_continue"]
    assert folded == everything[:2] + everything[7:] and everything[2:7] == below
    assert browser.evaluate(f"document.querySelector('{first_step} .slc-hidden-count').textContent") == "+5"
    fold = f"document.querySelector('{first_step} .slc-fold')"
    assert browser.evaluate(f"{fold}.getAttribute('aria-expanded')") == "false"
    shot(browser, "trace-page-folded.png")
    # The arrow keys move the selection over the rows that are drawn.
    browser.click(first_step)
    browser.key("ArrowDown")
    assert browser.evaluate("document.querySelector('tr.slc-selected .slc-name').textContent") == "tools"
    browser.key("ArrowUp")
    assert browser.evaluate("document.querySelector('tr.slc-selected')") is not None
    assert browser.evaluate("location.hash") == "#span-" + first_step.split('"')[1]
    browser.click(f"{first_step} .slc-fold")
    assert visible_rows(browser) == everything

    browser.click("#slc-fold-all")
    assert visible_rows(browser) == ["Payments triage", "agent", "tools", "agent"]
    browser.click(f"{sent.row(sent.agent, 'Payments triage')} .slc-fold")
    assert visible_rows(browser) == ["Payments triage"]
    browser.click("#slc-unfold-all")
    assert visible_rows(browser) == everything

    # Expand all: each row's input and output one line long, the details in the panel.
    browser.open(f"{sent.base}/trace/{sent.agent}?open=all")
    assert browser.evaluate("document.querySelectorAll('details.slc-details[open]').length") == 15
    heights = browser.evaluate("[...document.querySelectorAll('pre.slc-content')].map(p => p.offsetHeight)")
    assert len(heights) >= 25 and max(heights) <= 20
    assert browser.evaluate("document.documentElement.scrollHeight") <= 1600  # it was 7,000 px
    shot(browser, "trace-page-expanded.png")


@pytest.mark.parametrize("which", ["agent", "failed"])  # tens of milliseconds; under one millisecond
def test_the_time_axis_has_labelled_ticks_that_do_not_overlap(sent: Sent, browser: Browser, which: str) -> None:
    trace = getattr(sent, which)
    browser.open(f"{sent.base}/trace/{trace}")
    first = "tools" if which == "agent" else "Charge card"
    browser.click(sent.row(trace, first))  # with the panel open, the timeline is at its narrowest
    ticks = browser.evaluate(
        "[...document.querySelectorAll('.slc-tick')].map(t => { const r = t.getBoundingClientRect();"
        " return [t.textContent, r.left, r.right]; })"
    )
    column = browser.box(".slc-axis")
    assert column is not None and len(ticks) == 4 and ticks[0][0] == "0"
    assert re.fullmatch(r"\d+(\.\d+)? (ms|s)", ticks[-1][0])  # the end says the unit
    scale = 1000 if ticks[-1][0].endswith(" s") else 1
    assert all(re.fullmatch(r"\d+(\.\d+)?( (ms|s))?", label) for label, _, _ in ticks[1:3])
    values = [0.0] + [float(label.split()[0]) * (1000 if label.endswith(" s") else scale) for label, _, _ in ticks[1:]]
    assert values == sorted(values) and values[-1] > 0
    for (_, _, right), (_, left, _) in itertools.pairwise(ticks):
        assert right <= left  # no label over the next
    assert column["left"] - 0.5 <= ticks[0][1] and ticks[-1][2] <= column["right"] + 0.5


def test_an_error_shows_its_stack_only_when_content_is_allowed(sent: Sent, browser: Browser) -> None:
    browser.open(f"{sent.base}/trace/{sent.failed}")
    row = sent.row(sent.failed, "Charge card")
    cell = f"document.querySelector('{row} td:last-child')"
    status = browser.evaluate(f"[{cell}.innerText, {cell}.scrollWidth <= {cell}.clientWidth]")
    assert status == ["ValueError: card token <missing>", True]  # type and message, whole
    browser.click(row)
    assert drawn(browser, ".slc-error-type") == ["ValueError"]
    assert drawn(browser, ".slc-error-message") == ["card token <missing>"]
    (stack,) = drawn(browser, ".slc-stack")
    assert stack.startswith("Traceback (most recent call last):") and "in charge" in stack
    assert stack.rstrip().endswith("ValueError: card token <missing>")
    shot(browser, "trace-page-error.png")

    browser.open(f"{sent.base}/trace/{sent.private}")
    browser.click(sent.row(sent.private, "Charge card privately"))
    assert drawn(browser, ".slc-error-type") == ["ValueError"]
    assert drawn(browser, ".slc-error-message") == []
    assert browser.evaluate("document.querySelector('.slc-stack')") is None
    assert "card token" not in browser.evaluate("document.documentElement.outerHTML")
    shot(browser, "trace-page-error-privacy.png")


def list_rows(browser: Browser) -> list[str]:
    return drawn(browser, "tr.slc-trace-row .slc-col-trace a")


def test_the_trace_list_has_who_and_when_and_filters_as_you_type(sent: Sent, browser: Browser) -> None:
    browser.open(f"{sent.base}/")
    heads = browser.evaluate("[...document.querySelectorAll('table.slc-traces th')].map(t => t.textContent)")
    assert {"started", "user", "session"} <= set(heads)
    everything = list_rows(browser)
    roots = [s.name for s in sent.receiver.spans if not s.parent_span_id]
    assert sorted(everything) == sorted(roots) and len(everything) == 4
    cells = browser.evaluate(
        "[...document.querySelectorAll('tr.slc-trace-row')].filter(r => r.textContent.includes('Payments triage'))"
        ".map(r => [...r.cells].map(c => c.textContent))[0]"
    )
    by_column = dict(zip(heads, cells, strict=True))
    assert by_column["user"] == "user_42" and by_column["session"] == "sess_7"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", by_column["started"])

    for typed, expected in (
        ("user_42", ["Payments triage"]),
        ("SESS_7", ["Payments triage"]),
        ("payments", ["Payments triage"]),
        ("privately", ["Charge card privately"]),
        ("error card", ["Charge card privately", "Charge card"]),
        ("valueerror", ["Charge card privately", "Charge card"]),
    ):
        browser.fill("#slc-filter", typed)
        assert list_rows(browser) == expected, typed
    assert drawn(browser, "#slc-filter-count") == ["2 of 4 traces"]
    shot(browser, "trace-list-filtered.png")
    browser.fill("#slc-filter", "nothing like it")
    assert list_rows(browser) == [] and drawn(browser, "#slc-no-match") == ["No trace matches the filter."]

    # The list keeps itself up to date, and the filter holds over what arrives.
    browser.fill("#slc-filter", "charge")
    slc.configure(dsn=sent.receiver.dsn)
    fail("Charge card again")
    assert slc.flush(10)
    assert wait_until(lambda: len(list_rows(browser)) == 3, timeout=10), list_rows(browser)
    assert browser.evaluate("document.querySelectorAll('tr.slc-trace-row').length") == 5
    assert browser.evaluate("document.getElementById('slc-filter').value") == "charge"
    browser.fill("#slc-filter", "")
    assert len(list_rows(browser)) == 5


def test_hostile_names_and_values_stay_text_in_the_browser(sent: Sent, browser: Browser) -> None:
    (span,) = sent.spans(sent.hostile)
    assert "<script>" in span.name and span.attributes["user.id"] == EVIL
    for url in (f"{sent.base}/", f"{sent.base}/trace/{sent.hostile}"):
        browser.open(url)
        assert browser.evaluate("window.pwned") is None and browser.evaluate("document.images.length") == 0
    browser.click(f'tr.slc-row[data-span-id="{span.span_id}"]')
    assert browser.evaluate("document.querySelector('.slc-panel-title').textContent") == span.name
    assert EVIL in drawn(browser, "#slc-panel .slc-val")
    assert drawn(browser, ".slc-input .slc-pre")[0] == json.dumps({"q": EVIL}, indent=2, ensure_ascii=False)
    assert browser.evaluate("window.pwned") is None and browser.evaluate("document.scripts.length") == 2
    shot(browser, "trace-page-hostile.png")


def test_a_trace_of_a_few_hundred_spans_stays_quick(sentry: LocalReceiver, tmp_path: Path) -> None:
    def step(i: int) -> Any:
        first = RunnableLambda(lambda x: {"messages": [["human", f"question {x} " * 40]], "n": x})
        return first.with_config(run_name=f"step {i}") | RunnableLambda(lambda d: d["n"]).with_config(run_name="inner")

    RunnableLambda(lambda x: [step(i).invoke(i) for i in range(150)]).with_config(run_name="Fan out").invoke(
        1, config={"callbacks": [SentryCallbackHandler()]}
    )
    spans = delivered(sentry)
    assert len(spans) == 451
    url = f"http://127.0.0.1:{sentry.port}/trace/{spans[0].trace_id}"
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200 and len(response.read()) < 5_000_000
    served = time.perf_counter() - started
    with Browser(tmp_path / "chromium") as browser:
        started = time.perf_counter()
        browser.open(url)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        browser.click(f'tr.slc-row[data-span-id="{spans[-1].span_id}"]')
        browser.click("#slc-fold-all")
        acted = time.perf_counter() - started
        assert len(visible_rows(browser)) == 151 and browser.box("#slc-panel") is not None
    # Measured on a shared 2-core machine: about 0.3 s, 0.5 s and 0.1 s; the bounds catch a quadratic turn.
    assert served < 3.0 and loaded < 6.0 and acted < 2.0, (served, loaded, acted)
