"""Jupyter / IPython: ``%load_ext sentry_llm_callbacks``.

Loading the extension turns on global tracing for LangChain and LlamaIndex. After each cell it
flushes (for at most 2 s) so the cell's spans are delivered when it returns, and shows a
compact summary of the traces the cell produced: a span tree with durations, tokens, cost and
errors, and a link to the trace in Sentry when the DSN names the organisation.

Options, through the line magic::

    %sentry_llm --user user_12345 --session s1 --privacy on
    %sentry_llm --summary off
"""

from __future__ import annotations

import contextlib
import html
import re
import shlex
import threading
from dataclasses import dataclass, field
from typing import Any

from . import _state, sentry_sdk_interop
from .export import SPAN_TAPS

FLUSH_SECONDS = 2.0
MAX_SPANS_PER_CELL = 500


@dataclass
class SpanSummary:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    op: str
    duration_ms: float
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    error: str | None
    start_ns: int


def summarise(span: Any) -> SpanSummary:
    a = span.attributes or {}
    ctx = span.get_span_context()
    parent = span.parent
    status = span.status
    return SpanSummary(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_id=format(parent.span_id, "016x") if parent is not None else "",
        name=span.name,
        op=str(a.get("sentry.op", "")),
        duration_ms=((span.end_time or 0) - (span.start_time or 0)) / 1e6,
        input_tokens=a.get("gen_ai.usage.input_tokens"),
        output_tokens=a.get("gen_ai.usage.output_tokens"),
        cost=a.get("gen_ai.cost.total_tokens"),
        error=(status.description or "error") if status is not None and status.status_code.name == "ERROR" else None,
        start_ns=span.start_time or 0,
    )


@dataclass(eq=False)
class CellCollector:
    """Collects the spans that finish while a cell runs (bounded)."""

    spans: list[SpanSummary] = field(default_factory=list)
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, span: Any) -> None:
        with self.lock:
            if len(self.spans) < MAX_SPANS_PER_CELL:
                self.spans.append(summarise(span))
            else:
                self.dropped += 1

    def take(self) -> tuple[list[SpanSummary], int]:
        with self.lock:
            spans, dropped = self.spans, self.dropped
            self.spans, self.dropped = [], 0
        return spans, dropped


def trace_url(trace_id: str) -> str | None:
    """A link to the trace in Sentry, when the DSN's host names the organisation (``o123.…``)."""
    destination = _state.current_destination()
    if destination is None or destination.dsn is None:
        return None
    match = re.match(r"o(\d+)\.ingest\.(?:(\w+)\.)?sentry\.io$", destination.dsn.host)
    if not match:
        return None
    return f"https://sentry.io/organizations/{match.group(1)}/explore/traces/trace/{trace_id}/"


def _fmt_tokens(s: SpanSummary) -> str:
    if s.input_tokens is None and s.output_tokens is None:
        return ""
    shown = ["?" if n is None else str(n) for n in (s.input_tokens, s.output_tokens)]
    return f"{shown[0]} → {shown[1]}"


def _ordered(spans: list[SpanSummary]) -> list[tuple[int, SpanSummary]]:
    ids = {s.span_id for s in spans}
    children: dict[str, list[SpanSummary]] = {}
    roots = []
    for s in sorted(spans, key=lambda x: x.start_ns):
        if s.parent_id in ids:
            children.setdefault(s.parent_id, []).append(s)
        else:
            roots.append(s)
    out: list[tuple[int, SpanSummary]] = []

    def walk(s: SpanSummary, depth: int) -> None:
        out.append((depth, s))
        for c in children.get(s.span_id, []):
            walk(c, depth + 1)

    for r in roots:
        walk(r, 0)
    return out


