"""LangChain and LangGraph: a callback handler that turns runs into Sentry spans.

Usage::

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    handler = SentryCallbackHandler(user="user_12345", session_id="session_abc")
    chain.invoke(inputs, config={"callbacks": [handler]})

The handler is thin: it reads LangChain's events and hands framework-neutral runs to the
shared recorder. Every method swallows its own errors (logged once per kind), so tracing can
never break the user's chain.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from . import _state
from . import attributes as attr
from ._logging import log_once
from .message_shapes import tool_definitions
from .metadata import MetadataLayer
from .recorder import AGENT, CHAIN, CHAT, COMPLETION, RETRIEVER, TOOL, Run
from .usage import Usage, detect, from_langchain, from_openai

__all__ = ["SentryCallbackHandler", "set_global_handler", "unset_global_handler"]

HIDDEN_TAG = "langsmith:hidden"
_GRAPH_STEP_TAG = "graph:step:"
#: LangGraph raises these to steer the graph (interrupts, commands to a parent graph).
_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})
_AGENT_CHAINS = frozenset({"AgentExecutor"})
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*(<.*>)?")

#: LangChain's ``ls_provider`` values to OpenTelemetry's ``gen_ai.provider.name`` values.
_PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "google_genai": "gcp.gemini",
    "google_vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
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

_PARAMS: tuple[tuple[str, tuple[str, ...], type], ...] = (
    (attr.REQUEST_TEMPERATURE, ("temperature", "ls_temperature"), float),
    (
        attr.REQUEST_MAX_TOKENS,
        ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict", "ls_max_tokens"),
        int,
    ),
    (attr.REQUEST_TOP_P, ("top_p",), float),
    (attr.REQUEST_TOP_K, ("top_k",), int),
    (attr.REQUEST_FREQUENCY_PENALTY, ("frequency_penalty",), float),
    (attr.REQUEST_PRESENCE_PENALTY, ("presence_penalty",), float),
    (attr.REQUEST_SEED, ("seed",), str),
    (attr.REQUEST_REASONING_LEVEL, ("reasoning_effort",), str),
)

F = TypeVar("F", bound=Callable[..., Any])


def _guard(method: F) -> F:
    """Never let a tracing problem reach the user's chain: log it once per kind instead."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            log_once(
                f"langchain-{method.__name__}-{type(exc).__name__}",
                logging.WARNING,
                "sentry_llm_callbacks: %s failed and was skipped: %r",
                method.__name__,
                exc,
            )
            return None

    return cast(F, wrapper)


