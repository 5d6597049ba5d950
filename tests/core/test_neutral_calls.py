"""The framework-neutral run model: the shared message shapes on their own, and each neutral
value (model request and response, tool call, retrieval, chain payload, run metadata) turned
into attributes by the recorder, exported over HTTP and decoded by the local receiver."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document as LangChainDocument
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.schema import NodeWithScore, TextNode

import sentry_llm_callbacks as slc
from sentry_llm_callbacks import _state
from sentry_llm_callbacks import langchain as lc_adapter
from sentry_llm_callbacks import llamaindex as li_adapter
from sentry_llm_callbacks.core.calls import (
    ModelRequest,
    ModelResponse,
    RequestParameters,
    Retrieval,
    ToolCall,
    ToolResult,
)
from sentry_llm_callbacks.core.message_shapes import (
    ContentShapes,
    Document,
    content_parts,
    get_field,
    prompt_messages,
    provider_name,
)
from sentry_llm_callbacks.core.metadata import MetadataLayer
from sentry_llm_callbacks.core.recorder import CHAIN, CHAT, COMPLETION, EMBEDDINGS, RETRIEVER, TOOL, Run
from sentry_llm_callbacks.core.usage import Usage
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan
from tests.support.invariants import check_trace
from tests.support.spans import delivered

# --------------------------------------------------------------------------- shared message shapes


def read_dict(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    return message["role"], content_parts(message.get("content"))


DICT_SHAPES = ContentShapes(read_message=read_dict)


def test_content_parts_reads_strings_and_typed_blocks() -> None:
    assert content_parts("") == []
    assert content_parts(None) == []
    assert content_parts("hi") == [{"type": "text", "content": "hi"}]
    blocks = [
        "plain",
        {"type": "text", "text": "typed"},
        {"type": "reasoning", "reasoning": "because"},
        {"type": "thinking", "thinking": "hm"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]
    assert content_parts(blocks) == [
        {"type": "text", "content": "plain"},
        {"type": "text", "content": "typed"},
        {"type": "reasoning", "content": "because"},
        {"type": "reasoning", "content": "hm"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]


def test_system_messages_become_instructions_and_leave_the_conversation() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Answer in French."},
    ]
    assert DICT_SHAPES.system_parts(messages) == [
        {"type": "text", "content": "Be brief."},
        {"type": "text", "content": "Answer in French."},
    ]
    assert DICT_SHAPES.conversation(messages) == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert DICT_SHAPES.system_parts([{"role": "user", "content": "hi"}]) is None


def test_output_messages_are_assistant_messages_with_their_finish_reason() -> None:
    def read_output(output: dict[str, Any]) -> tuple[Any, Any, str | None]:
        return output.get("message"), output.get("text", ""), output.get("reason")

    shapes = ContentShapes(read_message=read_dict, read_output=read_output)
    outputs = [{"message": {"role": "ai", "content": "Paris"}, "reason": "stop"}, {"text": "plain text"}]
    assert shapes.output_messages(outputs) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Paris"}], "finish_reason": "stop"},
        {"role": "assistant", "parts": [{"type": "text", "content": "plain text"}]},
    ]


def test_documents_keep_what_is_known_in_one_key_order() -> None:
    def read(item: tuple[str, str | None, float | None]) -> Document:
        return Document(text=item[0], id=item[1], score=item[2], metadata={"page": 3} if item[1] else None)

    shapes = ContentShapes(read_message=read_dict, read_document=read)
    out = shapes.documents([("alpha", "d1", 0.5), ("beta", None, None)])
    assert out == [{"content": "alpha", "id": "d1", "score": 0.5, "metadata": {"page": 3}}, {"content": "beta"}]
    assert list(out[0]) == ["content", "id", "score", "metadata"]


def test_prompt_text_is_one_user_message() -> None:
    assert prompt_messages("Say hi") == [{"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}]


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("azure_openai", "azure.ai.openai"),
        ("AzureOpenAI", "azure.ai.openai"),
        ("AzureOpenAIEmbedding", "azure.ai.openai"),
        ("google_genai", "gcp.gemini"),
        ("GoogleGenAI", "gcp.gemini"),
        ("bedrock_converse", "aws.bedrock"),
        ("BedrockConverse", "aws.bedrock"),
        ("mistralai", "mistral_ai"),
        ("MistralAI", "mistral_ai"),
        ("OpenRouter", "openrouter"),
        ("MockLLM", None),
    ],
)
def test_one_provider_table_reads_both_frameworks_hints(hint: str, expected: str | None) -> None:
    assert provider_name(hint) == expected


def test_get_field_reads_mappings_and_objects_alike() -> None:
    class Raw:
        id = "r-1"

    assert get_field({"id": "r-1"}, "id") == get_field(Raw(), "id") == "r-1"
    assert get_field({}, "id") is None and get_field(Raw(), "model") is None


def test_both_adapters_shape_the_same_conversation_the_same_way() -> None:
    call = {"id": "call_1", "name": "search", "args": {"q": "otlp"}}
    langchain_messages = [
        SystemMessage("Be brief."),
        HumanMessage("Find OTLP docs."),
        AIMessage("", tool_calls=[call]),
        ToolMessage("found 3", tool_call_id="call_1"),
    ]
    openai_call = {"id": "call_1", "function": {"name": "search", "arguments": {"q": "otlp"}}}
    llamaindex_messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Find OTLP docs."),
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [openai_call]}),
    ]
    lc_shapes, li_shapes = lc_adapter._SHAPES, li_adapter._SHAPES
    assert lc_shapes.system_parts(langchain_messages) == li_shapes.system_parts(llamaindex_messages)
    assert lc_shapes.conversation(langchain_messages[:3]) == li_shapes.conversation(llamaindex_messages)
    assert lc_shapes.conversation(langchain_messages)[-1] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "result": "found 3"}],
    }


def test_both_adapters_shape_documents_the_same_way() -> None:
    langchain_doc = LangChainDocument(page_content="Rotate keys monthly.", id="n1")
    node = NodeWithScore(node=TextNode(text="Rotate keys monthly.", id_="n1"), score=None)
    assert lc_adapter._SHAPES.documents([langchain_doc]) == li_adapter._SHAPES.documents([node])


def test_both_adapters_shape_a_model_output_the_same_way() -> None:
    from langchain_core.outputs import ChatGeneration

    langchain_out = ChatGeneration(message=AIMessage("Paris"))
    llamaindex_out = ChatResponse(message=ChatMessage(role="assistant", content="Paris"))
    assert lc_adapter._SHAPES.output_messages([langchain_out]) == li_adapter._SHAPES.output_messages([llamaindex_out])


# --------------------------------------------------------------------------- neutral values -> attributes


@pytest.fixture
def recorder(sentry: LocalReceiver) -> Iterator[Any]:
    yield _state.recorder


def one_run(recorder: Any, kind: str, record: Any, *, name: str = "m", layer: MetadataLayer | None = None) -> Run:
    key = uuid.uuid4()
    run = recorder.start_run(
        key, None, kind=kind, name=name, explicit_name=False, handler_layer=None, run_metadata=layer
    )
    assert run is not None
    record(run)
    recorder.end_run(key)
    return run


def only_span(receiver: LocalReceiver, generations: int = 0) -> ReceivedSpan:
    trace = check_trace(delivered(receiver, 1), generations=generations)
    return trace.root


def full_request() -> ModelRequest:
    return ModelRequest(
        model="gpt-4o",
        provider="openai",
        parameters=RequestParameters(
            temperature=0.2,
            max_tokens=64,
            top_p=0.9,
            top_k=40,
            frequency_penalty=0.1,
            presence_penalty=0.3,
            seed="7",
            reasoning_level="low",
            stop_sequences=("END",),
        ),
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        shapes=DICT_SHAPES,
        tools=[{"type": "function", "function": {"name": "search", "parameters": {}}}],
    )


def test_a_model_request_becomes_its_attributes(sentry: LocalReceiver, recorder: Any) -> None:
    one_run(recorder, CHAT, lambda run: recorder.record_request(run, full_request()))
    attrs = only_span(sentry, generations=1).attributes
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.top_k"] == 40
    assert attrs["gen_ai.request.frequency_penalty"] == 0.1
    assert attrs["gen_ai.request.presence_penalty"] == 0.3
    assert attrs["gen_ai.request.seed"] == "7"
    assert attrs["gen_ai.request.reasoning.level"] == "low"
    assert attrs["gen_ai.request.stop_sequences"] == ["END"]
    assert json.loads(attrs["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [{"type": "function", "name": "search", "parameters": {}}]


def test_missing_fields_yield_no_attributes(sentry: LocalReceiver, recorder: Any) -> None:
    one_run(recorder, CHAT, lambda run: recorder.record_request(run, ModelRequest()), name="custom-llm")
    attrs = only_span(sentry, generations=1).attributes
    written = {k for k in attrs if k.startswith(("gen_ai.request.", "gen_ai.provider", "gen_ai.response."))}
    assert written == {"gen_ai.request.model"}  # the fallback Sentry needs to group models
    assert attrs["gen_ai.request.model"] == "custom-llm"
    for key in ("gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"):
        assert key not in attrs


def test_a_prompt_does_not_replace_recorded_messages(sentry: LocalReceiver, recorder: Any) -> None:
    def record(run: Run) -> None:
        recorder.record_request(run, ModelRequest(messages=[{"role": "user", "content": "chat"}], shapes=DICT_SHAPES))
        recorder.record_request(run, ModelRequest(prompt="user: chat"))

    one_run(recorder, COMPLETION, record)
    messages = json.loads(only_span(sentry, generations=1).attributes["gen_ai.input.messages"])
    assert messages == [{"role": "user", "parts": [{"type": "text", "content": "chat"}]}]


def test_a_model_response_becomes_its_attributes_and_usage(sentry: LocalReceiver, recorder: Any) -> None:
    response = ModelResponse(
        model="gpt-4o-2024-08-06",
        response_id="chatcmpl-1",
        finish_reasons=("stop",),
        outputs=[{"message": {"role": "assistant", "content": "Paris"}}],
        shapes=ContentShapes(read_message=read_dict, read_output=lambda o: (o["message"], "", None)),
        usage=Usage(input_tokens=12, output_tokens=3, total_tokens=15),
    )
    one_run(recorder, CHAT, lambda run: recorder.record_response(run, response), name="gpt-4o")
    attrs = only_span(sentry, generations=1).attributes
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 3)
    assert attrs["sentry_llm_callbacks.usage.source"] == "provider"
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Paris"}]}
    ]


def test_embedding_inputs_are_counted_and_kept_as_content(sentry: LocalReceiver, recorder: Any) -> None:
    one_run(recorder, EMBEDDINGS, lambda run: recorder.record_request(run, ModelRequest(embedding_inputs=["a", "b"])))
    attrs = only_span(sentry, generations=1).attributes
    assert attrs["sentry_llm_callbacks.embeddings.input_count"] == 2
    assert json.loads(attrs["gen_ai.embeddings.input"]) == ["a", "b"]


def test_a_tool_call_and_result_become_their_attributes(sentry: LocalReceiver, recorder: Any) -> None:
    def record(run: Run) -> None:
        recorder.record_tool_call(run, ToolCall(name="search", description="d" * 2000, arguments={"q": "otlp"}))
        recorder.record_tool_result(run, ToolResult({"hits": 3}, convert=lambda v: {**v, "converted": True}))

    one_run(recorder, TOOL, record, name="search")
    attrs = only_span(sentry).attributes
    assert attrs["gen_ai.tool.name"] == "search"
    assert attrs["gen_ai.tool.description"] == "d" * 1024
    assert json.loads(attrs["gen_ai.tool.call.arguments"]) == {"q": "otlp"}
    assert json.loads(attrs["gen_ai.tool.call.result"]) == {"hits": 3, "converted": True}


def test_a_retrieval_becomes_its_query_documents_and_count(sentry: LocalReceiver, recorder: Any) -> None:
    shapes = ContentShapes(read_message=read_dict, read_document=lambda d: Document(text=d, id=d[:2]))

    def record(run: Run) -> None:
        recorder.record_retrieval(run, Retrieval(query="key rotation"))
        recorder.record_retrieval(run, Retrieval(documents=["d1 text"], document_count=1, shapes=shapes))

    one_run(recorder, RETRIEVER, record, name="docs")
    attrs = only_span(sentry).attributes
    assert attrs["input.value"] == "key rotation"
    assert attrs["sentry_llm_callbacks.retrieval.document_count"] == 1
    assert json.loads(attrs["retrieval.documents"]) == [{"content": "d1 text", "id": "d1"}]


def test_chain_payloads_become_input_and_output(sentry: LocalReceiver, recorder: Any) -> None:
    def record(run: Run) -> None:
        recorder.record_input(run, {"question": "why?"})
        recorder.record_output(run, "because", str.upper)

    one_run(recorder, CHAIN, record, name="qa")
    attrs = only_span(sentry).attributes
    assert json.loads(attrs["input.value"]) == {"question": "why?"}
    assert attrs["output.value"] == "BECAUSE"


def test_privacy_mode_keeps_every_content_field_in_the_process(sentry: LocalReceiver, recorder: Any) -> None:
    private = MetadataLayer(privacy_mode=True)

    def record(run: Run) -> None:
        recorder.record_request(run, full_request())
        recorder.record_response(run, ModelResponse(model="gpt-4o", outputs=[{}], shapes=DICT_SHAPES))

    run = one_run(recorder, CHAT, record, layer=private)
    assert not any(type(v).__name__ == "LazyContent" for v in run.attributes.values())  # not even a snapshot
    attrs = only_span(sentry, generations=1).attributes
    assert attrs["gen_ai.request.temperature"] == 0.2 and attrs["gen_ai.response.model"] == "gpt-4o"
    assert attrs["gen_ai.input.messages"] == attrs["gen_ai.output.messages"] == "[Filtered]"
    for key in ("gen_ai.system_instructions", "gen_ai.tool.definitions"):
        assert key not in attrs


def test_a_run_layer_applies_at_the_root_and_tightens_privacy_below(sentry: LocalReceiver, recorder: Any) -> None:
    root, child = uuid.uuid4(), uuid.uuid4()
    layer = MetadataLayer.build(user="u-7", trace={"team": "ml"}, strict=True)
    recorder.start_run(root, None, kind=CHAIN, name="root", explicit_name=True, handler_layer=None, run_metadata=layer)
    run = recorder.start_run(
        child,
        root,
        kind=CHAIN,
        name="child",
        explicit_name=True,
        handler_layer=None,
        run_metadata=MetadataLayer(privacy_mode=True),
    )
    recorder.record_input(run, "secret")
    recorder.end_run(child)
    recorder.end_run(root)
    trace = check_trace(delivered(sentry, 2))
    assert all(s.attributes["user.id"] == "u-7" for s in trace.spans)
    assert all(s.attributes["trace.metadata.team"] == "ml" for s in trace.spans)
    (below,) = [s for s in trace.spans if s is not trace.root]
    assert "input.value" not in below.attributes
    assert slc.stats()["runs_open"] == 0


# --------------------------------------------------------------------------- events inside a run


@pytest.mark.parametrize("private", [False, True])
def test_agent_retry_and_custom_events_land_on_their_run(sentry: LocalReceiver, private: bool) -> None:
    from langchain_core.agents import AgentAction, AgentFinish

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    handler = SentryCallbackHandler(privacy_mode=private or None)
    run_id = uuid.uuid4()
    handler.on_chain_start({"name": "AgentExecutor"}, {"input": "2 + 3?"}, run_id=run_id)
    handler.on_agent_action(AgentAction(tool="add", tool_input={"a": 2, "b": 3}, log=""), run_id=run_id)
    handler.on_retry(type("RetryState", (), {"attempt_number": 2})(), run_id=run_id)
    handler.on_custom_event("progress", {"done": 0.5}, run_id=run_id)
    handler.on_agent_finish(AgentFinish(return_values={"output": "5"}, log=""), run_id=run_id)
    handler.on_chain_end({"output": "5"}, run_id=run_id)
    events = dict(only_span(sentry).events)
    assert list(events) == ["agent_action", "retry", "progress", "agent_finish"]
    assert events["agent_action"]["gen_ai.tool.name"] == "add"
    assert events["retry"] == {"retry.attempt": 2}
    if private:
        assert "gen_ai.tool.call.arguments" not in events["agent_action"]
        assert events["progress"] == events["agent_finish"] == {}
    else:
        assert json.loads(events["agent_action"]["gen_ai.tool.call.arguments"]) == {"a": 2, "b": 3}
        assert json.loads(events["progress"]["data"]) == {"done": 0.5}
        assert json.loads(events["agent_finish"]["output.value"]) == {"output": "5"}
