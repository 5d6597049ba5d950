"""A trace drawn as a waterfall, as in Sentry's trace view, in self-contained HTML.

One row per span, indented by its depth; a bar placed and sized by the span's start and
duration on the trace's time axis, coloured by kind (agent, model call, tool, chain) and red
for an error; model (with the named prompt a model call was made from), tokens, cost and status
on the row; the captured input and output one click away in a ``<details>`` element. No
scripts, fonts or external CSS; every style is stated both inline and in a scoped ``<style>``
block that wins over the host's stylesheet (:mod:`~sentry_llm_callbacks.devtools.waterfall_style`),
so it renders the same in JupyterLab, VS Code notebooks, a static notebook export and a browser.
Span names and content are untrusted: everything shown goes through ``html.escape``.

The renderer reads a neutral :class:`SpanSummary`; :func:`from_readable_span` (the
OpenTelemetry SDK's finished span, as the notebook sees it) and :func:`from_received_span`
(what :class:`~sentry_llm_callbacks.devtools.receiver.LocalReceiver` decoded) make one.

Example::

    from sentry_llm_callbacks.devtools.receiver import LocalReceiver
    from sentry_llm_callbacks.devtools.waterfall import from_received_span, render_trace

    with LocalReceiver() as receiver:
        ...
        spans = [from_received_span(s) for s in receiver.spans]
        html_text = render_trace(spans)
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools import waterfall_style as style

# The one grouping and the one tree walk, under the names this module has always offered.
from sentry_llm_callbacks.devtools.trees import group_traces as group
from sentry_llm_callbacks.devtools.trees import walk as ordered
from sentry_llm_callbacks.devtools.waterfall_style import INDENT_PX, style_block

__all__ = [
    "COLOURS",
    "CONTENT_KEYS",
    "ERROR_COLOUR",
    "INDENT_PX",
    "MAX_SHOWN_CHARS",
    "MISSING",
    "ReceivedSpanLike",
    "SpanSummary",
    "TraceOverview",
    "fmt_cost",
    "fmt_duration",
    "fmt_prompt",
    "fmt_tick",
    "fmt_tokens",
    "from_attributes",
    "from_readable_span",
    "from_received_span",
    "group",
    "ordered",
    "overview",
    "page",
    "readable",
    "render_trace",
    "render_trace_list",
    "render_traces",
    "resolve_content",
    "shorten",
]

#: Characters of one captured input or output shown in the page before the truncation marker.
MAX_SHOWN_CHARS = 2000
MISSING = "—"

#: Content attributes shown under a row, with the label each gets, in this order.
CONTENT_KEYS: tuple[tuple[str, str], ...] = (
    (attr.SYSTEM_INSTRUCTIONS, "system instructions"),
    (attr.INPUT_MESSAGES, "input messages"),
    (attr.INPUT_VALUE, "input"),
    (attr.TOOL_CALL_ARGUMENTS, "tool arguments"),
    (attr.EMBEDDINGS_INPUT, "embeddings input"),
    (attr.OUTPUT_MESSAGES, "output messages"),
    (attr.OUTPUT_VALUE, "output"),
    (attr.TOOL_CALL_RESULT, "tool result"),
    (attr.RETRIEVAL_DOCUMENTS, "documents"),
)

AGENT, MODEL, TOOL, CHAIN, OTHER = "agent", "model", "tool", "chain", "other"
_KIND_BY_OP = {
    attr.OP_INVOKE_AGENT: AGENT,
    attr.OP_CHAT: MODEL,
    attr.OP_TEXT_COMPLETION: MODEL,
    attr.OP_EMBEDDINGS: MODEL,
    attr.OP_EXECUTE_TOOL: TOOL,
    attr.OP_FUNCTION: CHAIN,
}
#: Bar colours by kind; an error is red whatever its kind.
COLOURS = {AGENT: "#7c3aed", MODEL: "#2563eb", TOOL: "#d97706", CHAIN: "#64748b", OTHER: "#94a3b8"}
ERROR_COLOUR = "#dc2626"

#: Content: text, or a callable that renders it on demand (the notebook's spans hold their
#: content unrendered until the export thread needs it; the summary renders it only when shown).
Content = str | Callable[[], "str | None"]


@dataclass
class SpanSummary:
    """What the waterfall needs of one span."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    op: str
    start_ns: int
    end_ns: int
    model: str | None = None
    #: The named prompt a model call was made from, as :func:`fmt_prompt` shows it.
    prompt: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    error: str | None = None
    content: list[tuple[str, Content]] = field(default_factory=list)
    #: A score's ``name value`` (an evaluation span: shown as a badge on the row it scores).
    score: str | None = None

    @property
    def duration_ms(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e6

    @property
    def kind(self) -> str:
        return _KIND_BY_OP.get(self.op, OTHER)


# --------------------------------------------------------------------------- adapters


def _number(value: Any) -> float | None:
    """A count, cost or score to show as a number: not a bool, a string, NaN or an infinity
    (an OTLP client may send any of them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _content(attributes: Mapping[str, Any]) -> list[tuple[str, Content]]:
    found: list[tuple[str, Content]] = []
    for key, label in CONTENT_KEYS:
        value = attributes.get(key)
        if value is None:
            continue
        if isinstance(value, str) or callable(value):
            found.append((label, value))
        elif callable(getattr(value, "render", None)):  # LazyContent: rendered when shown
            found.append((label, value.render))
        else:
            found.append((label, str(value)))
    return found


def from_attributes(
    *,
    trace_id: str,
    span_id: str,
    parent_id: str,
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    error: str | None,
) -> SpanSummary:
    """A summary from a span's identity, timing, status and attributes."""
    tokens_in, tokens_out = (
        _number(attributes.get(attr.USAGE_INPUT_TOKENS)),
        _number(attributes.get(attr.USAGE_OUTPUT_TOKENS)),
    )
    model = attributes.get(attr.RESPONSE_MODEL) or attributes.get(attr.REQUEST_MODEL)
    prompt = attributes.get(attr.PROMPT_NAME)
    return SpanSummary(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=str(name),
        op=str(attributes.get(attr.SENTRY_OP, "")),
        start_ns=start_ns,
        end_ns=end_ns,
        model=str(model) if model else None,
        prompt=fmt_prompt(str(prompt), attributes.get(attr.PROMPT_VERSION)) if prompt else None,
        input_tokens=int(tokens_in) if tokens_in is not None else None,
        output_tokens=int(tokens_out) if tokens_out is not None else None,
        cost=_number(attributes.get(attr.COST_TOTAL)),
        error=error,
        content=_content(attributes),
        score=_score(attributes),
    )


def _score(attributes: Mapping[str, Any]) -> str | None:
    """``helpfulness 0.8``, ``thumbs_up yes``, ``category billing`` for an evaluation span."""
    name = attributes.get(attr.EVALUATION_NAME)
    if attributes.get(attr.SENTRY_OP) != attr.OP_EVALUATE or not name:
        return None
    label = attributes.get(attr.EVALUATION_SCORE_LABEL)
    if label in ("true", "false"):
        return f"{name} {'yes' if label == 'true' else 'no'}"
    value = _number(attributes.get(attr.EVALUATION_SCORE_VALUE))
    if value is not None:
        return f"{name} {round(value, 2):g}"
    return f"{name} {label}" if label else str(name)


def from_readable_span(span: Any) -> SpanSummary:
    """A summary of an OpenTelemetry SDK ``ReadableSpan`` (content left unrendered until shown)."""
    ctx = span.get_span_context()
    parent = span.parent
    status = span.status
    failed = status is not None and status.status_code.name == "ERROR"
    return from_attributes(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_id=format(parent.span_id, "016x") if parent is not None else "",
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        attributes=span.attributes or {},
        error=(status.description or "error") if failed else None,
    )


class ReceivedSpanLike(Protocol):
    """What :func:`from_received_span` reads: the fields of
    :class:`~sentry_llm_callbacks.devtools.receiver.ReceivedSpan` (the drawing does not depend on the receiver)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str


def from_received_span(span: ReceivedSpanLike) -> SpanSummary:
    """A summary of a span the local receiver decoded."""
    return from_attributes(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_id=span.parent_span_id,
        name=span.name,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        attributes=span.attributes,
        error=(span.status_message or "error") if span.status_code == 2 else None,
    )


def resolve_content(spans: Iterable[SpanSummary]) -> None:
    """Render content held unrendered, in place, so the summaries keep only text."""
    for span in spans:
        resolved: list[tuple[str, Content]] = []
        for label, value in span.content:
            text = value if isinstance(value, str) else _call(value)
            if text:
                resolved.append((label, text))
        span.content = resolved


def _call(render: Callable[[], str | None]) -> str | None:
    try:
        return render()
    except Exception:  # content that cannot be rendered is simply not shown
        return None


# --------------------------------------------------------------------------- a trace's shape


@dataclass(frozen=True)
class TraceOverview:
    """One line of the trace list."""

    trace_id: str
    name: str
    start_ns: int
    duration_ms: float
    spans: int
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    errors: int
    complete: bool
    model_calls: int


def overview(spans: list[SpanSummary]) -> TraceOverview:
    """Totals of one trace: tokens and cost summed over its model calls (agents repeat them)."""
    rows = ordered(spans)
    root = rows[0][1]
    models = [s for s in spans if s.kind == MODEL]
    tokens_in = [s.input_tokens for s in models if s.input_tokens is not None]
    tokens_out = [s.output_tokens for s in models if s.output_tokens is not None]
    costs = [s.cost for s in spans if s.cost is not None and s.kind == MODEL]
    start = min(s.start_ns for s in spans)
    return TraceOverview(
        trace_id=root.trace_id,
        name=root.name,
        start_ns=start,
        duration_ms=max(max(s.end_ns for s in spans) - start, 0) / 1e6,
        spans=len(spans),
        input_tokens=sum(tokens_in) if tokens_in else None,
        output_tokens=sum(tokens_out) if tokens_out else None,
        cost=sum(costs) if costs else None,
        errors=sum(1 for s in spans if s.error),
        complete=not root.parent_id,
        model_calls=len(models),
    )


# --------------------------------------------------------------------------- formatting


def fmt_duration(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def fmt_prompt(name: str, version: Any = None) -> str:
    """``support-triage:3``, as a hub prompt is pulled (``owner/name:commit``); the name alone
    when no version is known."""
    return f"{name}:{version}" if version is not None and version != "" else name


def fmt_tokens(tokens_in: int | None, tokens_out: int | None) -> str:
    """``412 → 38``; a side the provider did not report is ``—``, never 0."""
    return f"{MISSING if tokens_in is None else tokens_in} → {MISSING if tokens_out is None else tokens_out}"


def fmt_cost(cost: float | None) -> str:
    return MISSING if cost is None else f"${cost:.6f}"


def _row_tokens(span: SpanSummary) -> str:
    if span.input_tokens is None and span.output_tokens is None:
        return MISSING if span.kind == MODEL else ""
    return fmt_tokens(span.input_tokens, span.output_tokens)


def _row_cost(span: SpanSummary) -> str:
    if span.cost is None:
        return MISSING if span.kind == MODEL else ""
    return fmt_cost(span.cost)


def readable(text: str) -> str:
    """JSON content indented for reading (compact on the wire); anything else as it is."""
    if not text or text[0] not in "[{" or len(text) > 200_000:
        return text
    try:
        return json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    except ValueError:
        return text


def shorten(text: str, limit: int = MAX_SHOWN_CHARS) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many were cut."""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


# --------------------------------------------------------------------------- HTML

_E = html.escape
_BOX, _TABLE, _SECTION, _TH, _TD, _NUM = style.BOX, style.TABLE, style.SECTION, style.TH, style.TD, style.NUM
_PRE = style.PRE
# A model or prompt too long for its column is cut with an ellipsis; its title holds it whole.
_ONE_LINE = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
_COLUMNS = (("span", "32%"), ("timeline", "24%"), ("duration", "7%"), ("model", "11%"), ("tokens", "8%"))
_COLUMNS += (("cost", "8%"), ("status", "10%"))
_NUMBERS = ("duration", "tokens", "cost")


def _bar(span: SpanSummary, t0: int, total: int) -> str:
    left = (span.start_ns - t0) / total * 100
    width = (span.end_ns - span.start_ns) / total * 100
    left = min(max(left, 0.0), 100.0)
    width = min(max(width, 0.0), 100.0 - left)
    colour = ERROR_COLOUR if span.error else COLOURS[span.kind]
    return (
        f'<div class="slc-bar slc-kind-{span.kind}" title="{_E(fmt_duration(span.duration_ms))}" '
        f'style="{style.BAR};left:{left:.3f}%;width:{width:.3f}%;background:{colour}"></div>'
    )


def _content_html(span: SpanSummary) -> str:
    parts = []
    entries = [("error", span.error), *span.content] if span.error else span.content
    for label, value in entries:
        if not isinstance(value, str):
            continue
        shown, cut = shorten(readable(value))
        marker = f'<span class="slc-truncated" style="color:#9ca3af">… [truncated {cut} chars]</span>' if cut else ""
        parts.append(
            f'<div style="color:#6b7280;margin-top:4px">{_E(label)}</div>'
            f'<pre class="slc-content" data-label="{_E(label)}" style="{_PRE}">{_E(shown)}{marker}</pre>'
        )
    return "".join(parts)


def _swatch(colour: str, margin: str) -> str:
    return (
        f'<span style="display:inline-block;width:8px;height:8px;border-radius:2px;background:{colour};'
        f'margin:{margin}"></span>'
    )


_BADGE = (
    "display:inline-block;margin-left:6px;padding:0 5px;text-indent:0;border-radius:8px;background:#ede9fe;"
    "color:#5b21b6;font-size:11px;line-height:16px"
)


def _name_cell(span: SpanSummary, depth: int, expanded: bool, scores: Sequence[str] = ()) -> str:
    colour = ERROR_COLOUR if span.error else COLOURS[span.kind]
    dot = _swatch(colour, "0 6px 0 0")
    op = f' <span style="color:#9ca3af">{_E(span.op)}</span>' if span.op else ""
    badges = "".join(f'<span class="slc-score" style="{_BADGE}">{_E(score)}</span>' for score in scores)
    name = f'<span class="slc-name" title="{_E(span.name)}">{_E(span.name)}</span>'
    content = _content_html(span)
    # Indented by the depth (inline, and as --slc-depth for the style block); a long name wraps.
    cell = (
        f'<td style="{_TD};{style.NAME_CELL};padding-left:{8 + depth * INDENT_PX}px;--slc-depth:{depth}" '
        'class="slc-name-cell">'
    )
    toggle = f'<span class="slc-toggle" style="{style.TOGGLE}">{"▸" if content else ""}</span>'
    label = f"{toggle}{dot}{name}{op}{badges}"
    if not content:
        return f'{cell}<div class="slc-label" style="{style.LABEL}">{label}</div></td>'
    opened = " open" if expanded else ""
    summary = f'<summary class="slc-label" style="{style.LABEL};cursor:pointer">{label}</summary>'
    return f'{cell}<details class="slc-details"{opened}>{summary}{content}</details></td>'


def _row(depth: int, span: SpanSummary, t0: int, total: int, expanded: bool, scores: Sequence[str] = ()) -> str:
    status = (
        f'<span style="color:{ERROR_COLOUR};font-weight:600" title="{_E(span.error)}">{_E(span.error)}</span>'
        if span.error
        else '<span style="color:#059669">ok</span>'
    )
    background = f";{style.ERROR_ROW}" if span.error else ""
    number = f'<td style="{_TD};{_NUM}" class="slc-num">'
    cells = [
        _name_cell(span, depth, expanded, scores),
        f'<td style="{_TD};position:relative;{style.GRID}" class="slc-timeline">{_bar(span, t0, total)}</td>',
        f"{number}{_E(fmt_duration(span.duration_ms))}</td>",
        _model_cell(span),
        f"{number}{_E(_row_tokens(span))}</td>",
        f"{number}{_E(_row_cost(span))}</td>",
        f'<td style="{_TD};text-overflow:ellipsis">{status}</td>',
    ]
    kind = f"slc-row slc-kind-{span.kind}" + (" slc-error" if span.error else "")
    return f'<tr class="{kind}" data-span-id="{_E(span.span_id)}" style="{_SECTION}{background}">{"".join(cells)}</tr>'


def _model_cell(span: SpanSummary) -> str:
    model = _E(span.model or "")
    if not span.prompt:
        return f'<td style="{_TD}" title="{model}">{model}</td>'
    prompt = _E(span.prompt)
    return (
        f'<td style="{_TD}" title="{model} · prompt {prompt}">{model}'
        f'<div class="slc-prompt" style="color:#6b7280;{_ONE_LINE}">prompt {prompt}</div></td>'
    )


def _header(trace: TraceOverview, link: str | None) -> str:
    trace_id = _E(trace.trace_id)
    if link:
        trace_id = f'<a href="{_E(link)}" target="_blank" rel="noopener" style="color:#2563eb">{trace_id} ↗</a>'
    bits = [f"{trace.spans} span{'' if trace.spans == 1 else 's'}", _E(fmt_duration(trace.duration_ms))]
    if trace.model_calls:
        bits.append(f"{trace.model_calls} model call" + ("s" if trace.model_calls != 1 else ""))
        bits.append("tokens " + _E(fmt_tokens(trace.input_tokens, trace.output_tokens)))
    if trace.cost is not None:
        bits.append(_E(fmt_cost(trace.cost)))
    if trace.errors:
        bits.append(f'<span style="color:{ERROR_COLOUR};font-weight:600">{trace.errors} error(s)</span>')
    return (
        f'<div class="slc-trace-head" style="margin-bottom:6px"><b style="font-size:13px">{_E(trace.name)}</b>'
        f' <span style="color:#6b7280">trace {trace_id}</span>'
        f'<span style="color:#374151;margin-left:10px">{" · ".join(bits)}</span></div>'
    )


def _legend() -> str:
    items = [(k, COLOURS[k]) for k in (AGENT, MODEL, TOOL, CHAIN)] + [("error", ERROR_COLOUR)]
    swatches = "".join(f"{_swatch(colour, '0 4px 0 10px')}{kind}" for kind, colour in items)
    return f'<div style="color:#6b7280;margin-top:4px">{swatches}</div>'


def fmt_tick(ms: float) -> str:
    """A time axis label, short enough for four to fit: ``0``, ``0.25 ms``, ``4.3 ms``, ``145 ms``, ``1.25 s``."""
    if ms <= 0:
        return "0"
    if ms < 1000:
        return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _axis(total_ns: int) -> str:
    """The time axis: a label at 0, at each third (the grid's lines) and at the trace's end
    (thirds rather than quarters: four short labels fit a timeline column of 180 px). Only the
    end carries the unit when the others share it ("0  0.17  0.34  0.51 ms"), as axes do."""
    labels = [fmt_tick(total_ns / 1e6 * third / 3) for third in range(4)]
    unit = labels[-1].partition(" ")[2]
    labels[1:3] = [label.removesuffix(f" {unit}") for label in labels[1:3]]
    ticks = []
    for third, label in enumerate(labels):
        shift = {0: "0", 3: "-100%"}.get(third, "-50%")
        ticks.append(
            f'<span class="slc-tick" style="position:absolute;top:0;left:{third * 100 / 3:.3f}%;'
            f'transform:translateX({shift})">{_E(label)}</span>'
        )
    return f'<div class="slc-axis" style="position:relative;height:1.45em;font-weight:400">{"".join(ticks)}</div>'


def _thead(total_ns: int) -> str:
    cells = []
    for name, _ in _COLUMNS:
        label = _axis(total_ns) if name == "timeline" else name
        align, kind = (f";{_NUM}", ' class="slc-num"') if name in _NUMBERS else ("", "")
        cells.append(f'<th style="{_TH}{align}"{kind}>{label}</th>')
    # Column widths on <col> (no host styles those; the cells' own width stays auto).
    cols = "".join(f'<col style="width:{width}">' for _, width in _COLUMNS)
    return f'<colgroup>{cols}</colgroup><thead style="{_SECTION}"><tr style="{_SECTION}">{"".join(cells)}</tr></thead>'


def render_trace(spans: list[SpanSummary], *, link: str | None = None, expanded: bool = False) -> str:
    """One trace as a waterfall (an HTML fragment, its scoped ``<style>`` first); ``link`` points
    to the trace elsewhere (Sentry), ``expanded`` shows every row's input and output opened."""
    return style_block() + _waterfall(spans, link=link, expanded=expanded) if spans else ""


def _waterfall(spans: list[SpanSummary], *, link: str | None = None, expanded: bool = False) -> str:
    trace = overview(spans)
    t0 = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - t0, 1)
    head = _thead(total)
    scores: dict[str, list[str]] = {}
    for span in spans:  # a score shows on the row it scores, too
        if span.score is not None:
            scores.setdefault(span.parent_id, []).append(span.score)
    rows = "".join(
        _row(depth, span, t0, total, expanded, scores.get(span.span_id, ())) for depth, span in ordered(spans)
    )
    return (
        f'<div class="slc-waterfall" data-trace-id="{_E(trace.trace_id)}" style="{_BOX}">{_header(trace, link)}'
        f'<table style="{_TABLE}">{head}<tbody style="{_SECTION}">{rows}</tbody></table>{_legend()}</div>'
    )