class SentryCallbackHandler(BaseCallbackHandler):
    """LangChain callback handler that sends every run as a span to the configured destination.

    ``user``, ``session_id``, ``trace`` (a dict with ``trace_id``, ``trace_name``, ``span_name``,
    ``generation_name``, ``parent_span_id``, ``environment``, ``release`` and any custom keys)
    and ``privacy_mode`` apply to every run this handler sees; a run's own
    ``config["metadata"]`` overrides them key by key. Raises :class:`ConfigurationError` for
    bad values. One handler may be shared across threads, asyncio tasks and invocations.

    Example::

        handler = SentryCallbackHandler(user="user_12345", trace={"team": "ml"})
        chain.invoke(inputs, config={"callbacks": [handler],
                                     "metadata": {"trace": {"trace_name": "Error Analysis Agent"}}})
    """

    run_inline = True  # called inline under asyncio instead of through a thread pool
    raise_error = False

    def __init__(
        self,
        *,
        user: str | None = None,
        session_id: str | None = None,
        trace: Mapping[str, Any] | None = None,
        privacy_mode: bool | None = None,
    ) -> None:
        super().__init__()
        self._layer = MetadataLayer.build(
            user=user, session_id=session_id, trace=trace, privacy_mode=privacy_mode, strict=True
        )
        self._recorder = _state.recorder

    def __repr__(self) -> str:
        return f"SentryCallbackHandler(user={self._layer.user!r}, session_id={self._layer.session_id!r})"

    # -- shared helpers ---------------------------------------------------------------

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        *,
        kind: str,
        name: str | None,
        explicit: bool,
        attributes: dict[str, Any] | None = None,
    ) -> Run | None:
        under_hidden = False
        if tags and HIDDEN_TAG in tags:
            # LangChain passes tags down: only the run where the tag starts is hidden; runs
            # below it are recorded and attach to the nearest recorded ancestor.
            under_hidden = self._recorder.is_under_hidden(parent_run_id)
            if not under_hidden:
                self._recorder.hide_run(run_id, parent_run_id)
                return None
        return self._recorder.start_run(
            run_id,
            parent_run_id,
            kind=kind,
            name=name,
            explicit_name=explicit,
            handler_layer=self._layer,
            run_metadata=metadata,
            attributes=attributes,
            under_hidden=under_hidden,
        )

    def _content(self, run: Run | None, key: str, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
        if run is None or run.policy.private or value is None:
            return
        self._recorder.set_content(run, key, value, convert)

    def _end(
        self,
        run_id: UUID,
        key: str | None = None,
        value: Any = None,
        convert: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if key is not None:
            self._content(self._recorder.get(run_id), key, value, convert)
        self._recorder.end_run(run_id, **kwargs)

    def _error(self, error: BaseException, run_id: UUID) -> None:
        if _is_control_flow(error):
            self._recorder.end_run(run_id, attributes={attr.LANGGRAPH_INTERRUPTED: True})
        else:
            self._recorder.fail_run(run_id, error)

    # -- chains, LangGraph graphs and nodes ---------------------------------------------

    @_guard
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized) or "chain"
        meta = metadata or {}
        kind = CHAIN
        attributes: dict[str, Any] = {}
        node = meta.get("langgraph_node")
        if name in _AGENT_CHAINS or (meta.get("ls_integration") == "langgraph" and node is None):
            kind = AGENT
            attributes[attr.AGENT_NAME] = meta.get("lc_agent_name") or name
        elif node is not None and tags and any(t.startswith(_GRAPH_STEP_TAG) for t in tags):
            attributes[attr.LANGGRAPH_NODE] = str(node)
            step = meta.get("langgraph_step")
            if isinstance(step, int):
                attributes[attr.LANGGRAPH_STEP] = step
            if parent_run_id is not None:  # a node's parent is a graph: a (sub)graph is an agent
                self._recorder.promote_to_agent(parent_run_id, meta.get("lc_agent_name"))
        run = self._start(
            run_id,
            parent_run_id,
            tags,
            metadata,
            kind=kind,
            name=name,
            explicit=_is_explicit_chain_name(name, serialized, meta),
            attributes=attributes,
        )
        self._content(run, attr.INPUT_VALUE, inputs, _plain)

    @_guard
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, attr.OUTPUT_VALUE, outputs, _plain)

    @_guard
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    # -- models -------------------------------------------------------------------------

    def _start_model(
        self,
        kind: str,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> Run | None:
        params = kwargs.get("invocation_params") or {}
        meta = metadata or {}
        model = _model_name(params, meta, serialized)
        attributes = _request_attributes(params, meta)
        if model:
            attributes[attr.REQUEST_MODEL] = model
        explicit = kwargs.get("name")
        return self._start(
            run_id,
            parent_run_id,
            tags,
            metadata,
            kind=kind,
            name=explicit or model or _serialized_name(serialized) or kind,
            explicit=bool(explicit),
            attributes=attributes,
        )

    @_guard
    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._start_model(CHAT, serialized, run_id, parent_run_id, tags, metadata, kwargs)
        if run is None or run.policy.private:
            return
        prompt = messages[0] if messages else []
        self._content(run, attr.SYSTEM_INSTRUCTIONS, prompt, _system_parts)
        self._content(run, attr.INPUT_MESSAGES, prompt, _conversation)
        tools = (kwargs.get("invocation_params") or {}).get("tools")
        if tools:
            self._content(run, attr.TOOL_DEFINITIONS, tools, tool_definitions)

    @_guard
    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._start_model(COMPLETION, serialized, run_id, parent_run_id, tags, metadata, kwargs)
        if prompts:
            self._content(run, attr.INPUT_MESSAGES, prompts[0], _prompt_messages)

    @_guard
    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.mark_first_chunk(run_id)

    @_guard
    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._recorder.get(run_id)
        if run is None:
            self._recorder.end_run(run_id)
            return
        generations = response.generations[0] if getattr(response, "generations", None) else []
        llm_output = response.llm_output if isinstance(getattr(response, "llm_output", None), dict) else {}
        attributes, usage = _response_attributes(generations, llm_output)
        if generations and not run.policy.private:
            self._content(run, attr.OUTPUT_MESSAGES, generations, _output_messages)
        self._recorder.end_run(run_id, usage=usage, attributes=attributes)

    @_guard
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    # -- tools and retrievers -------------------------------------------------------------

    @_guard
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        tool = _serialized_name(serialized) or "tool"
        attributes: dict[str, Any] = {attr.TOOL_NAME: tool}
        description = (serialized or {}).get("description")
        if isinstance(description, str) and description:
            attributes[attr.TOOL_DESCRIPTION] = description[:1024]
        explicit = kwargs.get("name")
        run = self._start(
            run_id,
            parent_run_id,
            tags,
            metadata,
            kind=TOOL,
            name=explicit or tool,
            explicit=bool(explicit and explicit != tool),
            attributes=attributes,
        )
        self._content(run, attr.TOOL_CALL_ARGUMENTS, inputs if inputs is not None else input_str, _plain)

    @_guard
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, attr.TOOL_CALL_RESULT, output, _tool_output)

    @_guard
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    @_guard
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized) or "retriever"
        run = self._start(
            run_id,
            parent_run_id,
            tags,
            metadata,
            kind=RETRIEVER,
            name=name,
            explicit=_is_explicit_chain_name(name, serialized, metadata or {}),
        )
        self._content(run, attr.INPUT_VALUE, query)

    @_guard
    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        count = len(documents) if documents is not None else 0
        self._end(
            run_id, attr.RETRIEVAL_DOCUMENTS, documents, _documents, attributes={attr.RETRIEVAL_DOCUMENT_COUNT: count}
        )

    @_guard
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    # -- events inside a run ----------------------------------------------------------------

    @_guard
    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        tool = getattr(action, "tool", None)
        self._recorder.add_event(
            run_id,
            "agent_action",
            {attr.TOOL_NAME: str(tool)} if tool else None,
            content={attr.TOOL_CALL_ARGUMENTS: _plain(getattr(action, "tool_input", None))},
        )

    @_guard
    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.add_event(
            run_id, "agent_finish", content={attr.OUTPUT_VALUE: getattr(finish, "return_values", None)}
        )

    @_guard
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        attempt = getattr(retry_state, "attempt_number", None)
        self._recorder.add_event(run_id, "retry", {"retry.attempt": attempt} if isinstance(attempt, int) else None)

    @_guard
    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.add_event(run_id, str(name), None, content={"data": data})


