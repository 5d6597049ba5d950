"""The local trace page that ``serve`` (and the no-DSN ``demo``) serves: the list of traces at
``/`` and one trace at ``/trace/<id>``.

The trace is the notebook's waterfall (:func:`~sentry_llm_callbacks.devtools.waterfall.render_trace`),
with what a browser page can add: a fold control on every row with children, a one-line
preview of each row's input and output, and a details panel beside the waterfall for the
selected row (every attribute grouped and copyable, messages as a conversation with a raw JSON
toggle, the error with its stack trace when it was sent, the trace id and its link to Sentry).
The list has user, session and start time columns and a filter box.

Works without network access: the script and the styles are inline (from ``static/``), a
Content-Security-Policy admits that script alone, and span data reaches the script as JSON in
a ``<script type="application/json">`` element with ``<``, ``>`` and ``&`` escaped, so no value
can close it; the script builds the panel with DOM text nodes only.

Example::

    from sentry_llm_callbacks.devtools import trace_page
    from sentry_llm_callbacks.devtools.trees import group_traces

    status, html_text = trace_page.trace_view(trace_id, group_traces(receiver.spans).get(trace_id))
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools import details, waterfall
from sentry_llm_callbacks.devtools.trees import walk

__all__ = ["document", "not_found", "span_data", "trace_list", "trace_view"]

_E = html.escape
_STATIC = resources.files(__package__ or "") / "static"
_SCRIPT = (_STATIC / "trace_page.js").read_text(encoding="utf-8")
_STYLE = (_STATIC / "trace_page.css").read_text(encoding="utf-8")
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
# The page's own script and nothing else runs; the list polls its own address.
_POLICY = (
    f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)
_LABELS = dict(waterfall.CONTENT_KEYS) | {attr.TOOL_DEFINITIONS: "tool definitions"}
#: The content a row's one-line preview is labelled by, most telling first.
_PREVIEW_LABEL_ORDER = (attr.INPUT_MESSAGES, attr.OUTPUT_MESSAGES, attr.INPUT_VALUE, attr.OUTPUT_VALUE)


_RELOAD = '<meta http-equiv="refresh" content="2">'


def document(title: str, body: str, *, reload: str = "never", script: bool = True) -> str:
    """A whole page around ``body`` with the page's styles (and script). ``reload``: ``never``;
    ``always`` (every 2 s); ``without_script`` (every 2 s where scripts do not run: the list's
    script reloads its table by itself, keeping the filter).

    Example::

        document("Not found", '<p>Not found. <a href="/">All traces</a></p>', script=False)
    """
    meta = {"never": "", "always": _RELOAD, "without_script": f"<noscript>{_RELOAD}</noscript>"}[reload]
    code = f"<script>{_SCRIPT}</script>" if script else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_E(_POLICY)}">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">{meta}<title>{_E(title)}</title>'
        f'<style>{_STYLE}</style></head><body class="slc-page">{body}{code}</body></html>'
    )


def not_found() -> tuple[int, str]:
    """The 404 page of an address the page does not serve."""
    return 404, document("Not found", '<p>Not found. <a href="/">All traces</a></p>', script=False)


# --------------------------------------------------------------------------- one trace


def _data_island(value: Any) -> str:
    """JSON inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` escaped so that
    no string can end the element or open a comment."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'<script type="application/json" id="slc-data">{text}</script>'


def _messages(messages: list[details.Message] | None) -> list[dict[str, Any]] | None:
    if messages is None:
        return None
    return [
        {
            "role": m.role,
            "finish": m.finish_reason,
            "parts": [{"kind": p.kind, "text": p.text, "name": p.name, "id": p.call_id} for p in m.parts],
        }
        for m in messages
    ]


def _side(content: details.Content) -> dict[str, Any] | None:
    if not content.raw:
        return None
    raw = [[_LABELS.get(key, key), key, text] for key, text in content.raw]
    return {"messages": _messages(content.messages), "raw": raw}


def _identifiers(span: details.SpanRecord) -> list[tuple[str, str]]:
    rows = [("trace id", span.trace_id), ("span id", span.span_id)]
    rows.append(("parent span id", span.parent_span_id or "— (a root)"))
    for link in getattr(span, "links", None) or ():
        rows.append(("link", f"{link.trace_id}-{link.span_id}" + (" (sampled)" if link.sampled else "")))
    return rows


def span_data(
    span: details.SpanRecord,
    summary: waterfall.SpanSummary,
    depth: int,
    t0: int,
    content: tuple[details.Content, details.Content] | None = None,
) -> dict[str, Any]:
    """What the details panel shows of one span (the page holds it as JSON): its place, name,
    kind and timing (ms from ``t0``, the trace's start), its error, its input and output
    (a conversation, and the raw content; ``content`` when already read), its attribute groups
    and its other events.

    Example::

        data = span_data(span, waterfall.from_received_span(span), depth=0, t0=span.start_ns)
        data["groups"][0]   # ['Model and parameters', [['gen_ai.request.model', 'gpt-4o-mini'], ...]]
    """
    inputs, outputs = content or details.io_content(span.attributes)
    error = details.error_details(span)
    groups = details.group_attributes(span.attributes, identifiers=_identifiers(span))
    if span.resource:
        rows = tuple((k, details.show_value(v)) for k, v in sorted(span.resource.items()))
        groups.append(details.AttributeGroup("Resource", rows))
    events = [
        [name, [[k, details.show_value(v)] for k, v in sorted(attrs.items())]]
        for name, attrs in span.events
        if name != "exception"
    ]
    return {
        "id": span.span_id,
        "depth": depth,
        "name": span.name,
        "op": summary.op,
        "kind": summary.kind,
        "start": (span.start_ns - t0) / 1e6,
        "duration": summary.duration_ms,
        "error": None if error is None else {"type": error.type, "message": error.message, "stack": error.stacktrace},
        "input": _side(inputs),
        "output": _side(outputs),
        "groups": [[g.title, [list(row) for row in g.rows]] for g in groups],
        "events": events,
    }


def _previews(inputs: details.Content, outputs: details.Content) -> list[tuple[str, waterfall.Content]]:
    """A row's input and output, one line each (the panel shows them whole)."""
    out: list[tuple[str, waterfall.Content]] = []
    for content in (inputs, outputs):
        if not content.raw:
            continue
        keys = [key for key, _ in content.raw]
        key = next((k for k in _PREVIEW_LABEL_ORDER if k in keys), keys[0])
        line = details.preview(content.messages) if content.messages else " ".join(dict(content.raw)[key].split())
        out.append((_LABELS.get(key, key), line[:160]))
    return out


def _row_summary(span: details.SpanRecord, content: tuple[details.Content, details.Content]) -> waterfall.SpanSummary:
    summary = waterfall.from_received_span(span)
    summary.content = _previews(*content)
    return summary


def _nav(trace_id: str, expanded: bool) -> str:
    here = f"/trace/{_E(trace_id)}"
    toggle = f'<a href="{here}">collapse all</a>' if expanded else f'<a href="{here}?open=all">expand all</a>'
    folds = (
        '<button type="button" class="slc-link" id="slc-fold-all">fold all</button> · '
        '<button type="button" class="slc-link" id="slc-unfold-all">unfold all</button>'
    )
    return f'<p class="slc-nav"><a href="/">← all traces</a> · {toggle} · {folds}</p>'


def trace_view(
    trace_id: str, spans: Sequence[details.SpanRecord] | None, *, expanded: bool = False, link: str | None = None
) -> tuple[int, str]:
    """The page of one trace: its status and HTML. 404 while none of its spans has arrived;
    until its root arrives the page reloads itself every 2 s. ``expanded`` opens every row's
    input and output preview; ``link`` is the trace elsewhere (Sentry).

    Example::

        status, text = trace_view(trace_id, group_traces(receiver.spans).get(trace_id), expanded=False)
    """
    nav = _nav(trace_id, expanded)
    if not spans:
        text = f"No span of trace {_E(trace_id)} has arrived yet; this page reloads every 2 s."
        return 404, document("Trace not found", f"{nav}<p>{text}</p>", reload="always", script=False)
    rows = walk(spans)
    contents = [details.io_content(span.attributes) for _, span in rows]
    summaries = [_row_summary(span, content) for (_, span), content in zip(rows, contents, strict=True)]
    t0 = min(s.start_ns for s in summaries)
    places = zip(rows, summaries, contents, strict=True)
    data = {
        "trace": {"id": trace_id, "link": link},
        "spans": [span_data(span, summary, depth, t0, content) for (depth, span), summary, content in places],
    }
    overview = waterfall.overview(summaries)
    body = (
        f'{nav}<div class="slc-layout"><div class="slc-main">'
        f"{waterfall.render_trace(summaries, link=link, expanded=expanded)}</div>"
        '<aside class="slc-panel" id="slc-panel" hidden aria-label="span details"></aside></div>'
        f"{_data_island(data)}"
    )
    # Reload until the root arrives (it ends last), then hold still so what is opened stays open.
    return 200, document(f"{overview.name} · trace {trace_id}", body, reload="never" if overview.complete else "always")


# --------------------------------------------------------------------------- the list


def _first(spans: Iterable[details.SpanRecord], *keys: str) -> str:
    for span in spans:
        for key in keys:
            value = span.attributes.get(key)
            if value not in (None, ""):
                return details.show_value(value, 200)
    return ""


def _list_row(members: Sequence[details.SpanRecord]) -> tuple[int, str]:
    summaries = [waterfall.from_received_span(s) for s in members]
    t = waterfall.overview(summaries)
    ordered = [span for _, span in walk(members)]
    user = _first(ordered, attr.USER_ID)
    session = _first(ordered, attr.SESSION_ID, attr.CONVERSATION_ID)
    failures = sorted({s.error for s in summaries if s.error})
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.start_ns / 1e9))
    search = " ".join([t.name, t.trace_id, user, session, *failures, "error" if failures else ""]).lower()
    errors = f'<span class="slc-count-error" title="{_E("; ".join(failures))}">{t.errors}</span>' if t.errors else "0"
    cells = [
        f'<a href="/trace/{_E(t.trace_id)}">{_E(t.name)}</a> <span class="slc-dim">{_E(t.trace_id[:8])}</span>',
        f'<span title="{_E(started)}">{_E(started)}</span>',
        _E(waterfall.fmt_duration(t.duration_ms)),
        str(t.spans),
        f'<span class="slc-cut" title="{_E(user)}">{_E(user)}</span>',
        f'<span class="slc-cut" title="{_E(session)}">{_E(session)}</span>',
        _E(waterfall.fmt_tokens(t.input_tokens, t.output_tokens)),
        _E(waterfall.fmt_cost(t.cost)),
        errors,
    ]
    tds = "".join(f'<td class="slc-col-{name}">{cell}</td>' for name, cell in zip(_LIST_COLUMNS, cells, strict=True))
    row = f'<tr class="slc-trace-row"{" data-errors" if t.errors else ""} data-search="{_E(search)}">{tds}</tr>'
    return t.start_ns, row


_LIST_COLUMNS = ("trace", "started", "duration", "spans", "user", "session", "tokens", "cost", "errors")


def trace_list(traces: Mapping[str, Sequence[details.SpanRecord]], *, endpoint: str, dsn: str) -> str:
    """The page at ``/``: every trace received, newest first, with its start, user, session,
    totals and errors, and a filter box that narrows the list as you type (name, user,
    session, error text, trace id; every word must match). The table reloads every 2 s
    without losing the filter.

    Example::

        text = trace_list(group_traces(receiver.spans), endpoint=receiver.plain_endpoint, dsn=receiver.dsn)
    """
    intro = (
        '<h1 class="slc-title">Traces received</h1>'
        f'<p class="slc-dim slc-intro">OTLP endpoint {_E(endpoint)} · DSN {_E(dsn)} · the list updates every 2 s</p>'
        '<p class="slc-filter-line"><input id="slc-filter" type="search" autocomplete="off" spellcheck="false" '
        'placeholder="Filter by name, user, session or error" aria-label="filter traces"> '
        '<span id="slc-filter-count" class="slc-dim"></span></p>'
    )
    if traces:
        rows = [row for _, row in sorted((_list_row(m) for m in traces.values()), reverse=True)]
        head = "".join(f'<th class="slc-col-{name}">{name}</th>' for name in _LIST_COLUMNS)
        listing = (
            f'<table class="slc-traces"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="slc-empty slc-dim" id="slc-no-match" hidden>No trace matches the filter.</p>'
        )
    else:
        listing = '<p class="slc-empty slc-dim">No traces yet. This page updates every 2 s.</p>'
    body = f'{intro}<div class="slc-box" id="slc-traces">{listing}</div>'
    return document("sentry-llm-callbacks: traces", body, reload="without_script")
