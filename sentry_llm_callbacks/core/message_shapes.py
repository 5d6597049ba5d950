"""Content shapes Sentry's conventions define, built from what the frameworks hand us.

This is the one place that builds the JSON of ``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``, ``gen_ai.tool.definitions`` and
``retrieval.documents``, and that names providers. A framework adapter contributes only small
readers: one turning *its* message object into a role and content parts, one reading a model
output, one reading a retrieved document. :class:`ContentShapes` binds an adapter's readers to
the shared builders; the builders run on the export thread (see ``content.LazyContent``), so
nothing here costs the application's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sentry_llm_callbacks.core.conversion_memo import converted_once

Part = dict[str, Any]
Message = dict[str, Any]

#: An adapter's message reader: its message object -> (role, content parts).
ReadMessage = Callable[[Any], tuple[str, list[Part]]]
#: An adapter's output reader: one model output -> (its message or None, its text, its finish reason).
ReadOutput = Callable[[Any], tuple[Any, Any, "str | None"]]


@dataclass(frozen=True, slots=True)
class Document:
    """A retrieved document, framework-neutral. A field left None is left out of the JSON."""

    text: Any = None
    id: Any = None
    score: float | None = None
    metadata: Any = None


#: An adapter's document reader: one retrieved item -> a :class:`Document`.
ReadDocument = Callable[[Any], Document]


def is_mapping(value: Any) -> bool:
    """Whether ``value`` is a mapping. A dict, and None (a payload field left out), are told apart
    before the ``Mapping`` check: that is an ABC's, a Python call, and adapters ask it of payload
    fields on every callback.

    >>> is_mapping({"id": "r1"}), is_mapping(None), is_mapping([("id", "r1")])
    (True, False, False)
    """
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def get_field(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping, ``obj.key`` otherwise; None when absent. Provider payloads
    come as dicts or as SDK objects with the same field names.

    >>> get_field({"id": "r1"}, "id"), get_field(object(), "id")
    ('r1', None)
    """
    return obj.get(key) if type(obj) is dict or is_mapping(obj) else getattr(obj, key, None)  # dict: no call


# --------------------------------------------------------------------------- parts and messages


def text_part(text: Any) -> Part:
    return {"type": "text", "content": text}


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> Part:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def tool_result_part(call_id: Any, result: Any) -> Part:
    return {"type": "tool_call_response", "id": call_id, "result": result}


def content_parts(content: Any) -> list[Part]:
    """A message's content as parts: a string, or a list of strings and typed blocks (OpenAI's
    and Anthropic's ``{"type": "text", "text": ...}``, reasoning / thinking blocks; other blocks
    are kept as they are).

    >>> content_parts([{"type": "text", "text": "hi"}, {"type": "thinking", "thinking": "hm"}])
    [{'type': 'text', 'content': 'hi'}, {'type': 'reasoning', 'content': 'hm'}]
    """
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[Part] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append(text_part(block))
            elif isinstance(block, Mapping):
                kind = block.get("type")
                if kind == "text":
                    parts.append(text_part(block.get("text", "")))
                elif kind in ("reasoning", "thinking"):
                    parts.append({"type": "reasoning", "content": block.get("reasoning") or block.get("thinking", "")})
                else:
                    parts.append(dict(block))
    return parts


def prompt_messages(prompt: Any) -> list[Message]:
    """A completion model's prompt as one user message.

    >>> prompt_messages("Say hi")
    [{'role': 'user', 'parts': [{'type': 'text', 'content': 'Say hi'}]}]
    """
    return [{"role": "user", "parts": [text_part(prompt)]}]


def document(doc: Document) -> dict[str, Any]:
    out: dict[str, Any] = {"content": doc.text}
    if doc.id:
        out["id"] = doc.id
    if doc.score is not None:
        out["score"] = doc.score
    if doc.metadata:
        out["metadata"] = doc.metadata
    return out


