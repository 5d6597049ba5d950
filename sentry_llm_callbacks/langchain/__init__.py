"""LangChain and LangGraph: a callback handler that turns runs into Sentry spans.

Usage::

    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    handler = SentryCallbackHandler(user="user_12345", session_id="session_abc")
    chain.invoke(inputs, config={"callbacks": [handler]})

The handler is translation only: it reads LangChain's events into the neutral values of
:mod:`.calls` (a model request and response, a tool call, a retrieval, a chain's input and
output) and the run's metadata into a :class:`~.metadata.MetadataLayer`, and hands them to the
shared recorder, which writes every attribute. Every method swallows its own errors (logged
once per kind), so tracing can never break the user's chain. Each piece read from a payload
(model name, request parameters, usage, finish reasons, messages...) is read by its own small
function, isolated: a malformed payload costs that piece and one warning, and the run is ended
whatever failed.

How a run that did not finish normally ends:

* an exception: ERROR with the exception's type (and message outside Privacy Mode);
* LangGraph control flow is not an error: an ``interrupt()`` (``GraphInterrupt``) ends its runs
  OK marked ``sentry_llm_callbacks.langgraph.interrupted``; a ``Command(graph=Command.PARENT)``
  handoff ends them OK marked ``sentry_llm_callbacks.langgraph.handoff`` (the target node);
* the consumer stopped reading a stream (closed it, or dropped it halfway, sync or async): not an
  error either. Every run the stop ended is OK and marked ``sentry_llm_callbacks.stream.closed_early``.
  LangChain reports this as ``GeneratorExit`` for async streams; for sync streams it swallows the
  ``GeneratorExit`` and ends the outermost run normally while the runs under it are still open,
  which is how it is recognised here;
* the task was cancelled by asyncio: ERROR "cancelled", marked ``sentry_llm_callbacks.run.cancelled``.

Which prompt a model call was made from: a prompt template's run receives the template's own
metadata (``hub.pull`` sets ``lc_hub_owner``, ``lc_hub_repo``, ``lc_hub_commit_hash`` there; an app
may set ``prompt_name`` / ``prompt_version``), and the model run after it in a ``prompt | model``
sequence is its sibling, which does not: the template's run hands its identity to the recorder
(``record_prompt``), which gives it to the run started next under the same parent.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from sentry_llm_callbacks.base.log import callback_failed, guarded, isolated
from sentry_llm_callbacks.core import adapter as contract
from sentry_llm_callbacks.core.calls import (
    ControlFlow,
    GraphStep,
    ModelRequest,
    ModelResponse,
    PromptRef,
    RequestParameters,
    Retrieval,
    ToolCall,
    ToolResult,
)
from sentry_llm_callbacks.core.kinds import RunKind
from sentry_llm_callbacks.core.message_shapes import (
    ContentShapes,
    Document,
    Part,
    content_parts,
    is_mapping,
    provider_name,
    tool_call_part,
    tool_result_part,
)
from sentry_llm_callbacks.core.metadata import (
    PARENT_SPAN_ID,
    PROMPT_NAME,
    PROMPT_VERSION,
    TRACE_ID,
    MetadataLayer,
    prompt_ref,
)
from sentry_llm_callbacks.core.runs import Run
from sentry_llm_callbacks.core.usage import Usage, detect, from_langchain, from_openai

__all__ = ["SentryCallbackHandler", "set_global_handler", "unset_global_handler"]

HIDDEN_TAG = "langsmith:hidden"
_GRAPH_STEP_TAG = "graph:step:"
#: LangGraph raises these to steer the graph (interrupts, commands to a parent graph).
_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})
_HANDOFF = "ParentCommand"
_AGENT_CHAINS = frozenset({"AgentExecutor"})
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*(<.*>)?")
#: What ``hub.pull`` (langchain's hub, LangSmith's ``pull_prompt``) adds to a prompt template's metadata.
_HUB_OWNER, _HUB_REPO, _HUB_COMMIT = "lc_hub_owner", "lc_hub_repo", "lc_hub_commit_hash"
#: The owner LangSmith gives a prompt of the caller's own workspace (pulled as ``name``, not ``owner/name``).
_OWN_WORKSPACE = "-"

#: Each request parameter, the invocation-parameter (or LangSmith metadata) keys it is read
#: from, first found wins, and its type.
_PARAMS: tuple[tuple[str, tuple[str, ...], type], ...] = (
    ("temperature", ("temperature", "ls_temperature"), float),
    ("max_tokens", ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict", "ls_max_tokens"), int),
    ("top_p", ("top_p",), float),
    ("top_k", ("top_k",), int),
    ("frequency_penalty", ("frequency_penalty",), float),
    ("presence_penalty", ("presence_penalty",), float),
    ("seed", ("seed",), str),
    ("reasoning_level", ("reasoning_effort",), str),
)

_FRAMEWORK = "LangChain"
_on_callback = guarded(_FRAMEWORK)


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
        self._recorder = contract.recorder()

    def __repr__(self) -> str:
        return f"SentryCallbackHandler(user={self._layer.user!r}, session_id={self._layer.session_id!r})"

    # -- shared helpers ---------------------------------------------------------------

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Sequence[str],
        metadata: Mapping[str, Any],
        *,
        kind: str,
        name: str | None,
        explicit: bool,
        agent_name: str | None = None,
        graph_step: GraphStep | None = None,
        resumes: bool = False,
    ) -> Run | None:
        run_id, parent_run_id = _key(run_id), _key(parent_run_id)
        under_hidden = False
        if HIDDEN_TAG in tags:
            # LangChain passes tags down: only the run where the tag starts is hidden; runs
            # below it are recorded and attach to the nearest recorded ancestor. A run that
            # carries the tag twice has one of its own besides the inherited one (langchain-core
            # 0.3 merges tags without removing repeats): LangGraph's internal writers.
            under_hidden = self._recorder.is_under_hidden(parent_run_id) and tags.count(HIDDEN_TAG) == 1
            if not under_hidden:
                self._recorder.hide_run(run_id, parent_run_id)
                return None
        layer, steers = _run_metadata(metadata, parent_run_id)
        return self._recorder.start_run(
            run_id,
            parent_run_id,
            kind=kind,
            name=name,
            explicit_name=explicit,
            handler_layer=self._layer,
            run_metadata=layer,
            steers_own_trace=steers,
            agent_name=agent_name,
            graph_step=graph_step,
            under_hidden=under_hidden,
            resumes=resumes,
        )

    def _end(self, run_id: UUID, record: Callable[..., None], *values: Any) -> None:
        """End a run with what it returned; whatever recording that costs, the run ends."""
        run_id = _key(run_id)
        try:
            isolated(record, self._recorder.get(run_id), *values, default=None)
        finally:
            self._recorder.end_run(run_id)

    def _error(self, error: BaseException, run_id: UUID) -> None:
        run_id = _key(run_id)
        control = isolated(_control_flow, error, default=None)
        if control is not None:
            self._recorder.end_by_control_flow(run_id, control)
        else:
            self._recorder.fail_run(run_id, error)

    # -- chains, LangGraph graphs and nodes ---------------------------------------------

    @_on_callback
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
        meta, tag_list = _mapping(metadata), _tag_list(tags)
        try:  # every piece at once; a payload that fails here is read again piece by piece
            name, kind, step, explicit = _chain_start(kwargs.get("name"), serialized, meta, tag_list)
        except Exception:
            name = isolated(_chain_name, kwargs.get("name"), serialized, default=None) or "chain"
            kind, step = isolated(_graph_role, name, meta, tag_list, default=(RunKind.CHAIN, None))
            explicit = isolated(_is_explicit_chain_name, name, serialized, meta, default=False)
        agent_name = _text(meta.get("lc_agent_name"))
        if step is not None and parent_run_id is not None:
            # a node's parent is a graph: a (sub)graph is an agent
            self._recorder.promote_to_agent(_key(parent_run_id), agent_name)
        run = self._start(
            run_id,
            parent_run_id,
            tag_list,
            meta,
            kind=kind,
            name=name,
            explicit=explicit,
            agent_name=agent_name if kind is RunKind.AGENT else None,
            graph_step=step,
            resumes=parent_run_id is None and _is_resume(inputs),
        )
        self._recorder.record_input(run, inputs, _plain)
        if run is not None and (_HUB_REPO in meta or PROMPT_NAME in meta):
            prompt = isolated(_template_prompt, meta, serialized, name, default=None)
            if prompt is not None:
                self._recorder.record_prompt(run, prompt)

    @_on_callback
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if self._recorder.open_descendants(_key(run_id)):
            # LangChain ends a sync stream's run normally when its consumer stops reading; the
            # runs still open under it are what tells the two apart.
            self._close_early(run_id, outputs)
        else:
            self._end(run_id, self._recorder.record_output, outputs, _plain)

    def _close_early(self, run_id: UUID, outputs: Any) -> None:
        run_id = _key(run_id)
        try:
            isolated(self._recorder.record_output, self._recorder.get(run_id), outputs, _plain, default=None)
        finally:
            self._recorder.close_early(run_id)

    @_on_callback
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
        *,
        messages: Any = None,
        prompt: Any = None,
    ) -> None:
        params, meta = _mapping(kwargs.get("invocation_params")), _mapping(metadata)
        try:  # every piece at once; a payload that fails here is read again piece by piece
            model = _model_name(params, meta, serialized)
            provider, parameters = _provider(meta), _parameters(params, meta)
        except Exception:
            model = isolated(_model_name, params, meta, serialized, default=None)
            provider = isolated(_provider, meta, default=None)
            parameters = isolated(_parameters, params, meta, default=None)
        explicit = _text(kwargs.get("name"))
        run = self._start(
            run_id,
            parent_run_id,
            _tag_list(tags),
            meta,
            kind=kind,
            name=explicit or model or isolated(_serialized_name, serialized, default=None) or kind,
            explicit=bool(explicit),
        )
        if run is None:
            return
        request = ModelRequest(
            model=model,
            provider=provider,
            parameters=parameters,
            messages=messages,
            shapes=_SHAPES,
            prompt=prompt,
            tools=params.get("tools"),
        )
        self._recorder.record_request(run, request)

    @_on_callback
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
        first = isolated(_first_prompt, messages, default=None)
        self._start_model(RunKind.CHAT, serialized, run_id, parent_run_id, tags, metadata, kwargs, messages=first)

    @_on_callback
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
        first = isolated(_first_prompt, prompts, default=None)
        self._start_model(RunKind.COMPLETION, serialized, run_id, parent_run_id, tags, metadata, kwargs, prompt=first)

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        # Called for every streamed chunk: guarded in place, without the wrapper's extra call.
        try:
            self._recorder.mark_first_chunk(_key(run_id))
        except Exception as exc:
            callback_failed(_FRAMEWORK, "on_llm_new_token", exc)

    @_on_callback
    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run_id = _key(run_id)
        try:
            run = self._recorder.get(run_id)
            if run is not None:
                self._recorder.record_response(run, _model_response(response))
        finally:
            self._recorder.end_run(run_id)

    @_on_callback
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    # -- tools and retrievers -------------------------------------------------------------

    @_on_callback
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
        tool = isolated(_serialized_name, serialized, default=None) or "tool"
        explicit = _text(kwargs.get("name"))
        run = self._start(
            run_id,
            parent_run_id,
            _tag_list(tags),
            _mapping(metadata),
            kind=RunKind.TOOL,
            name=explicit or tool,
            explicit=bool(explicit and explicit != tool),
        )
        call = ToolCall(
            name=tool,
            description=isolated(_tool_description, serialized, default=None),
            arguments=inputs if inputs is not None else input_str,
            convert=_plain,
        )
        self._recorder.record_tool_call(run, call)

    @_on_callback
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, self._recorder.record_tool_result, ToolResult(output, _tool_output))

    @_on_callback
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    @_on_callback
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
        meta = _mapping(metadata)
        name = isolated(_chain_name, kwargs.get("name"), serialized, default=None) or "retriever"
        run = self._start(
            run_id,
            parent_run_id,
            _tag_list(tags),
            meta,
            kind=RunKind.RETRIEVER,
            name=name,
            explicit=isolated(_is_explicit_chain_name, name, serialized, meta, default=False),
        )
        self._recorder.record_retrieval(run, Retrieval(query=query))

    @_on_callback
    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        count = isolated(_document_count, documents, default=None)
        retrieval = Retrieval(documents=documents, document_count=count, shapes=_SHAPES)
        self._end(run_id, self._recorder.record_retrieval, retrieval)

    @_on_callback
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    # -- events inside a run ----------------------------------------------------------------

    @_on_callback
    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        tool = getattr(action, "tool", None)
        call = ToolCall(name=str(tool) if tool else None, arguments=getattr(action, "tool_input", None), convert=_plain)
        self._recorder.record_agent_action(_key(run_id), call)

    @_on_callback
    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.record_agent_finish(_key(run_id), getattr(finish, "return_values", None))

    @_on_callback
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        attempt = getattr(retry_state, "attempt_number", None)
        self._recorder.record_retry(_key(run_id), attempt if isinstance(attempt, int) else None)

    @_on_callback
    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._recorder.record_custom_event(_key(run_id), str(name), data)


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


def _key(run_id: Any) -> Any:
    """A run id as the run map's key: a UUID by its 128-bit integer, hashed in C (a UUID's own
    hash is a Python call, made several times per callback)."""
    return run_id.int if type(run_id) is UUID else run_id


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else empty: a payload field of the wrong type reads as absent."""
    # is_mapping, written out: this runs several times per callback
    return value if type(value) is dict or (value is not None and isinstance(value, Mapping)) else {}


