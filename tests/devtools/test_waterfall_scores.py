"""A score shows as a badge on the row it scores, in the waterfall the notebook and ``serve`` draw."""

from __future__ import annotations

import re

from langchain_core.runnables import RunnableLambda

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from sentry_llm_callbacks.devtools.waterfall import from_received_span, render_trace
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.spans import delivered


def rows(html: str) -> dict[str, str]:
    """Each row's HTML by its span id."""
    return dict(re.findall(r'<tr class="slc-row[^"]*" data-span-id="([0-9a-f]+)"[^>]*>(.*?)</tr>', html, re.S))


def test_scores_are_badges_on_the_scored_row(receiver: LocalReceiver) -> None:
    slc.configure(dsn=receiver.dsn)
    chain = RunnableLambda(lambda q: q).with_config(run_name="Step") | RunnableLambda(lambda q: q)
    chain.invoke("q", config={"callbacks": [SentryCallbackHandler()]})
    ref = slc.last_trace()
    assert ref is not None
    slc.score(ref, "helpfulness", 0.8)
    slc.score(ref, "thumbs_up", True)
    slc.score(ref, "category", "billing")
    spans = delivered(receiver, 6)
    html = render_trace([from_received_span(s) for s in spans])
    by_id = rows(html)
    root = by_id[ref.span_id]
    assert re.findall(r'class="slc-score"[^>]*>([^<]+)<', root) == [
        "helpfulness 0.8",
        "thumbs_up yes",
        "category billing",
    ]
    others = [row for span_id, row in by_id.items() if span_id != ref.span_id]
    assert len(others) == 5 and not any("slc-score" in row for row in others)
