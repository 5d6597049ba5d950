"""Which prompt produced a generation (SPEC 8f): ``gen_ai.prompt.name`` and
``sentry_llm_callbacks.prompt.version`` on the chat / completion spans made from a named prompt,
from a LangChain template's hub metadata, from the metadata layers, and from a LlamaIndex
template's metadata; sent in Privacy Mode too. Asserted over the wire."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import MessagesState  # at module level: older LangGraph reads the node's annotations from here

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.core.calls import PromptRef
from sentry_llm_callbacks.core.metadata import MetadataLayer
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from sentry_llm_callbacks.devtools.waterfall import from_attributes, render_trace
from sentry_llm_callbacks.langchain import SentryCallbackHandler
from tests.support.invariants import check_trace, check_traces
from tests.support.spans import delivered

NAME = "gen_ai.prompt.name"
VERSION = "sentry_llm_callbacks.prompt.version"
TRACE_PROMPT_NAME = "trace.metadata.prompt_name"
SECRET_TEMPLATE = "SECRET-TEMPLATE-TEXT-51c2"
SECRET_QUESTION = "SECRET-QUESTION-9e0d"
SECRET_ANSWER = "SECRET-ANSWER-77ab"


def hub_prompt(owner: str = "-", repo: str = "support-triage", commit: str = "a1b2c3d4") -> ChatPromptTemplate:
    """A template with the metadata ``hub.pull`` gives it (langchain's hub module and LangSmith's
    ``pull_prompt`` both set these three keys on the pulled template)."""
    prompt = ChatPromptTemplate.from_messages([("system", f"Triage. {SECRET_TEMPLATE}"), ("human", "{q}")])
    prompt.metadata = {"lc_hub_owner": owner, "lc_hub_repo": repo, "lc_hub_commit_hash": commit}
    return prompt


def chat(name: str, *replies: str) -> Any:
    """A fake chat model with usage, its spans named ``name``; it answers ``replies`` in turn, forever."""
    messages = (
        AIMessage(content=r, usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10})
        for r in itertools.cycle(replies or ("ok",))
    )
    return GenericFakeChatModel(messages=messages).with_config(run_name=name)


def named(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, f"{len(matches)} spans named {name!r} in {sorted(s.name for s in spans)}"
    return matches[0]


def prompt_of(span: ReceivedSpan) -> tuple[Any, Any]:
    return span.attributes.get(NAME), span.attributes.get(VERSION)


def assert_only_generations_named(spans: list[ReceivedSpan], expected: dict[str, tuple[Any, Any]]) -> None:
    """The named spans carry exactly the given prompt; every other span carries none, and no span
    carries the prompt as custom trace metadata."""
    for span in spans:
        assert TRACE_PROMPT_NAME not in span.attributes, span.name
        assert prompt_of(span) == expected.get(span.name, (None, None)), span.name


# --------------------------------------------------------------------------- LangChain templates


@pytest.mark.parametrize(
    ("owner", "expected_name"),
    [("-", "support-triage"), ("acme", "acme/support-triage")],
    ids=["own-workspace", "public-owner"],
)
def test_a_hub_template_names_the_generation_made_from_it(
    sentry: LocalReceiver, owner: str, expected_name: str
) -> None:
    summary = chat("summary", "short")

    def summarize(text: str, config: RunnableConfig) -> str:
        return summary.invoke(f"Summarize: {text}", config).content

    chain = hub_prompt(owner) | chat("answer", "long answer") | StrOutputParser() | RunnableLambda(summarize)
    chain.invoke({"q": "why?"}, config={"callbacks": [SentryCallbackHandler()]})

    spans = delivered(sentry)
    trace = check_trace(spans, generations=2, usage=[(7, 3), (7, 3)])
    assert trace.root.name == "RunnableSequence"
    steps = ["ChatPromptTemplate", "answer", "StrOutputParser", "summarize"]
    assert [s.name for s in trace.children(trace.root)] == steps
    # the template's own span, the parser, the later model call and the chain carry nothing
    assert_only_generations_named(spans, {"answer": (expected_name, "a1b2c3d4")})


def test_the_template_reaches_a_model_inside_a_fallback_or_retry_wrapper(sentry: LocalReceiver) -> None:
    primary = RunnableLambda(_fail).with_config(run_name="primary")
    handler = SentryCallbackHandler()
    (hub_prompt(repo="fallback-prompt") | primary.with_fallbacks([chat("backup")])).invoke(
        {"q": "a"}, config={"callbacks": [handler]}
    )
    retried = GenericFakeChatModel(messages=iter([AIMessage(content="ok")]))
    (hub_prompt(repo="retry-prompt") | retried.with_retry(stop_after_attempt=2)).invoke(
        {"q": "b"}, config={"callbacks": [handler]}
    )
    spans = delivered(sentry)
    check_traces(spans, 2, generations=1)
    assert_only_generations_named(
        spans,
        {"backup": ("fallback-prompt", "a1b2c3d4"), "chat GenericFakeChatModel": ("retry-prompt", "a1b2c3d4")},
    )


def _fail(value: Any) -> Any:
    raise ValueError("primary down")


def test_a_template_and_model_called_inside_a_langgraph_node(sentry: LocalReceiver) -> None:
    from langgraph.graph import END, START, StateGraph

    prompt, model, other = hub_prompt(repo="node-prompt"), chat("answer"), chat("follow-up")

    def respond(state: MessagesState) -> dict[str, Any]:
        other.invoke("unrelated warm-up")  # before the template: not made from it
        reply = model.invoke(prompt.invoke({"q": state["messages"][-1].content}))
        return {"messages": [reply]}

    graph = StateGraph(MessagesState)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    graph.compile().invoke({"messages": [("human", "hi")]}, config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry)
    check_trace(spans, generations=2)
    assert prompt_of(named(spans, "answer")) == ("node-prompt", "a1b2c3d4")
    assert prompt_of(named(spans, "follow-up")) == (None, None)


def test_a_batch_names_each_generation(sentry: LocalReceiver) -> None:
    chain = hub_prompt() | FakeListChatModel(responses=["a", "b", "c"]).with_config(run_name="answer")
    chain.batch([{"q": "1"}, {"q": "2"}, {"q": "3"}], config={"callbacks": [SentryCallbackHandler()]})
    spans = delivered(sentry)
    check_traces(spans, 3, generations=1)
    answers = [s for s in spans if s.name == "answer"]
    assert len(answers) == 3
    assert {prompt_of(s) for s in answers} == {("support-triage", "a1b2c3d4")}


# --------------------------------------------------------------------------- metadata layers


def test_prompt_keys_of_every_metadata_layer(sentry: LocalReceiver) -> None:
    handler = SentryCallbackHandler(trace={"prompt_name": "from-handler", "prompt_version": "1", "team": "ml"})
    chain = RunnableLambda(lambda x: x).with_config(run_name="prepare") | chat("answer")

    chain.invoke("a", config={"callbacks": [handler], "run_name": "handler only"})
    with slc.trace_context(trace={"prompt_name": "from-context"}):
        chain.invoke("b", config={"callbacks": [handler], "run_name": "context over handler"})
        chain.invoke(
            "c",
            config={"callbacks": [handler], "run_name": "run over context", "metadata": {"prompt_name": "from-run"}},
        )
    chain.invoke(
        "d",
        config={
            "callbacks": [handler],
            "run_name": "a version alone",
            "metadata": {"trace": {"prompt_version": "2"}},
        },
    )
    spans = delivered(sentry)
    expected = {
        "handler only": ("from-handler", "1"),
        "context over handler": ("from-context", None),  # another prompt's name does not keep the version
        "run over context": ("from-run", None),
        "a version alone": ("from-handler", "2"),  # completes the name of the layer below
    }
    for root_name, prompt in expected.items():
        root = named(spans, root_name)
        members = [s for s in spans if s.trace_id == root.trace_id]
        check_trace(members, generations=1)
        assert_only_generations_named(members, {"answer": prompt})
        assert all(s.attributes.get("trace.metadata.team") == "ml" for s in members)


def test_a_nested_models_own_metadata_and_a_template_win_over_the_trace(sentry: LocalReceiver) -> None:
    labelled = chat("labelled").with_config(metadata={"prompt_name": "labelled-call", "prompt_version": "5"})
    plain = chat("plain")
    templated = chat("templated")

    def body(question: str, config: RunnableConfig) -> str:
        labelled.invoke(question, config)
        plain.invoke(question, config)
        return (hub_prompt(repo="hub-wins") | templated).invoke({"q": question}, config).content

    RunnableLambda(body).invoke(
        "q", config={"callbacks": [SentryCallbackHandler(trace={"prompt_name": "trace-wide", "prompt_version": "9"})]}
    )
    spans = delivered(sentry)
    check_trace(spans, generations=3)
    assert_only_generations_named(
        spans,
        {"labelled": ("labelled-call", "5"), "plain": ("trace-wide", "9"), "templated": ("hub-wins", "a1b2c3d4")},
    )


def test_bad_prompt_values(sentry: LocalReceiver) -> None:
    with pytest.raises(slc.ConfigurationError, match=r"trace\.prompt_name"):
        SentryCallbackHandler(trace={"prompt_name": {"not": "a name"}})
    chat("answer").invoke(
        "q",
        config={"callbacks": [SentryCallbackHandler()], "metadata": {"prompt_name": ["x"], "prompt_version": 3}},
    )
    spans = delivered(sentry)
    check_trace(spans, generations=1)
    (answer,) = spans
    assert prompt_of(answer) == (None, None)  # a version alone names no prompt


def test_layers_merge_prompts_as_one_identity() -> None:
    handler = MetadataLayer.build(trace={"prompt_name": "a", "prompt_version": "1"}, strict=True)
    assert handler.prompt == PromptRef("a", "1")
    assert "prompt_name" in handler.trace  # kept in the layer, but steering: never trace.metadata.*
    assert MetadataLayer.build(prompt_version=2, strict=False).over(handler).prompt == PromptRef("a", "2")
    assert MetadataLayer.build(prompt_name="b", strict=False).over(handler).prompt == PromptRef("b", None)
    assert MetadataLayer.build(user="u", strict=False).over(handler).prompt == PromptRef("a", "1")


# --------------------------------------------------------------------------- LlamaIndex templates


@pytest.fixture
def llamaindex_settings() -> Iterator[None]:
    pytest.importorskip("llama_index.core")
    from llama_index.core import Settings

    previous = Settings._callback_manager
    yield
    Settings._callback_manager = previous


def _query(mode: str = "compact", **trace: Any) -> None:
    from llama_index.core import Document, PromptTemplate, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    docs = [Document(text=t) for t in ("Restart the payments pod.", "Page the payments team.")]
    index = VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))
    template = PromptTemplate(
        f"{SECRET_TEMPLATE}\nContext: {{context_str}}\nQuestion: {{query_str}}\nAnswer:",
        metadata={"prompt_name": "docs-qa", "prompt_version": "7"},
    )
    slc.set_global_handler(frameworks=("llamaindex",), trace=trace or None)
    try:
        engine = index.as_query_engine(
            llm=MockLLM(max_tokens=8), text_qa_template=template, response_mode=mode, similarity_top_k=2
        )
        engine.query(f"What restarts payments? {SECRET_QUESTION}")
    finally:
        slc.unset_global_handler()


def test_a_llamaindex_template_names_the_completion_made_from_it(
    sentry: LocalReceiver, llamaindex_settings: None
) -> None:
    _query(mode="refine")  # the first call uses the named QA template, the second LlamaIndex's refine template
    members = delivered(sentry)
    trace = check_trace(members)
    assert trace.root.name.endswith(".query")
    completions = sorted(trace.with_op("gen_ai.text_completion"), key=lambda s: s.start_ns)
    assert len(completions) == 2
    assert [prompt_of(s) for s in completions] == [("docs-qa", "7"), (None, None)]
    others = [s for s in members if s.op != "gen_ai.text_completion"]
    assert others and all(NAME not in s.attributes and VERSION not in s.attributes for s in others)


def test_a_llamaindex_template_wins_over_the_handlers_prompt(sentry: LocalReceiver, llamaindex_settings: None) -> None:
    _query(mode="refine", prompt_name="handler-prompt", prompt_version="h1")
    spans = delivered(sentry)
    check_trace(spans, generations=3)  # the query's embedding, then refine's two completions
    completions = sorted((s for s in spans if s.op == "gen_ai.text_completion"), key=lambda s: s.start_ns)
    assert [prompt_of(s) for s in completions] == [("docs-qa", "7"), ("handler-prompt", "h1")]


# --------------------------------------------------------------------------- Privacy Mode


def test_privacy_mode_still_sends_the_prompt_identity(receiver: LocalReceiver, llamaindex_settings: None) -> None:
    slc.configure(dsn=receiver.dsn, privacy_mode=True)
    (hub_prompt() | chat("answer", SECRET_ANSWER) | StrOutputParser()).invoke(
        {"q": SECRET_QUESTION}, config={"callbacks": [SentryCallbackHandler()]}
    )
    _query()
    spans = delivered(receiver)
    check_traces(spans, 2)  # the chain, then the query
    assert prompt_of(named(spans, "answer")) == ("support-triage", "a1b2c3d4")
    (completion,) = [s for s in spans if s.op == "gen_ai.text_completion"]
    assert prompt_of(completion) == ("docs-qa", "7")
    assert completion.attributes["gen_ai.input.messages"] == "[Filtered]"
    wire = b"".join(receiver.bodies)
    for secret in (SECRET_TEMPLATE, SECRET_QUESTION, SECRET_ANSWER, "Restart the payments pod"):
        assert secret.encode() not in wire, secret


# --------------------------------------------------------------------------- the waterfall


def test_the_waterfall_shows_the_prompt_beside_the_model() -> None:
    def summary(**attributes: Any) -> Any:
        base = {"sentry.op": "gen_ai.chat", "gen_ai.request.model": "gpt-4o"}
        return from_attributes(
            trace_id="1" * 32,
            span_id="2" * 16,
            parent_id="",
            name="chat gpt-4o",
            start_ns=0,
            end_ns=1_000_000,
            attributes={**base, **attributes},
            error=None,
        )

    with_prompt = render_trace([summary(**{NAME: "acme/triage", VERSION: "a1b2c3d4"})])
    assert 'title="gpt-4o · prompt acme/triage:a1b2c3d4">gpt-4o<div class="slc-prompt"' in with_prompt
    assert ">prompt acme/triage:a1b2c3d4</div></td>" in with_prompt
    assert ">prompt triage</div></td>" in render_trace([summary(**{NAME: "triage"})])  # no version known
    without = render_trace([summary()])  # a span without a prompt: the model cell as it always was
    assert "slc-prompt" not in without and 'title="gpt-4o">gpt-4o</td>' in without
