"""The notebook summary where it is read: a notebook executed by ``nbconvert --execute`` with the
``%load_ext sentry_llm_callbacks`` extension, exported with nbconvert's ``lab`` template (which
ships JupyterLab's stylesheet) and its ``classic`` one, and the same output inside VS Code's
notebook output stylesheet (``fixtures/vscode_notebook_output.css``), each drawn by headless
Chromium. The assertions read what the browser laid out (``fixtures/summary_geometry.js``), not
the HTML: a child's name starts right of its parent's, names are left-aligned in their cells, the
status sits under its header, no name is cut, and no host stripes the rows.

Screenshots: ``artifacts/notebook-summary-<host>.png``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sentry_llm_callbacks.devtools.waterfall import INDENT_PX
from tests.support.chromium import measure, needs_chromium, screenshot
from tests.support.environment import ENV_VARS, REPO_ROOT

nbformat = pytest.importorskip("nbformat", reason="writing a notebook needs nbformat (the dev extra)")
pytest.importorskip("nbconvert", reason="executing and exporting a notebook needs nbconvert (the dev extra)")
pytest.importorskip("ipykernel", reason="executing a notebook needs ipykernel (the dev extra)")
pytestmark = needs_chromium

FIXTURES = Path(__file__).parent / "fixtures"
EMBEDDING = "gen_ai.embeddings text-embedding-3-small"
LONG_NAME = "read runbook payments/checkout-service/card-token-validation/null-pointer-on-charge.md#first-response"

SETUP = """\
import sentry_llm_callbacks as slc
from sentry_llm_callbacks.receiver import LocalReceiver

receiver = LocalReceiver().start()
slc.configure(dsn=receiver.dsn)
%load_ext sentry_llm_callbacks"""

CHAIN = f"""\
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

embed = RunnableLambda(lambda text: [0.12, 0.5, 0.33]).with_config(run_name={EMBEDDING!r})
read = RunnableLambda(lambda path: "Validate the card token.").with_config(run_name={LONG_NAME!r})
search = RunnableLambda(lambda vector: read.invoke("runbook")).with_config(run_name="search runbooks")

def find_runbook(question):
    return search.invoke(embed.invoke(question))

reply = AIMessage(content="Check the card token.", response_metadata={{"model_name": "gpt-4o-mini"}},
                  usage_metadata={{"input_tokens": 412, "output_tokens": 38, "total_tokens": 450}})
chain = (RunnableLambda(find_runbook).with_config(run_name="find runbook")
         | RunnableLambda(lambda doc: f"Answer with: {{doc}}").with_config(run_name="build prompt")
         | GenericFakeChatModel(messages=iter([reply]))).with_config(run_name="Support answer")
chain.invoke("Why did checkout fail?")

def charge(order):
    raise ValueError("card token <missing>")

try:
    RunnableLambda(charge).with_config(run_name="Charge card").invoke(7)
except ValueError:
    pass"""

# The tree as the receiver got it, for the test to hold the drawing against.
TREE = """\
import json
print(json.dumps({s.span_id: s.parent_span_id for s in receiver.spans}))"""


def nbconvert(*args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "nbconvert", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notebook, executed as a user would: ``jupyter nbconvert --to notebook --execute``."""
    folder = tmp_path_factory.mktemp("notebook")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (SETUP, CHAIN, TREE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "summary.ipynb")
    nbconvert("--to", "notebook", "--execute", "--output", "executed.ipynb", "summary.ipynb", cwd=folder)
    return folder / "executed.ipynb"


def tree_of(executed: Path) -> dict[str, str]:
    """span id -> parent span id, as the receiver decoded them (printed by the last cell)."""
    notebook = nbformat.read(executed, as_version=4)
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs if o.output_type == "stream")
    return json.loads(printed)


def summary_html(executed: Path) -> str:
    notebook = nbformat.read(executed, as_version=4)
    (html,) = [o.data["text/html"] for o in notebook.cells[1].outputs if "text/html" in o.get("data", {})]
    return html


def with_probe(page: str) -> str:
    """The page with the measuring script run at its end, and no scripts from the network (the
    lab template loads MathJax and RequireJS from a CDN, which the summary does not need)."""
    page = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", page)
    probe = (FIXTURES / "summary_geometry.js").read_text()
    return page.replace("</body>", f"<script>{probe}</script></body>")


def exported(executed: Path, template: str) -> str:
    name = f"{template}.html"
    nbconvert("--to", "html", "--template", template, "--output", name, executed.name, cwd=executed.parent)
    return (executed.parent / name).read_text()


def vscode_page(summary: str) -> str:
    """The output inside the DOM VS Code's renderer builds for it, under VS Code's stylesheet."""
    css = (FIXTURES / "vscode_notebook_output.css").read_text()
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8"><style>{css}</style></head>'
        '<body style="overflow: hidden;"><div id="container" class="widgetarea" style="position: absolute;'
        'width:100%;top: 0px"><div class="cell_container"><div class="output_container">'
        f'<div class="output remove-padding"><div>{summary}</div></div></div></div></div></body></html>'
    )


def without_style_block(page: str) -> str:
    """A frontend that strips ``<style>`` from outputs (a sanitizer) leaves only inline styles."""
    return re.sub(r'<style class="slc-style">.*?</style>', "", page, flags=re.S)


#: Where the summary is drawn; "-inline-only": with its <style> stripped, as a sanitizing frontend would.
HOSTS = ("lab", "classic", "vscode", "lab-inline-only", "vscode-inline-only")


def page_for(host: str, executed: Path) -> str:
    frontend = host.removesuffix("-inline-only")
    page = vscode_page(summary_html(executed)) if frontend == "vscode" else exported(executed, frontend)
    return without_style_block(page) if host.endswith("-inline-only") else page


