"""What running the documentation's code blocks needs: the objects the examples name as the
reader's own (``chain``, ``graph``, ``index``...), built on fake models, the way every block is
run or checked, and the tally the test session prints.

The examples are written as a reader would paste them; the harness changes one thing: the example
DSN is pointed at the local receiver, so that every trace an example makes really travels over
HTTP and is decoded there."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from langchain_core.language_models import FakeListChatModel
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt
from sybil import Document, Example, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from tests.support.environment import REPO_ROOT
from tests.support.langchain_models import react_agent, simple_chain
from tests.support.llamaindex_models import build_index

#: The DSN every example is written with; the harness sends what it traces to a local receiver.
EXAMPLE_DSN = "https://PUBLICKEY@o123.ingest.us.sentry.io/456"
#: The fence languages the documentation may use, each with the way it is run or checked below.
LANGUAGES = ("python", "ipython", "bash", "yaml")
#: The commands a ``bash`` block may run for real (fast, and only against the local receiver);
#: every other shell block is syntax-checked only (it installs, serves until Ctrl+C, or runs CI).
CHEAP_COMMANDS = re.compile(r"^sentry-llm-callbacks (test-connection|send-test-trace|collector-config)\b")
#: Paths a shell block names in the repository, which must exist.
REPO_PATH = re.compile(r"^(scripts|benchmarks|tests|notebooks|docs|\.ci)/[\w./-]+$")
#: The documents whose code blocks are run: every page of the site, and the README.
DOCUMENTS = (*sorted((REPO_ROOT / "docs").rglob("*.md")), REPO_ROOT / "README.md")


class FakeChat(FakeListChatModel):
    """A fake chat model that names its model, as every real provider does."""

    model_name: str = "fake-chat"


def approval_builder() -> StateGraph:
    """A one-node graph that stops at an ``interrupt()`` for a human's approval."""

    def approve(state: MessagesState) -> dict[str, Any]:
        decision = interrupt("approve the refund?")
        return {"messages": [("ai", f"refund {decision}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("approve", approve)
    builder.add_edge(START, "approve")
    builder.add_edge("approve", END)
    return builder


def reader_objects() -> dict[str, Any]:
    """The names the examples use for the reader's own objects (docs/index.md lists them)."""
    from llama_index.core.llms import MockLLM

    import sentry_llm_callbacks as slc
    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    model = FakeChat(responses=["Restart the payments pod: card tokens were null."])
    return {
        "slc": slc,
        "model": model,
        "chain": simple_chain(model),
        "inputs": {"question": "Why does checkout fail?"},
        "graph": react_agent(),
        "builder": approval_builder(),
        "index": build_index(),
        "llm": MockLLM(),
        "handler": SentryCallbackHandler(),
    }


@dataclass
class Tally:
    """What the documentation's code blocks came to, printed at the end of the session."""

    ran: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.ran[kind] = self.ran.get(kind, 0) + 1

    def lines(self) -> list[str]:
        ran = ", ".join(f"{n} {kind}" for kind, n in sorted(self.ran.items()))
        out = [f"documentation code blocks: {ran or 'none'}; {len(self.skipped)} skipped as marked"]
        out += [f"  skipped {where}" for where in self.skipped]
        return out


@dataclass
class BlockRunner:
    """Runs or checks each kind of block of one document, counting what it did."""

    dsn: str
    tally: Tally

    def python(self, example: Example) -> None:
        source = pad(example.parsed.replace(EXAMPLE_DSN, self.dsn), example.line + example.parsed.line_offset)
        exec(compile(source, example.path, "exec", dont_inherit=True), example.namespace)
        example.namespace.pop("__builtins__", None)
        self.tally.count("Python executed")

    def ipython(self, example: Example) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        result = InteractiveShell.instance().run_cell(str(example.parsed))
        assert result.success, f"{_where(example)}: {result.error_before_exec or result.error_in_exec!r}"
        self.tally.count("IPython executed")

    def bash(self, example: Example) -> None:
        done = check_shell(str(example.parsed), dsn=self.dsn, where=_where(example))
        self.tally.count(f"shell {done}")

    def yaml(self, example: Example) -> None:
        yaml.safe_load(str(example.parsed))
        self.tally.count("YAML parsed")

    def parse(self, path: Path) -> Document:
        parsers = [CodeBlockParser(language, getattr(self, language)) for language in LANGUAGES]
        return Sybil(parsers=[*parsers, SkipParser()]).parse(path)


def fence_languages(path: Path) -> list[tuple[int, str]]:
    """Every fenced block of a document: its line and its info string (its language)."""
    document = Document(path.read_text(encoding="utf-8"), str(path))
    lexer = RawFencedCodeBlockLexer(info_pattern=re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE))
    return [(document.text.count("\n", 0, region.start) + 1, region.lexemes["info"]) for region in lexer(document)]


def _where(example: Example) -> str:
    return f"{relative(Path(example.path))}:{example.line}"


def check_shell(source: str, *, dsn: str, where: str) -> str:
    """Syntax-check a ``bash`` block, check the repository paths it names, and run it when every
    command in it is a cheap one; returns what was done ("run" or "syntax-checked")."""
    checked = subprocess.run(["bash", "-n"], input=source, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, f"{where}: bash -n: {checked.stderr}"
    named = {token for line in source.splitlines() for token in _tokens(line) if REPO_PATH.match(token)}
    missing = sorted(path for path in named if not (REPO_ROOT / path).exists())
    assert not missing, f"{where}: names files the repository does not have: {missing}"
    commands = [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not commands or not all(CHEAP_COMMANDS.match(line) for line in commands):
        return "syntax-checked"
    # The command as this interpreter runs it, so that the tree under test answers.
    script = f'sentry-llm-callbacks() {{ {shlex.quote(sys.executable)} -m sentry_llm_callbacks "$@"; }}\nset -e\n'
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")} | {"SENTRY_DSN": dsn}
    ran = subprocess.run(["bash", "-c", script + source], capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, f"{where}: exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    return "run"


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))
