"""Every code block of the documentation (docs/ and the README) runs, or is checked where it
cannot run: Python examples are executed page by page against a local receiver, IPython cells in
an IPython shell, shell blocks syntax-checked and the cheap commands run, YAML parsed."""

from __future__ import annotations

from pathlib import Path
from unittest import SkipTest

import pytest

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from tests.support.docs_examples import (
    DOCUMENTS,
    LANGUAGES,
    BlockRunner,
    Tally,
    fence_languages,
    reader_objects,
    relative,
)

pytestmark = pytest.mark.docs


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_every_code_block_runs(
    path: Path, receiver: LocalReceiver, code_block_tally: Tally, docs_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", receiver.dsn)
    slc.configure(dsn=receiver.dsn)
    document = BlockRunner(dsn=receiver.dsn, tally=code_block_tally).parse(path)
    document.namespace.update(reader_objects())
    failed_before = slc.stats()["exports_failed"]
    try:
        for example in document:
            try:
                example.evaluate()
            except SkipTest as reason:
                code_block_tally.skipped.append(f"{relative(path)}:{example.line}: {reason}")
    finally:
        _unload_ipython()
    assert slc.flush(10), "what the examples traced was not delivered"
    assert slc.stats()["exports_failed"] == failed_before


def _unload_ipython() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    if InteractiveShell.initialized():
        InteractiveShell.instance().run_cell("%unload_ext sentry_llm_callbacks")
        InteractiveShell.clear_instance()


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_every_code_block_has_a_language_the_check_runs(path: Path) -> None:
    unknown = [(line, info) for line, info in fence_languages(path) if info.strip() not in LANGUAGES]
    assert not unknown, f"{relative(path)}: blocks no check runs (line, info string): {unknown}"