class ContentShapes:
    """One adapter's readers bound to the shared builders.

    An adapter makes one at import time and hands its bound methods to the recorder as content
    converters (the same objects every time, so renderings can be reused across spans).

    Example::

        shapes = ContentShapes(read_message=lambda m: (m["role"], content_parts(m["content"])))
        shapes.conversation([{"role": "system", "content": "Be brief"}, {"role": "user", "content": "hi"}])
    """

    __slots__ = ("_convert_message", "_read_document", "_read_message", "_read_output")

    def __init__(
        self,
        *,
        read_message: ReadMessage,
        read_output: ReadOutput | None = None,
        read_document: ReadDocument | None = None,
    ) -> None:
        self._read_message = read_message
        self._read_output = read_output or _output_as_message
        self._read_document = read_document or _document_as_text
        # one bound method for good: the conversion memo tells converters apart by identity
        self._convert_message = self._message

    def message(self, message: Any) -> Message:
        """A message in the conventions' shape. While a chunk renders, a message object is
        converted once and the result shared (see :mod:`.conversion_memo`): never change it."""
        return converted_once(message, self._convert_message)

    def _message(self, message: Any) -> Message:
        role, parts = self._read_message(message)
        return {"role": role, "parts": parts}

    def messages(self, messages: Iterable[Any]) -> list[Message]:
        return [self.message(m) for m in messages]

    def system_parts(self, messages: Iterable[Any]) -> list[Part] | None:
        """The system messages' parts (Sentry's ``gen_ai.system_instructions``), or None."""
        parts: list[Part] = []
        for message in messages:
            converted = self.message(message)
            if converted["role"] == "system":
                parts.extend(converted["parts"])
        return parts or None

    def conversation(self, messages: Iterable[Any]) -> list[Message]:
        """The messages other than system instructions (Sentry's ``gen_ai.input.messages``)."""
        converted = (self.message(m) for m in messages)
        return [m for m in converted if m["role"] != "system"]

    def output_messages(self, outputs: Iterable[Any]) -> list[Message]:
        """A model's outputs as assistant messages, each with its finish reason when known."""
        out = []
        for output in outputs:
            message, text, reason = self._read_output(output)
            if message is not None:
                item = dict(self.message(message))  # a copy: the shape may be shared within the chunk
            else:
                item = {"role": "assistant", "parts": [text_part(text)]}
            item["role"] = "assistant"
            if reason:
                item["finish_reason"] = reason
            out.append(item)
        return out

    def documents(self, items: Iterable[Any]) -> list[dict[str, Any]]:
        return [document(self._read_document(item)) for item in items]


def _output_as_message(output: Any) -> tuple[Any, Any, str | None]:
    return getattr(output, "message", None), getattr(output, "text", ""), None


def _document_as_text(item: Any) -> Document:
    return Document(text=item)


# --------------------------------------------------------------------------- tool definitions


def tool_definitions(tools: Any) -> list[dict[str, Any]] | Any:
    """Tool definitions in the conventions' flat shape ``{"type", "name", "description", "parameters"}``.

    Accepts OpenAI's nested ``{"type": "function", "function": {...}}`` form (what LangChain and
    LlamaIndex pass to chat models), the flat form, Anthropic's ``input_schema`` form, and
    objects with a ``name``; anything else is kept as it is.

    >>> tool_definitions([{"type": "function", "function": {"name": "search", "parameters": {}}}])
    [{'type': 'function', 'name': 'search', 'parameters': {}}]
    """
    if not isinstance(tools, (list, tuple)):
        return tools
    return [_tool_definition(tool) for tool in tools]


def _tool_definition(tool: Any) -> Any:
    if not isinstance(tool, Mapping):
        name = getattr(tool, "name", None)
        if not isinstance(name, str):
            return tool
        tool = {"name": name, "description": getattr(tool, "description", None)}
    function = tool.get("function")
    source = function if isinstance(function, Mapping) else tool
    flat: dict[str, Any] = {"type": tool.get("type") or "function"}
    for key in ("name", "description"):
        if source.get(key) is not None:
            flat[key] = source[key]
    parameters = source.get("parameters", source.get("input_schema"))
    if parameters is not None:
        flat["parameters"] = parameters
    return flat if "name" in flat else dict(tool)


# --------------------------------------------------------------------------- providers

#: Provider hints (LangChain's ``ls_provider`` values, LlamaIndex's class names), folded by
#: :func:`_fold`, to OpenTelemetry's ``gen_ai.provider.name`` values.
_PROVIDERS = {
    "openai": "openai",
    "openairesponses": "openai",
    "azure": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "anthropic": "anthropic",
    "googlegenai": "gcp.gemini",
    "gemini": "gcp.gemini",
    "googlevertexai": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "googleanthropicvertex": "gcp.vertex_ai",
    "amazonbedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrockconverse": "aws.bedrock",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "ollama": "ollama",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
    "fireworks": "fireworks",
    "together": "together",
    "ibm": "ibm.watsonx.ai",
}


def _fold(hint: str) -> str:
    return hint.lower().replace("_", "")


def provider_name(hint: str) -> str | None:
    """OpenTelemetry's provider name for a framework's hint (``"azure_openai"``, ``"AzureOpenAI"``,
    ``"OpenAIEmbedding"``), or None when the hint names no known provider.

    >>> provider_name("google_genai"), provider_name("AzureOpenAIEmbedding"), provider_name("MyLLM")
    ('gcp.gemini', 'azure.ai.openai', None)
    """
    folded = _fold(hint)
    return _PROVIDERS.get(folded) or _PROVIDERS.get(folded.removesuffix("embedding"))