def _tag_list(tags: Any) -> Sequence[str]:
    """The tags that are strings: LangChain's own list when they all are (it is only read)."""
    if not isinstance(tags, (list, tuple)):
        return ()
    for tag in tags:
        if type(tag) is not str:
            return [t for t in tags if isinstance(t, str)]
    return tags


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_NO_METADATA: tuple[MetadataLayer | None, bool] = (None, False)
#: The last run layer built, with the values it was built from.
_last_layer: tuple[tuple[Any, ...], MetadataLayer] | None = None


def _run_metadata(metadata: Mapping[str, Any], parent_run_id: UUID | None) -> tuple[MetadataLayer | None, bool]:
    """The invocation's own metadata layer (None when it sets none), and whether it steers its
    own trace (it names the trace or the parent span, so the run starts its own trace there).

    LangGraph copies the checkpointer's conversation key, ``config["configurable"]["thread_id"]``,
    into every run's metadata as ``thread_id`` (``ensure_config``, langgraph 0.3 to 1.x): it is
    the layer's ``conversation``."""
    if not metadata:
        return _NO_METADATA
    get = metadata.get
    trace = get("trace")
    values = (
        get("user"),
        get("session_id"),
        trace,
        get("privacy_mode"),
        get("thread_id"),
        get(PROMPT_NAME),
        get(PROMPT_VERSION),
    )
    if values == _UNSET_VALUES:
        return _NO_METADATA
    steers = isinstance(trace, Mapping) and (TRACE_ID in trace or PARENT_SPAN_ID in trace)
    return isolated(_run_layer, values, parent_run_id, default=None), steers