# --------------------------------------------------------------------------- global handler


class _GlobalSlot:
    """Stands where LangChain's configure hook expects a ContextVar: one handler for every
    thread (a ContextVar would not reach threads started by the app)."""

    handler: SentryCallbackHandler | None = None

    def get(self, default: Any = None) -> SentryCallbackHandler | None:
        return self.handler


_slot = _GlobalSlot()
_hook_registered = False


def set_global_handler(**handler_kwargs: Any) -> SentryCallbackHandler:
    """Trace every LangChain run in the process, no ``callbacks=`` needed.

    A run given a :class:`SentryCallbackHandler` explicitly is traced once, by that handler.

    Example::

        from sentry_llm_callbacks.langchain import set_global_handler
        set_global_handler(user="user_12345")
    """
    global _hook_registered
    handler = SentryCallbackHandler(**handler_kwargs)
    if not _hook_registered:
        from langchain_core.tracers.context import register_configure_hook

        register_configure_hook(cast(Any, _slot), True, SentryCallbackHandler)
        _hook_registered = True
    _slot.handler = handler
    return handler


def unset_global_handler() -> None:
    """Stop tracing LangChain runs globally.

    Example::

        unset_global_handler()
    """
    _slot.handler = None


# --------------------------------------------------------------------------- small readers