def render_html(spans: list[SpanSummary], dropped: int = 0, delivered: bool = True, warning: str | None = None) -> str:
    """The summary shown under a cell: one small table per trace, spans indented by depth."""
    traces: dict[str, list[SpanSummary]] = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    parts = ['<div class="sentry-llm-summary" style="font:12px/1.4 monospace">']
    if warning:
        parts.append(f"<div class='sentry-llm-warning' style='color:#c60'>{html.escape(warning)}</div>")
    for trace_id, members in traces.items():
        total_in = sum(s.input_tokens or 0 for s in members if s.op.startswith("gen_ai.") and s.input_tokens)
        total_out = sum(s.output_tokens or 0 for s in members if s.output_tokens)
        cost = sum(s.cost for s in members if s.cost)
        errors = sum(1 for s in members if s.error)
        url = trace_url(trace_id)
        title = html.escape(trace_id)
        if url:
            title = f'<a href="{html.escape(url)}" target="_blank">{title}</a>'
        parts.append(
            f"<div><b>trace</b> {title} · {len(members)} spans · tokens {total_in} → {total_out}"
            + (f" · ${cost:.6f}" if cost else "")
            + (f" · <span style='color:#c00'>{errors} error(s)</span>" if errors else "")
            + "</div>"
        )
        parts.append('<table style="border-collapse:collapse;margin:2px 0 8px 0">')
        parts.append(
            "<tr><th align=left>span</th><th align=left>op</th><th align=right>ms</th>"
            "<th align=right>tokens</th><th align=right>cost</th><th align=left>status</th></tr>"
        )
        for depth, s in _ordered(members):
            status = f"<span style='color:#c00'>{html.escape(s.error)}</span>" if s.error else "ok"
            parts.append(
                f"<tr><td style='padding-left:{depth * 14}px'>{html.escape(s.name)}</td>"
                f"<td>{html.escape(s.op)}</td><td align=right>{s.duration_ms:.1f}</td>"
                f"<td align=right>{_fmt_tokens(s)}</td><td align=right>{f'${s.cost:.6f}' if s.cost else ''}</td>"
                f"<td>{status}</td></tr>"
            )
        parts.append("</table>")
    if dropped:
        parts.append(f"<div>{dropped} more spans not shown.</div>")
    if not delivered:
        parts.append("<div style='color:#c60'>Not all spans were delivered within 2 s; they stay queued.</div>")
    parts.append("</div>")
    return "".join(parts)


def render_text(spans: list[SpanSummary]) -> str:
    lines = []
    for depth, s in _ordered(spans):
        extra = " ".join(x for x in (_fmt_tokens(s), f"${s.cost:.6f}" if s.cost else "", s.error or "") if x)
        lines.append(f"{'  ' * depth}{s.name} [{s.op}] {s.duration_ms:.1f} ms {extra}".rstrip())
    return "\n".join(lines)


class _Summary:
    """What ``display`` shows: HTML in a notebook, text in a terminal."""

    def __init__(self, spans: list[SpanSummary], dropped: int, delivered: bool, warning: str | None = None) -> None:
        self.spans, self.dropped, self.delivered, self.warning = spans, dropped, delivered, warning

    def _repr_html_(self) -> str:
        return render_html(self.spans, self.dropped, self.delivered, self.warning)

    def __repr__(self) -> str:
        text = render_text(self.spans)
        return f"{self.warning}\n{text}" if self.warning else text


class NotebookTracing:
    """The extension's state inside one IPython shell."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.collector = CellCollector()
        self.show_summary = True
        self.handler_kwargs: dict[str, Any] = {}
        self.last_summary: _Summary | None = None
        self._warned: str | None = None

    def start(self) -> None:
        from . import set_global_handler

        set_global_handler(**self.handler_kwargs)
        if self.collector not in SPAN_TAPS:
            SPAN_TAPS.append(self.collector)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def stop(self) -> None:
        from . import unset_global_handler

        unset_global_handler()
        if self.collector in SPAN_TAPS:
            SPAN_TAPS.remove(self.collector)
        with contextlib.suppress(ValueError):  # not registered
            self.shell.events.unregister("post_run_cell", self.post_run_cell)

    def post_run_cell(self, result: Any = None) -> None:
        delivered = _state.flush(FLUSH_SECONDS)
        spans, dropped = self.collector.take()
        if not spans:
            return
        warning = sentry_sdk_interop.duplicate_warning
        if warning == self._warned:
            warning = None  # said once per notebook
        else:
            self._warned = warning
        self.last_summary = _Summary(spans, dropped, delivered, warning)
        if self.show_summary:
            from IPython.display import display

            display(self.last_summary)

    def magic(self, line: str) -> str:
        """``%sentry_llm --user U --session S --privacy on|off --summary on|off``; returns what it did."""
        args = shlex.split(line)
        options = {"--user": "user", "--session": "session_id", "--privacy": "privacy_mode"}
        i = 0
        while i < len(args):
            key = args[i]
            value = args[i + 1] if i + 1 < len(args) else None
            if key == "--summary" and value is not None:
                self.show_summary = value.lower() in ("on", "true", "1", "yes")
            elif key in options and value is not None:
                name = options[key]
                self.handler_kwargs[name] = (
                    value.lower() in ("on", "true", "1", "yes") if name == "privacy_mode" else value
                )
            else:
                return "usage: %sentry_llm [--user U] [--session S] [--privacy on|off] [--summary on|off]"
            i += 2
        from . import set_global_handler

        set_global_handler(**self.handler_kwargs)
        return f"sentry_llm_callbacks: tracing with {self.handler_kwargs or 'no extra metadata'}"


_active: NotebookTracing | None = None


def load_ipython_extension(shell: Any) -> None:
    global _active
    if _active is not None:
        return
    _active = NotebookTracing(shell)
    _active.start()
    shell.register_magic_function(_active.magic, magic_kind="line", magic_name="sentry_llm")


def unload_ipython_extension(shell: Any) -> None:
    global _active
    if _active is None:
        return
    _active.stop()
    _active = None