_UNSET_VALUES = (None,) * 7


def _run_layer(values: tuple[Any, ...], parent_run_id: UUID | None) -> MetadataLayer | None:
    """The layer of ``(user, session_id, trace, privacy_mode, thread_id, prompt_name, prompt_version)``.

    LangChain hands every run of an invocation the same metadata values, so a nested run reuses
    the layer built for the values it carries; an invocation's first run always builds its own
    (the app may have changed its metadata since the last one).
    """
    global _last_layer
    last = _last_layer
    if parent_run_id is not None and last is not None and all(map(operator.is_, last[0], values)):
        return last[1]
    user, session_id, trace, privacy_mode, thread_id, prompt_name, prompt_version = values
    layer = MetadataLayer.build(
        user=user,
        session_id=session_id,
        trace=trace,
        privacy_mode=privacy_mode,
        conversation=thread_id,
        prompt_name=prompt_name,
        prompt_version=prompt_version,
        strict=False,
    )
    _last_layer = (values, layer)
    return layer


def _is_resume(inputs: Any) -> bool:
    """A graph invoked with LangGraph's ``Command(resume=...)``: it resumes its thread after an
    interrupt (read by name: this adapter does not import LangGraph)."""
    return type(inputs).__name__ == "Command" and getattr(inputs, "resume", None) is not None