@pytest.mark.parametrize("host", HOSTS)
def test_summary_keeps_its_layout_in_the_host(host: str, executed: Path, tmp_path: Path) -> None:
    page = tmp_path / f"{host}.html"
    page.write_text(with_probe(page_for(host, executed)))
    screenshot(tmp_path, page.as_uri(), f"notebook-summary-{host}.png", window="1280,1300")
    measured = measure(tmp_path, page)
    assert len(measured["waterfalls"]) == 2, measured  # the chain's trace and the failed charge
    parents = tree_of(executed)
    problems = []
    for waterfall in measured["waterfalls"]:
        depth = depths(waterfall, parents)
        problems += indentation_problems(waterfall, parents)
        problems += alignment_problems(waterfall, depth)
        problems += cut_names(waterfall)
        problems += columns_off_their_headers(waterfall)
        problems += host_backgrounds_and_fonts(waterfall)
    assert problems == [], "\n".join(problems)
    names = {row["name"]: row for waterfall in measured["waterfalls"] for row in waterfall["rows"]}
    assert names[EMBEDDING]["nameText"]["lines"] == 1  # a name that fits is shown whole, on one line
    assert names[LONG_NAME]["nameText"]["lines"] > 1 and names[LONG_NAME]["title"] == LONG_NAME  # wrapped


def depths(waterfall: dict[str, Any], parents: dict[str, str]) -> dict[str, int]:
    """span id -> depth in its trace, from the tree the receiver decoded."""
    shown = {row["spanId"] for row in waterfall["rows"]}
    found = {}
    for span_id in shown:
        depth, parent = 0, parents.get(span_id)
        while parent in shown:
            depth, parent = depth + 1, parents.get(parent)
        found[span_id] = depth
    return found


def indentation_problems(waterfall: dict[str, Any], parents: dict[str, str]) -> list[str]:
    """Each child's name starts one indentation step right of its parent's."""
    rows = {row["spanId"]: row for row in waterfall["rows"]}
    problems = []
    for row in rows.values():
        parent = rows.get(parents.get(row["spanId"], ""))
        if parent is not None:
            step = row["nameText"]["left"] - parent["nameText"]["left"]
            if abs(step - INDENT_PX) > 1:
                problems.append(f"{row['name']!r} starts {step:.1f}px right of its parent {parent['name']!r}")
    return problems


def alignment_problems(waterfall: dict[str, Any], depth: dict[str, int]) -> list[str]:
    """Every name starts where its depth puts it, the same distance from its cell's left edge
    however long it is (in a right-aligned cell that distance varies with the name's length)."""
    offsets = {row["name"]: row["nameText"]["left"] - row["nameCell"]["left"] for row in waterfall["rows"]}
    unindented = [offsets[row["name"]] - depth[row["spanId"]] * INDENT_PX for row in waterfall["rows"]]
    problems = [
        f"{row['name']!r} is aligned {row['nameAlign']}" for row in waterfall["rows"] if row["nameAlign"] != "left"
    ]
    if max(unindented) - min(unindented) > 1 or max(unindented) > 40:
        problems.append(f"names start at {offsets} px from their cells' left edges")
    return problems


def cut_names(waterfall: dict[str, Any]) -> list[str]:
    """No name cell has content wider than its box, and every name is drawn inside its cell."""
    problems = []
    for row in waterfall["rows"]:
        if row["overflowing"]:
            problems.append(f"{row['name']!r} overflows: {row['overflowing']}")
        if row["nameText"]["right"] > row["nameCellContentRight"] + 0.5:
            problems.append(
                f"{row['name']!r} runs past its cell ({row['nameText']['right'] - row['nameCellContentRight']:.0f}px)"
            )
        if row["title"] != row["name"]:
            problems.append(f"{row['name']!r} has the title {row['title']!r}")
    return problems


def columns_off_their_headers(waterfall: dict[str, Any]) -> list[str]:
    """The status starts under its header's text; the numbers end under theirs."""
    headers, problems = waterfall["headers"], []
    for row in waterfall["rows"]:
        status = row["cellText"][headers["status"]["index"]]
        header = headers["status"]["text"]
        if abs(status["left"] - header["left"]) > 1:
            problems.append(f"{row['name']!r}: status at x={status['left']:.0f}, its header at {header['left']:.0f}")
        for column in ("duration", "tokens", "cost"):
            cell = row["cellText"][headers[column]["index"]]
            header = headers[column]["text"]
            if cell["width"] and abs(cell["right"] - header["right"]) > 1:
                problems.append(
                    f"{row['name']!r}: {column} ends at x={cell['right']:.0f}, its header at {header['right']:.0f}"
                )
    return problems


def host_backgrounds_and_fonts(waterfall: dict[str, Any]) -> list[str]:
    """No stripes from the host (one background for every row that did not fail, the error red for
    those that did), and the summary's own font size rather than the host's."""
    problems = []
    plain = {row["rowBackground"] for row in waterfall["rows"] if not row["error"]}
    if not plain <= {"rgba(0, 0, 0, 0)"}:
        problems.append(f"rows drawn on {plain}")
    failed = {row["rowBackground"] for row in waterfall["rows"] if row["error"]}
    if not failed <= {"rgb(254, 242, 242)"}:
        problems.append(f"an error row drawn on {failed}")
    for row in waterfall["rows"]:
        if set(row["cellBackgrounds"]) - {"rgba(0, 0, 0, 0)"}:
            problems.append(f"{row['name']!r}: cells drawn on {row['cellBackgrounds']}")
        if row["nameFontSize"] != "12px":
            problems.append(f"{row['name']!r} in a {row['nameFontSize']} font")
    return problems
