"""Fixtures every test can ask for: a clean process state, the local receivers and servers.

Plain helpers (reading what arrived, waiting, skip markers, shared framework objects) live in
:mod:`tests.support`."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks.base.log import reset_log_once
from sentry_llm_callbacks.devtools.receiver import LocalReceiver
from tests.support.environment import ENV_VARS
from tests.support.fault_receiver import FaultyReceiver
from tests.support.openai_server import OpenAIServer


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts unconfigured, with no environment and no global handler."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    reset_log_once()
    _state.reset()
    yield
    slc.unset_global_handler()
    _state.reset()
    _state.recorder.clear()


@pytest.fixture
def receiver() -> Iterator[FaultyReceiver]:
    """The local Sentry-like receiver; set its ``fault`` to make it answer like an unhealthy endpoint."""
    with FaultyReceiver() as r:
        yield r


@pytest.fixture
def sentry(receiver: LocalReceiver) -> LocalReceiver:
    """A destination configured to send to the local Sentry-like receiver."""
    slc.configure(dsn=receiver.dsn)
    return receiver


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture
def llamaindex_settings() -> Iterator[None]:
    """LlamaIndex's global ``Settings.callback_manager`` put back as it was after the test."""
    from llama_index.core import Settings

    previous = Settings._callback_manager
    yield
    Settings._callback_manager = previous


@pytest.fixture
def caplog_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