def _template_prompt(meta: Mapping[str, Any], serialized: Mapping[str, Any] | None, name: str) -> PromptRef | None:
    """The named prompt a prompt template's run renders: ``hub.pull``'s metadata (the name as
    it is pulled, ``owner/repo``, or ``repo`` for the caller's own workspace; the commit hash as
    the version), else the template's ``prompt_name`` / ``prompt_version``. None for a run that
    is not a prompt template (an invocation's ``prompt_name`` reaches every run's metadata)."""
    repo = _text(meta.get(_HUB_REPO))
    if repo is not None:
        owner = _text(meta.get(_HUB_OWNER))
        full = f"{owner}/{repo}" if owner is not None and owner != _OWN_WORKSPACE else repo
        return prompt_ref(full, meta.get(_HUB_COMMIT), strict=False)
    if not _is_prompt_template(serialized, name):
        return None
    return prompt_ref(meta.get(PROMPT_NAME), meta.get(PROMPT_VERSION), strict=False)


def _is_prompt_template(serialized: Mapping[str, Any] | None, name: str) -> bool:
    """A prompt template's run: its serialized id is under ``prompts`` (``langchain.prompts.chat``,
    ``langchain_core.prompts.structured``), or, where LangChain passes no serialized form, its
    name is a template class's."""
    ident = _mapping(serialized).get("id")
    if isinstance(ident, list) and len(ident) > 2:
        return ident[1] == "prompts"
    return name.endswith(("PromptTemplate", "Prompt"))


