"""The documentation's tests share one tally of the code blocks they ran, printed at the end."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.docs_examples import Tally

TALLY = pytest.StashKey[Tally]()


@pytest.fixture(scope="session")
def code_block_tally(request: pytest.FixtureRequest) -> Tally:
    return request.config.stash.setdefault(TALLY, Tally())


@pytest.fixture
def docs_settings(llamaindex_settings: None) -> Iterator[None]:
    """LlamaIndex on mock models for the examples; logging and the app's Sentry SDK (an example
    may configure them) put back as they were."""
    import sentry_sdk
    from llama_index.core import Settings
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    from sentry_llm_callbacks.sentry_sdk import interop

    previous = Settings._llm, Settings._embed_model
    Settings.llm, Settings.embed_model = MockLLM(), MockEmbedding(embed_dim=8)
    root, package = logging.getLogger(), logging.getLogger("sentry_llm_callbacks")
    handlers, levels = list(root.handlers), (root.level, package.level)
    yield
    Settings._llm, Settings._embed_model = previous
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    package.setLevel(levels[1])
    client = sentry_sdk.get_client()
    if client.is_active():  # leave no client behind: the SDK's patches are inert without one
        client.close()
        sentry_sdk.get_global_scope().set_client(None)
    interop._reset_for_tests()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    tally = config.stash.get(TALLY, None)
    if tally is not None:
        for line in tally.lines():
            terminalreporter.write_line(line)
