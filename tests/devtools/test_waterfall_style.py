"""The waterfall's styles as HTML: one scoped ``!important`` block, and inline styles that state
every property a host stylesheet sets (how they hold in real hosts: test_notebook_summary_browser)."""

from __future__ import annotations

import re

from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools.waterfall import SpanSummary, render_trace, render_traces
from sentry_llm_callbacks.devtools.waterfall_style import SCOPE, style_block

#: What JupyterLab's and VS Code's stylesheets set on table cells and rows.
HOST_SET = ("text-align", "vertical-align", "padding", "border", "background", "white-space", "line-height", "font")


def span(
    span_id: str, parent: str = "", *, trace: str = "t1", op: str = "function", opens: bool = False
) -> SpanSummary:
    """A 1 ms span; ``opens``: with content, so its row opens."""
    content: list = [("input", "q")] if opens else []
    return SpanSummary(trace, span_id, parent, span_id, op, start_ns=0, end_ns=1_000_000, content=content)


def test_every_rule_is_scoped_to_the_waterfall_and_important() -> None:
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", style_block().removeprefix('<style class="slc-style">'))
    assert len(rules) > 10
    for selectors, body in rules:
        assert all(s.startswith(SCOPE) for s in selectors.split(",")), selectors
        assert all(d.endswith(" !important") for d in body.split(";")), body


def test_the_style_block_comes_once_before_the_waterfalls() -> None:
    two_traces = render_traces([span("a"), span("b", trace="t2")])
    assert two_traces.count('<style class="slc-style">') == 1
    assert two_traces.index("<style") < two_traces.index('class="slc-waterfall"')
    assert render_trace([span("a")]).startswith(style_block())
    assert render_traces([]) == "" and render_trace([]) == ""


def test_inline_styles_state_what_hosts_set_on_every_cell_and_row() -> None:
    page = render_trace([span("root", opens=True), span("child", "root", op=attr.OP_CHAT)])
    elements = re.findall(r"<(td|th|tr|thead|tbody) style=\"([^\"]*)\"", page)
    assert {tag for tag, _ in elements} == {"td", "th", "tr", "thead", "tbody"}
    for tag, style in elements:
        stated = {d.split(":")[0] for d in style.split(";") if d}
        missing = [p for p in HOST_SET if not any(s == p or s.startswith(p + "-") for s in stated)]
        if tag in ("td", "th"):
            assert missing == [], (tag, style)
        else:
            assert "background" in stated and "text-align" in stated, (tag, style)