def _control_flow(error: BaseException) -> ControlFlow | None:
    """LangGraph control flow (not an error), or None for a real error.

    A ``Command(graph=Command.PARENT, goto=...)`` hands off to the parent graph, to the target
    node when it is one name; interrupts and other bubbling signals are interrupts."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names.isdisjoint(_CONTROL_FLOW):
        return None
    if _HANDOFF in names:
        command = error.args[0] if error.args else None
        return ControlFlow(handoff=True, target=_text(getattr(command, "goto", None)))
    return ControlFlow()


def _chain_start(
    given: Any, serialized: Mapping[str, Any] | None, meta: Mapping[str, Any], tags: Sequence[str]
) -> tuple[str, str, GraphStep | None, bool]:
    """A chain run's name, kind, graph step and whether the name was chosen by the user."""
    name = given if type(given) is str and given else _chain_name(given, serialized) or "chain"
    if "langgraph_node" in meta or "ls_integration" in meta or name in _AGENT_CHAINS:
        kind, step = _graph_role(name, meta, tags)
    else:
        kind, step = RunKind.CHAIN, None
    return name, kind, step, _is_explicit_chain_name(name, serialized, meta)


def _chain_name(given: Any, serialized: Mapping[str, Any] | None) -> str | None:
    return _text(given) or _serialized_name(serialized)


def _graph_role(name: str, meta: Mapping[str, Any], tags: Sequence[str]) -> tuple[str, GraphStep | None]:
    """A chain's kind and graph step: a graph is an agent, a graph step is a node."""
    node = meta.get("langgraph_node")
    if name in _AGENT_CHAINS or (meta.get("ls_integration") == "langgraph" and node is None):
        return RunKind.AGENT, None
    if node is None:
        return RunKind.CHAIN, None
    for tag in tags:
        if tag.startswith(_GRAPH_STEP_TAG):
            break
    else:
        return RunKind.CHAIN, None
    step = meta.get("langgraph_step")
    return RunKind.CHAIN, GraphStep(str(node), step if isinstance(step, int) and not isinstance(step, bool) else None)


def _document_count(documents: Sequence[Any] | None) -> int:
    return len(documents) if documents is not None else 0


def _tool_description(serialized: Mapping[str, Any] | None) -> str | None:
    return _text(_mapping(serialized).get("description"))


def _first_prompt(prompts: Sequence[Any]) -> Any:
    """The first prompt of a batch (LangChain starts one model run per prompt)."""
    return prompts[0] if prompts else None


def _serialized_name(serialized: Mapping[str, Any] | None) -> str | None:
    if not is_mapping(serialized):
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
    return not _is_identifier(name)


@functools.lru_cache(maxsize=4096)  # run names repeat
def _is_identifier(name: str) -> bool:
    """Whether ``name`` reads as a class or function name (LangChain's default run name)."""
    return _IDENTIFIER.fullmatch(name) is not None


def _model_name(params: Mapping[str, Any], meta: Mapping[str, Any], serialized: Mapping[str, Any] | None) -> str | None:
    """The requested model: from the invocation parameters, LangSmith metadata, or the constructor."""
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
    kwargs = _mapping(serialized).get("kwargs")
    if is_mapping(kwargs):
        for key in ("model", "model_name", "model_id"):
            value = kwargs.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _provider(meta: Mapping[str, Any]) -> str | None:
    """LangSmith's ``ls_provider`` as OpenTelemetry names it (unknown ones as they are, lowercased)."""
    provider = _text(meta.get("ls_provider"))
    return provider_name(provider) or provider.lower() if provider else None


