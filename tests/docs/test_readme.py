"""The README is the front door: short, the two set-up commands on its first screen, a quick start
that really sends a trace, and links into docs/ that lead somewhere."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from tests.support.docs_examples import EXAMPLE_DSN
from tests.support.environment import REPO_ROOT

README = REPO_ROOT / "README.md"
COMMANDS = ("scripts/demo", "scripts/test")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_is_short_and_its_first_screen_has_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 260, f"README.md has {len(lines)} lines: move reference material into docs/"
    first_screen = "\n".join(lines[:25])
    (commands,) = fenced_blocks(first_screen + "\n", "bash")[:1]
    given = [line.split("#")[0].strip() for line in commands.splitlines() if line.strip()]
    assert given == list(COMMANDS)
    for command in COMMANDS:
        assert os.access(REPO_ROOT / command, os.X_OK), f"{command} is not an executable file"


@pytest.mark.docs
def test_the_quick_start_sends_its_trace(receiver: LocalReceiver) -> None:
    text = README.read_text(encoding="utf-8")
    quick_start = fenced_blocks(text.partition("\n## Quick start\n")[2], "python")[0]
    exec(compile(quick_start.replace(EXAMPLE_DSN, receiver.dsn), "README.md: quick start", "exec"), {})
    assert slc.flush(10)
    spans = receiver.wait_for_spans(3)
    chat = [s for s in spans if s.op == "gen_ai.chat"]
    assert len(chat) == 1 and chat[0].attributes["gen_ai.output.messages"]
    assert {s.attributes.get("user.id") for s in spans} == {"user_12345"}
    assert {s.attributes.get("session.id") for s in spans} == {"session_abc"}
    assert len({s.trace_id for s in spans}) == 1


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {slugify(re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", h), "-") for h in headings}


def test_the_readme_links_lead_somewhere() -> None:
    broken = []
    for target in LINK.findall(README.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = REPO_ROOT / file if file else README
        if not path.exists() or (anchor and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken, f"README.md links to files or headings that do not exist: {broken}"
