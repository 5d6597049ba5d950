"""Every attribute key we send is one Sentry knows (registered, not deprecated in the installed
``sentry-conventions``) or one of our own keys, each listed with its reason in one table."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.runnables import RunnableLambda
from sentry_conventions.attributes import ATTRIBUTE_METADATA

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.environment import REPO_ROOT
from tests.support.langchain_models import TinyRetriever, add, chat_openai, react_agent
from tests.support.llamaindex_models import build_index, li_openai, run_multiply_agent
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.spans import delivered


def _drive_everything(server: OpenAIServer) -> None:
    """Every run kind of both frameworks, the error and control-flow paths included."""
    trace = {"team": "ml", "trace_id": "job-7", "prompt_name": "p", "prompt_version": 2}
    handler = SentryCallbackHandler(user="u1", session_id="s1", trace=trace)
    config: dict[str, Any] = {"callbacks": [handler]}
    server.queue(
        Reply(content="", tool_calls=[{"id": "c1", "name": "add", "args": {"a": 1, "b": 2}}]),
        Reply(content="streamed answer"),
    )
    model = chat_openai(server, temperature=0.2, max_tokens=50, top_p=0.9, stop=["END"])
    model.bind_tools([add]).invoke("1+2?", config=config)
    for _ in model.stream("stream please", config=config):
        pass
    FakeListLLM(responses=["completion"]).invoke("complete this", config=config)
    TinyRetriever(docs=[Document(page_content="doc", metadata={"k": 1})]).invoke("q", config=config)
    add.invoke({"a": 1, "b": 2}, config=config)
    react_agent().invoke({"messages": [("human", "2+3?")]}, config=config)
    with pytest.raises(ValueError):
        RunnableLambda(_boom).invoke(1, config=config)

    slc.set_global_handler(frameworks=("llamaindex",), user="u1")
    try:
        server.queue(Reply(content="li answer"))
        index = build_index()
        index.as_query_engine(llm=li_openai(server)).query("What restarts payments?")
        if importlib.util.find_spec("llama_index.core.agent.workflow") is not None:  # llama-index-core > 0.12.0
            run_multiply_agent(server, name="calc", answer="42")
    finally:
        slc.unset_global_handler()


def _boom(x: Any) -> Any:
    raise ValueError("boom")


def _keys(spans: list[ReceivedSpan]) -> set[str]:
    keys: set[str] = set()
    for span in spans:
        keys.update(span.attributes)
        keys.update(span.resource)
        for _, event_attributes in span.events:
            keys.update(event_attributes)
    return keys


def _own(key: str) -> bool:
    return any(key == own or (own.endswith(".") and key.startswith(own)) for own in attr.OWN_KEYS)


def _known_to_sentry(key: str) -> bool:
    meta = ATTRIBUTE_METADATA.get(key)
    return meta is not None and meta.deprecation is None


@pytest.mark.parametrize("privacy", [False, True], ids=["content", "privacy-mode"])
def test_every_emitted_key_is_registered_or_justified(
    receiver: LocalReceiver, openai_server: OpenAIServer, privacy: bool
) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=privacy, environment="prod", release="1.0", sample_rate=0.999999)
    _drive_everything(openai_server)
    spans = delivered(receiver)
    keys = _keys(spans)
    assert {"gen_ai.usage.input_tokens", "gen_ai.tool.name", "gen_ai.agent.name", "sentry.client_sample_rate"} <= keys
    unjustified = sorted(k for k in keys if not _known_to_sentry(k) and not _own(k))
    assert not unjustified, f"keys neither registered in sentry-conventions nor in attributes.OWN_KEYS: {unjustified}"


def test_own_keys_table_is_in_the_docs() -> None:
    page = (REPO_ROOT / "docs" / "sentry.md").read_text(encoding="utf-8")
    section = page.partition("\n## Data scrubbing\n")[2]
    assert section, "docs/sentry.md has no 'Data scrubbing' section"
    listed = set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))
    missing = sorted(k.rstrip(".") + ("*" if k.endswith(".") else "") for k in attr.OWN_KEYS)
    missing = [k for k in missing if k not in listed]
    assert not missing, f"own keys not documented in docs/sentry.md's table: {missing}"


def test_own_keys_are_really_unregistered() -> None:
    """A key Sentry has since registered should move to the registry's name, not stay ours."""
    registered = [k for k in attr.OWN_KEYS if not k.endswith(".") and _known_to_sentry(k)]
    assert not registered, registered
