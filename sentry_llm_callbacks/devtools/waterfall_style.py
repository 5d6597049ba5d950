"""The waterfall's styles, stated so that no host stylesheet changes its layout.

A notebook frontend styles every table in a cell's output: JupyterLab right-aligns and pads every
cell, stripes the rows and sets its own font size and line height; VS Code's notebook webview
right-aligns cells too, stripes even rows and removes every border with ``!important``; the
classic notebook makes every box ``border-box``. So each element of the waterfall states every
property a host may set (alignment, padding, border, background, white-space, overflow, font,
line height, vertical alignment, widths, table layout), from one set of declarations used twice:

- inline, in the element's ``style`` attribute, which wins over every host rule that is not
  ``!important``: the static fallback, for a frontend that strips ``<style>`` from outputs;
- in :func:`style_block`, the same declarations made ``!important`` under :data:`SCOPE`, a
  selector of an id's specificity that matches only inside a waterfall, which also wins over
  host rules that are ``!important``.

Example::

    from sentry_llm_callbacks.devtools.waterfall_style import TD, style_block

    html_text = style_block() + f'<div class="slc-waterfall"><table><tr><td style="{TD}">x</td></tr></table></div>'
"""

from __future__ import annotations

__all__ = [
    "BAR",
    "BOX",
    "ERROR_ROW",
    "GRID",
    "INDENT_PX",
    "LABEL",
    "LINK",
    "NAME_CELL",
    "NUM",
    "PRE",
    "SCOPE",
    "SECTION",
    "TABLE",
    "TD",
    "TH",
    "TOGGLE",
    "important",
    "style_block",
]

#: Pixels one level of the span tree is indented by.
INDENT_PX = 14
#: Matches the waterfall's container only; ``:not(#slc-none)`` (an id no element has) lifts every
#: rule to an id's specificity, over a host's ``#container td {... !important}``.
SCOPE = ".slc-waterfall:not(#slc-none)"

FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_TEXT = f"font:12px/1.45 {FONT};color:#1f2937;text-align:left;letter-spacing:normal;text-transform:none;text-indent:0"
BOX = (
    f"display:block;box-sizing:border-box;{_TEXT};white-space:normal;background:#fff;border:1px solid #e5e7eb;"
    "border-radius:6px;padding:8px 10px;margin:4px 0 10px;width:auto;max-width:100%;overflow-x:auto"
)
TABLE = (
    "display:table;box-sizing:border-box;border-collapse:collapse;border-spacing:0;border:0;margin:0;"
    "width:100%;min-width:760px;max-width:none;table-layout:fixed;font:inherit;color:inherit;background:transparent"
)
#: ``thead``, ``tbody`` and ``tr``: nothing of their own, whatever the host gives them (stripes).
SECTION = "border:0;background:transparent;font:inherit;color:inherit;text-align:left;vertical-align:top"
_CELL = (
    "box-sizing:border-box;font:inherit;line-height:1.45;color:inherit;background:transparent;text-align:left;"
    "vertical-align:top;width:auto;max-width:none;height:auto;margin:0;border:0"
)
TH = (
    f"{_CELL};font-weight:600;color:#6b7280;padding:4px 8px;border-bottom:1px solid #e5e7eb;vertical-align:bottom;"
    "white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
)
TD = f"{_CELL};padding:4px 8px;border-bottom:1px solid #f3f4f6;white-space:nowrap;overflow:hidden"
NUM = "text-align:right;font-variant-numeric:tabular-nums"
#: The name cell: indented by its depth (``--slc-depth``), and a long name wraps rather than being cut.
NAME_CELL = "white-space:normal;overflow:hidden"
#: The triangle before a name: the same width whether the row opens or not, so names line up.
TOGGLE = (
    "display:inline-block;box-sizing:border-box;width:13px;margin:0;padding:0;text-indent:0;color:#6b7280;"
    "font-size:9px;line-height:1"
)
#: The line of a row's name (a ``div``, or the ``summary`` that opens its content): a name too
#: long for its column wraps, its next lines under its first character (the triangle, 13px, and
#: the kind's dot, 14px, hang to the left).
LABEL = (
    "display:block;margin:0;padding:0 0 0 27px;text-indent:-27px;list-style:none;white-space:normal;"
    "overflow-wrap:anywhere;word-break:normal"
)
#: Lines at each third behind the bars: the time axis' ticks (see ``waterfall._axis``).
GRID = (
    "background:linear-gradient(90deg,transparent calc(33.333% - 1px),#eef0f3 33.333%,"
    "transparent calc(33.333% + 1px),transparent calc(66.667% - 1px),#eef0f3 66.667%,"
    "transparent calc(66.667% + 1px))"
)
#: A bar's fixed part; its place, width and colour are the span's own (inline).
BAR = "position:absolute;top:5px;height:10px;min-width:2px;border-radius:2px;margin:0;padding:0;border:0"
PRE = (
    "display:block;box-sizing:border-box;margin:2px 0 6px;padding:6px 8px;background:#f9fafb;"
    "border:1px solid #e5e7eb;border-radius:4px;white-space:pre-wrap;word-break:break-word;max-height:240px;"
    "overflow:auto;font:11px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#111827;text-align:left"
)
LINK = "color:#2563eb;text-decoration:none;background:transparent"
ERROR_ROW = "background:#fef2f2"


def important(declarations: str) -> str:
    """``a:1;b:2`` as ``a:1 !important;b:2 !important``."""
    return ";".join(f"{d} !important" for d in declarations.split(";") if d)


#: (what the rule reaches inside the waterfall, its declarations); none: the container itself.
_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    ((), BOX),
    (("table",), TABLE),
    (("thead", "tbody", "tr"), SECTION),
    (("tr.slc-error",), ERROR_ROW),
    (("th",), TH),
    (("td",), TD),
    (("th.slc-num", "td.slc-num"), NUM),
    (("td.slc-name-cell",), f"{NAME_CELL};padding-left:calc(8px + var(--slc-depth, 0) * {INDENT_PX}px)"),
    (("td.slc-timeline",), f"position:relative;{GRID}"),
    ((".slc-label",), LABEL),
    (("summary.slc-label",), "cursor:pointer"),
    (("summary.slc-label::-webkit-details-marker",), "display:none"),
    ((".slc-toggle",), TOGGLE),
    (("details[open] > summary .slc-toggle",), "transform:rotate(90deg)"),
    ((".slc-bar",), BAR),
    (("pre.slc-content",), PRE),
    (("a",), LINK),
)


_STYLE_BLOCK = (
    '<style class="slc-style">'
    + "".join(
        f"{','.join(f'{SCOPE} {part}' for part in parts) or SCOPE}{{{important(body)}}}" for parts, body in _RULES
    )
    + "</style>"
)


def style_block() -> str:
    """The ``<style>`` element that holds the waterfall's layout in any host (see the module's
    docstring); put it once before one or more waterfalls."""
    return _STYLE_BLOCK
