"""Jupyter / IPython: ``%load_ext sentry_llm_callbacks``.

Loading the extension turns on global tracing for LangChain and LlamaIndex. After each cell it
flushes (for at most 2 s) so the cell's spans are delivered when it returns, and shows a
summary of the traces the cell produced: a waterfall (one row per span, bars on the trace's
time axis, model, tokens, cost and status, the captured input and output a click away; see
:mod:`sentry_llm_callbacks.devtools.waterfall`), and a link to the trace in Sentry when the DSN names the
organisation.

Options, through the line magic::

    %sentry_llm --user user_12345 --session s1 --privacy on
    %sentry_llm --summary off
"""

from __future__ import annotations

import contextlib
import html
import shlex
import threading
from dataclasses import dataclass, field
from typing import Any

from sentry_llm_callbacks import _state
from sentry_llm_callbacks.core import adapter
from sentry_llm_callbacks.devtools.details import sentry_trace_url
from sentry_llm_callbacks.devtools.trees import walk
from sentry_llm_callbacks.devtools.waterfall import (
    MODEL,
    SpanSummary,
    fmt_cost,
    fmt_duration,
    fmt_tokens,
    from_readable_span,
    render_traces,
    resolve_content,
)
from sentry_llm_callbacks.export.taps import TAPS
from sentry_llm_callbacks.sentry_sdk import interop as sentry_sdk_interop

FLUSH_SECONDS = 2.0
MAX_SPANS_PER_CELL = 500
NOT_DELIVERED = "Not all spans were delivered within 2 s; they stay queued."


def summarise(span: Any) -> SpanSummary:
    """What the summary keeps of a finished span; its content stays unrendered until shown."""
    return from_readable_span(span)


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
    return sentry_trace_url(destination.dsn.host, trace_id)


def render_html(spans: list[SpanSummary], dropped: int = 0, delivered: bool = True, warning: str | None = None) -> str:
    """The summary shown under a cell: each trace the cell produced as a waterfall."""
    parts = ['<div class="sentry-llm-summary">']
    if warning:
        parts.append(f'<div class="sentry-llm-warning" style="color:#c60">{html.escape(warning)}</div>')
    parts.append(render_traces(spans, link_for=trace_url))
    if dropped:
        parts.append(f"<div>{dropped} more spans not shown.</div>")
    if not delivered:
        parts.append(f'<div style="color:#c60">{NOT_DELIVERED}</div>')
    parts.append("</div>")
    return "".join(parts)


def render_text(spans: list[SpanSummary]) -> str:
    """The summary as plain text (a terminal IPython, or ``repr``): one line per span, indented."""
    lines = []
    for depth, s in walk(spans):
        usage = ""
        if s.input_tokens is not None or s.output_tokens is not None or s.kind == MODEL:
            usage = "tokens " + fmt_tokens(s.input_tokens, s.output_tokens)
        extra = " ".join(
            x
            for x in (
                s.model or "",
                f"prompt {s.prompt}" if s.prompt else "",
                usage,
                fmt_cost(s.cost) if s.cost is not None else "",
                s.error or "",
            )
            if x
        )
        lines.append(f"{'  ' * depth}{s.name} [{s.op}] {fmt_duration(s.duration_ms)} {extra}".rstrip())
    return "\n".join(lines)


class _Summary:
    """What ``display`` shows: HTML in a notebook, text in a terminal."""

    def __init__(self, spans: list[SpanSummary], dropped: int, delivered: bool, warning: str | None = None) -> None:
        self._spans, self.dropped, self.delivered, self.warning = spans, dropped, delivered, warning
        self._resolved = False

    @property
    def spans(self) -> list[SpanSummary]:
        # Content is rendered when first shown (never, with the summary off), then kept as text.
        if not self._resolved:
            resolve_content(self._spans)
            self._resolved = True
        return self._spans

    def _repr_html_(self) -> str:
        return render_html(self.spans, self.dropped, self.delivered, self.warning)

    def __repr__(self) -> str:
        lines = [self.warning] if self.warning else []
        lines.append(render_text(self.spans))
        if self.dropped:
            lines.append(f"{self.dropped} more spans not shown.")
        if not self.delivered:
            lines.append(NOT_DELIVERED)
        return "\n".join(lines)


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
        adapter.set_global_handler(**self.handler_kwargs)
        TAPS.add(self.collector)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def stop(self) -> None:
        adapter.unset_global_handler()
        TAPS.remove(self.collector)
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
        """``%sentry_llm --user U --session S --privacy on|off --summary on|off``; returns what it did.

        Raises IPython's ``UsageError`` (shown as one line, no traceback) for an unknown option,
        a missing value, or an on/off option given anything else.
        """
        from IPython.core.error import UsageError

        try:
            args = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%sentry_llm: {exc}. {MAGIC_USAGE}") from None
        if len(args) % 2:
            raise UsageError(f"%sentry_llm: option {args[-1]!r} needs a value. {MAGIC_USAGE}")
        kwargs = dict(self.handler_kwargs)
        show_summary = self.show_summary
        for key, value in zip(args[::2], args[1::2], strict=True):
            if key == "--summary":
                show_summary = _switch(key, value)
            elif key == "--privacy":
                kwargs["privacy_mode"] = _switch(key, value)
            elif key in _TEXT_OPTIONS:
                kwargs[_TEXT_OPTIONS[key]] = value
            else:
                raise UsageError(f"%sentry_llm: unknown option {key!r}. {MAGIC_USAGE}")
        adapter.set_global_handler(**kwargs)
        self.handler_kwargs, self.show_summary = kwargs, show_summary
        return f"sentry_llm_callbacks: tracing with {self.handler_kwargs or 'no extra metadata'}"


MAGIC_USAGE = "Usage: %sentry_llm [--user U] [--session S] [--privacy on|off] [--summary on|off]"
_TEXT_OPTIONS = {"--user": "user", "--session": "session_id"}
_ON, _OFF = ("on", "true", "1", "yes"), ("off", "false", "0", "no")


def _switch(option: str, value: str) -> bool:
    from IPython.core.error import UsageError

    if value.lower() in _ON:
        return True
    if value.lower() in _OFF:
        return False
    raise UsageError(f"%sentry_llm: {option} takes on or off, not {value!r}. {MAGIC_USAGE}")


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