def render_traces(spans: list[SpanSummary], *, link_for: Callable[[str], str | None] | None = None) -> str:
    """Every trace among ``spans``, each as a waterfall, in the order they started."""
    traces = sorted(group(spans).values(), key=lambda members: min(s.start_ns for s in members))
    if not traces:
        return ""
    return style_block() + "".join(
        _waterfall(members, link=link_for(members[0].trace_id) if link_for else None) for members in traces
    )


# --------------------------------------------------------------------------- the local page


def page(title: str, body: str, *, refresh: bool = False) -> str:
    """A whole HTML document around ``body``; ``refresh`` reloads it every 2 s."""
    meta = '<meta http-equiv="refresh" content="2">' if refresh else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">{meta}<title>{_E(title)}</title></head>'
        '<body style="margin:16px 20px;background:#f8fafc;'
        "font:13px/1.45 -apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
        f'color:#1f2937">{body}</body></html>'
    )


def render_trace_list(traces: list[TraceOverview]) -> str:
    """The traces received, newest first, each linking to ``/trace/<id>``."""
    if not traces:
        return '<p class="slc-empty" style="color:#6b7280">No traces yet. This page refreshes every 2 s.</p>'
    head = "".join(
        f'<th style="{_TH}' + (f";{_NUM}" if n not in ("trace", "errors") else "") + f'">{n}</th>'
        for n in ("trace", "duration", "spans", "tokens", "cost", "errors")
    )
    rows = []
    for t in sorted(traces, key=lambda t: t.start_ns, reverse=True):
        errors = f'<span style="color:{ERROR_COLOUR};font-weight:600">{t.errors}</span>' if t.errors else "0"
        td = _TD.replace("overflow:hidden", "")
        rows.append(
            f'<tr class="slc-trace-row"{" data-errors" if t.errors else ""}>'
            f'<td style="{td}"><a href="/trace/{_E(t.trace_id)}" style="color:#2563eb">{_E(t.name)}</a>'
            f' <span style="color:#9ca3af">{_E(t.trace_id[:8])}</span></td>'
            f'<td style="{td};{_NUM}">{_E(fmt_duration(t.duration_ms))}</td>'
            f'<td style="{td};{_NUM}">{t.spans}</td>'
            f'<td style="{td};{_NUM}">{_E(fmt_tokens(t.input_tokens, t.output_tokens))}</td>'
            f'<td style="{td};{_NUM}">{_E(fmt_cost(t.cost))}</td>'
            f'<td style="{td}">{errors}</td></tr>'
        )
    return (
        f'<div style="{_BOX}"><table class="slc-traces" style="border-collapse:collapse;width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
