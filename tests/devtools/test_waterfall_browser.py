"""The local trace page in a real browser: headless Chromium loads it after a demo run.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it when missing); where
it cannot be installed the test is skipped with the reason. The screenshot is saved as
``artifacts/waterfall.png`` (the demo agent) and ``artifacts/waterfall-error.png`` (a failed
run, its input and output opened) for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

from sentry_llm_callbacks.devtools.demo import run_langchain_agent
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.chromium import chromium, needs_chromium, screenshot
from tests.support.invariants import check_trace
from tests.support.spans import delivered

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

    for name, url in (("waterfall.png", f"/trace/{agent}"), ("waterfall-error.png", f"/trace/{failed}?open=all")):
        screenshot(tmp_path, base + url, name)