def _parameters(params: Mapping[str, Any], meta: Mapping[str, Any]) -> RequestParameters:
    found: dict[str, Any] = {}
    for name, keys, kind in _PARAMS:
        for key in keys:
            value = params.get(key) if key in params else meta.get(key)
            if value is None or isinstance(value, bool):
                continue
            try:
                found[name] = kind(value)
            except (TypeError, ValueError):
                continue
            break
    stop = params.get("stop") or meta.get("ls_stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, (list, tuple)) and stop and all(isinstance(s, str) for s in stop):
        found["stop_sequences"] = list(stop)
    return RequestParameters(**found)


def _generations(response: Any) -> list[Any]:
    """The first prompt's generations of an ``LLMResult`` (one model run has one prompt)."""
    generations = getattr(response, "generations", None)
    if not generations:
        return []
    first = generations[0]
    return list(first) if isinstance(first, (list, tuple)) else []


def _llm_output(response: Any) -> Mapping[str, Any]:
    return _mapping(getattr(response, "llm_output", None))


def _response_metadata(generation: Any) -> Mapping[str, Any]:
    return _mapping(getattr(getattr(generation, "message", None), "response_metadata", None))


def _model_response(response: Any) -> ModelResponse:
    """An ``LLMResult`` as a model response, read at once; a payload that fails that is read
    again field by field (:func:`_model_response_by_field`)."""
    try:
        generations = _generations(response)
        llm_output = _llm_output(response)
        first = _first_response_metadata(generations)
        return ModelResponse(
            _response_model(first, llm_output),
            _response_id(first, llm_output),
            _finish_reasons(generations),
            generations,
            _SHAPES,
            _usage(generations, first, llm_output),
        )
    except Exception:
        return _model_response_by_field(response)


def _model_response_by_field(response: Any) -> ModelResponse:
    """An ``LLMResult`` as a model response, each field read on its own: one malformed field
    costs only itself."""
    generations = isolated(_generations, response, default=[])
    llm_output = isolated(_llm_output, response, default={})
    first = isolated(_first_response_metadata, generations, default={})
    return ModelResponse(
        model=isolated(_response_model, first, llm_output, default=None),
        response_id=isolated(_response_id, first, llm_output, default=None),
        finish_reasons=isolated(_finish_reasons, generations, default=None),
        outputs=generations,
        shapes=_SHAPES,
        usage=isolated(_usage, generations, first, llm_output, default=None),
    )


def _first_response_metadata(generations: Sequence[Any]) -> Mapping[str, Any]:
    """The first generation's response metadata (where providers put model, id and usage)."""
    return _response_metadata(generations[0]) if generations else {}


def _response_model(meta: Mapping[str, Any], llm_output: Mapping[str, Any]) -> str | None:
    for source, key in ((meta, "model_name"), (meta, "model"), (llm_output, "model_name"), (llm_output, "model")):
        value = _text(source.get(key))
        if value:
            return value
    return None


def _response_id(meta: Mapping[str, Any], llm_output: Mapping[str, Any]) -> str | None:
    return _text(meta.get("id")) or _text(llm_output.get("id"))


def _finish_reasons(generations: Sequence[Any]) -> list[str] | None:
    reasons = [reason for gen in generations if (reason := _finish_reason(gen))]
    return reasons or None


def _finish_reason(generation: Any) -> str | None:
    info = _mapping(getattr(generation, "generation_info", None))
    meta = _response_metadata(generation)
    for source, key in ((info, "finish_reason"), (meta, "finish_reason"), (meta, "stop_reason"), (meta, "done_reason")):
        value = _text(source.get(key))
        if value:
            return value
    return None


def _usage(generations: Sequence[Any], meta: Mapping[str, Any], llm_output: Mapping[str, Any]) -> Usage | None:
    """``usage_metadata`` first (LangChain's normalised counts), then the provider's own shape in
    the response metadata (``meta``, the first generation's); a provider-reported cost
    (OpenRouter's ``usage.cost``) is kept either way."""
    first = generations[0] if generations else None
    usage = from_langchain(getattr(getattr(first, "message", None), "usage_metadata", None))
    if usage is None:
        return detect(meta) or detect(llm_output)
    raw = meta.get("token_usage") or llm_output.get("token_usage")
    if is_mapping(raw) and raw.get("cost") is not None:
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


def _read_message(message: Any) -> tuple[str, list[Part]]:
    """A LangChain message (or a role / content dict) as its role and content parts."""
    role = _role(message)
    if role == "tool":
        return role, [tool_result_part(getattr(message, "tool_call_id", None), getattr(message, "content", None))]
    parts = content_parts(getattr(message, "content", message if isinstance(message, str) else None))
    if role == "assistant":  # only AI messages have tool calls (asking others costs a pydantic miss)
        for call in getattr(message, "tool_calls", None) or ():
            parts.append(tool_call_part(call.get("id"), call.get("name"), call.get("args")))
    return role, parts


def _read_generation(generation: Any) -> tuple[Any, Any, str | None]:
    return getattr(generation, "message", None), getattr(generation, "text", ""), _finish_reason(generation)


def _read_document(doc: Any) -> Document:
    metadata = getattr(doc, "metadata", None)
    return Document(
        text=getattr(doc, "page_content", doc),
        id=getattr(doc, "id", None),
        metadata=_plain(metadata) if metadata else None,
    )


_SHAPES = ContentShapes(read_message=_read_message, read_output=_read_generation, read_document=_read_document)


_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAX_DEPTH = 5


def _plain(value: Any, depth: int = 0) -> Any:
    """Chain inputs and outputs with LangChain messages and prompt values in the role / parts
    shape (cheaper than pydantic's dump, and what Sentry shows as a conversation), down to
    ``_MAX_DEPTH`` containers deep (a LangGraph ``Send``'s state holds its messages four deep)."""
    # Exact built-in types first: a LangGraph state is mostly these, and they are neither
    # messages nor prompt values, so the probes below would only cost time.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth < _MAX_DEPTH:
        if kind is dict:
            return {k: _plain(v, depth + 1) for k, v in value.items()}
        if kind is list or kind is tuple:
            return [_plain(v, depth + 1) for v in value]
    return _plain_object(value, depth)


def _plain_object(value: Any, depth: int) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    # LangChain's own messages and prompt values by class first: probing a pydantic model for an
    # attribute it lacks costs microseconds (its __getattr__ raises), the class check nothing.
    message_class, prompt_value_class = _langchain_classes()
    if isinstance(value, message_class):
        return _SHAPES.message(value)
    if isinstance(value, prompt_value_class):
        try:
            return _SHAPES.messages(value.to_messages())
        except Exception:
            return value
    if type(value).__name__ == "Send" and hasattr(value, "node"):
        # LangGraph's Send (read by name: this adapter does not import LangGraph): the state it
        # carries reads like any other, its messages as role / parts.
        return {"type": "Send", "node": value.node, "arg": _plain(getattr(value, "arg", None), depth + 1)}
    if isinstance(getattr(value, "type", None), str) and hasattr(value, "content"):
        return _SHAPES.message(value)
    to_messages = getattr(value, "to_messages", None)
    if callable(to_messages):
        try:
            return _SHAPES.messages(to_messages())
        except Exception:
            return value
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return {k: _plain(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_plain(v, depth + 1) for v in value]
    return value


_CLASSES: tuple[type, type] | None = None


def _langchain_classes() -> tuple[type, type]:
    """``BaseMessage`` and ``PromptValue``, imported at the first conversion (on the export
    thread), not with this module."""
    global _CLASSES
    if _CLASSES is None:
        from langchain_core.messages import BaseMessage
        from langchain_core.prompt_values import PromptValue

        _CLASSES = (BaseMessage, PromptValue)
    return _CLASSES


def _tool_output(output: Any) -> Any:
    content = getattr(output, "content", None)
    return _plain(content if content is not None and getattr(output, "type", None) == "tool" else output)


# --------------------------------------------------------------------------- nesting across frameworks


def _current_langchain_run() -> UUID | None:
    """The LangChain run whose code is running now (a tool calling LlamaIndex, say)."""
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get()
    if not config:
        return None
    return _key(getattr(config.get("callbacks"), "parent_run_id", None))


ADAPTER = contract.FrameworkAdapter("langchain", set_global_handler, unset_global_handler, _current_langchain_run)
contract.register(ADAPTER)