def _is_control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW for cls in type(error).__mro__)


def _serialized_name(serialized: Mapping[str, Any] | None) -> str | None:
    if not isinstance(serialized, Mapping):
        return None
    name = serialized.get("name")
    if isinstance(name, str) and name:
        return name
    ident = serialized.get("id")
    if isinstance(ident, list) and ident and isinstance(ident[-1], str):
        return ident[-1]
    return None


def _is_explicit_chain_name(name: str, serialized: Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> bool:
    """LangChain passes a chain's class or function name when no ``run_name`` is set."""
    if metadata.get("langgraph_node") == name:
        return True  # LangGraph node names are chosen by the user
    default = _serialized_name(serialized)
    if default:
        return name != default
    return not _IDENTIFIER.fullmatch(name)


def _model_name(params: Mapping[str, Any], meta: Mapping[str, Any], serialized: Mapping[str, Any] | None) -> str | None:
    for source, key in (
        (params, "model"),
        (params, "model_name"),
        (params, "model_id"),
        (meta, "ls_model_name"),
        (params, "deployment_name"),
    ):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    kwargs = (serialized or {}).get("kwargs")
    if isinstance(kwargs, Mapping):
        for key in ("model", "model_name", "model_id"):
            value = kwargs.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _request_attributes(params: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    provider = meta.get("ls_provider")
    if isinstance(provider, str) and provider:
        out[attr.PROVIDER_NAME] = _PROVIDERS.get(provider.lower(), provider.lower())
    for name, keys, kind in _PARAMS:
        for key in keys:
            value = params.get(key) if key in params else meta.get(key)
            if value is None or isinstance(value, bool):
                continue
            try:
                out[name] = kind(value)
            except (TypeError, ValueError):
                continue
            break
    stop = params.get("stop") or meta.get("ls_stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, (list, tuple)) and stop and all(isinstance(s, str) for s in stop):
        out[attr.REQUEST_STOP_SEQUENCES] = list(stop)
    return out


def _response_attributes(
    generations: Sequence[Any], llm_output: Mapping[str, Any]
) -> tuple[dict[str, Any], Usage | None]:
    out: dict[str, Any] = {}
    first = generations[0] if generations else None
    message = getattr(first, "message", None)
    meta = getattr(message, "response_metadata", None) or {}
    model = meta.get("model_name") or meta.get("model") or llm_output.get("model_name") or llm_output.get("model")
    if isinstance(model, str) and model:
        out[attr.RESPONSE_MODEL] = model
    response_id = meta.get("id") or llm_output.get("id")
    if isinstance(response_id, str) and response_id:
        out[attr.RESPONSE_ID] = response_id
    reasons = []
    for gen in generations:
        info = getattr(gen, "generation_info", None) or {}
        gen_meta = getattr(getattr(gen, "message", None), "response_metadata", None) or {}
        reason = (
            info.get("finish_reason")
            or gen_meta.get("finish_reason")
            or gen_meta.get("stop_reason")
            or gen_meta.get("done_reason")
        )
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    if reasons:
        out[attr.RESPONSE_FINISH_REASONS] = reasons
    return out, _usage(message, meta, llm_output)


def _usage(message: Any, meta: Mapping[str, Any], llm_output: Mapping[str, Any]) -> Usage | None:
    """``usage_metadata`` first (LangChain's normalised counts), then the provider's own shape in
    the response metadata; a provider-reported cost (OpenRouter's ``usage.cost``) is kept either way."""
    usage = from_langchain(getattr(message, "usage_metadata", None))
    if usage is None:
        return detect(meta) or detect(llm_output)
    raw = meta.get("token_usage") or llm_output.get("token_usage")
    if isinstance(raw, Mapping) and raw.get("cost") is not None:
        return usage.with_cost_from(from_openai(raw))
    return usage


# --------------------------------------------------------------------------- content shapes

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "chat": "user",
    "developer": "system",
    "AIMessageChunk": "assistant",
}


def _role(message: Any) -> str:
    kind = getattr(message, "type", None)
    if isinstance(kind, str):
        if kind == "chat":
            role = getattr(message, "role", None)
            return role if isinstance(role, str) else "user"
        return _ROLES.get(kind, kind.removesuffix("Chunk").lower())
    if isinstance(message, Mapping):
        return str(message.get("role", "user"))
    return "user"


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append({"type": "text", "content": block})
            elif isinstance(block, Mapping):
                kind = block.get("type")
                if kind == "text":
                    parts.append({"type": "text", "content": block.get("text", "")})
                elif kind in ("reasoning", "thinking"):
                    parts.append({"type": "reasoning", "content": block.get("reasoning") or block.get("thinking", "")})
                else:
                    parts.append(dict(block))
    return parts


def _message(message: Any) -> dict[str, Any]:
    role = _role(message)
    parts = _parts(getattr(message, "content", message if isinstance(message, str) else None))
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(
            {"type": "tool_call", "id": call.get("id"), "name": call.get("name"), "arguments": call.get("args")}
        )
    if role == "tool":
        parts = [
            {
                "type": "tool_call_response",
                "id": getattr(message, "tool_call_id", None),
                "result": getattr(message, "content", None),
            }
        ]
    return {"role": role, "parts": parts}


def _messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    return [_message(m) for m in messages]


def _system_parts(messages: Sequence[Any]) -> list[dict[str, Any]] | None:
    """The system messages' parts (Sentry's ``gen_ai.system_instructions``), or None."""
    parts = [part for m in messages if _role(m) == "system" for part in _parts(getattr(m, "content", None))]
    return parts or None


def _conversation(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """The messages other than system instructions."""
    return [_message(m) for m in messages if _role(m) != "system"]


def _prompt_messages(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]


def _output_messages(generations: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for gen in generations:
        message = getattr(gen, "message", None)
        item = (
            _message(message)
            if message is not None
            else {"role": "assistant", "parts": [{"type": "text", "content": getattr(gen, "text", "")}]}
        )
        item["role"] = "assistant"
        info = getattr(gen, "generation_info", None) or {}
        reason = info.get("finish_reason") or (getattr(message, "response_metadata", None) or {}).get("finish_reason")
        if reason:
            item["finish_reason"] = reason
        out.append(item)
    return out


def _plain(value: Any, depth: int = 0) -> Any:
    """Chain inputs and outputs with LangChain messages and prompt values in the role / parts
    shape (cheaper than pydantic's dump, and what Sentry shows as a conversation)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(getattr(value, "type", None), str) and hasattr(value, "content"):
        return _message(value)
    to_messages = getattr(value, "to_messages", None)
    if callable(to_messages):
        try:
            return _messages(to_messages())
        except Exception:
            return value
    if depth < 3:
        if isinstance(value, Mapping):
            return {k: _plain(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_plain(v, depth + 1) for v in value]
    return value


def _tool_output(output: Any) -> Any:
    content = getattr(output, "content", None)
    return _plain(content if content is not None and getattr(output, "type", None) == "tool" else output)


def _documents(documents: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for doc in documents:
        item: dict[str, Any] = {"content": getattr(doc, "page_content", doc)}
        if getattr(doc, "id", None):
            item["id"] = doc.id
        if getattr(doc, "metadata", None):
            item["metadata"] = _plain(doc.metadata)
        out.append(item)
    return out


# --------------------------------------------------------------------------- nesting across frameworks


def _current_langchain_run() -> UUID | None:
    """The LangChain run whose code is running now (a tool calling LlamaIndex, say)."""
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get()
    if not config:
        return None
    return getattr(config.get("callbacks"), "parent_run_id", None)


if _current_langchain_run not in _state.recorder.ambient_parents:
    _state.recorder.ambient_parents.append(_current_langchain_run)
