"""LlamaIndex: queries, retrievals, synthesis, LLM calls, embeddings, tools and agents as spans.

Usage, the way LlamaIndex users already work::

    from llama_index.core import Settings
    from llama_index.core.callbacks import CallbackManager
    from sentry_llm_callbacks.llamaindex import SentryLlamaIndexHandler

    Settings.callback_manager = CallbackManager([SentryLlamaIndexHandler(user="user_12345")])

or for everything, including components built before the call::

    import sentry_llm_callbacks as slc
    slc.set_global_handler(frameworks=("llamaindex",))

Spans come from LlamaIndex's instrumentation dispatcher (``llama_index.core.instrumentation``),
which carries more than the legacy callback events (token usage in raw responses, streamed
chunks, workflow steps) and reaches components that cached an older callback manager. The
callback-manager handler says *which* runs to trace and with what metadata: a run is traced
when its component's callback manager (or ``Settings.callback_manager``) holds a
:class:`SentryLlamaIndexHandler`, or when global tracing is on. One engine serves both, so a
call is never recorded twice.

This module is translation only: it reads LlamaIndex's spans and events into the neutral values
of :mod:`.calls` (a model request and response, a tool call, a retrieval) and hands them to the
shared recorder, which writes every attribute; what it must remember between events (which
component a model call runs on, which runs end with their stream) it keeps in its own side state.

One model call is one generation span, whatever the concurrency: the methods one call goes
through (``chat`` delegating to ``complete``, ``astream_chat`` reading ``stream_chat``) are
folded into one span by following that call, never by the component they run on.

Streams: a streamed model call ends with its stream. A streaming synthesis (sync or async) and
an async chat engine's ``astream_chat`` stay open until their stream is read, and the model call
made while it is read nests under them, in the same trace. When the stream ends early:

* the consumer stopped reading (``break`` then close, ``aclose()``, the response dropped): not an
  error; the spans end OK, marked ``sentry_llm_callbacks.stream.closed_early``;
* the task reading it was cancelled (``asyncio.CancelledError``): ERROR "cancelled", marked
  ``sentry_llm_callbacks.run.cancelled``;
* the stream raised: ERROR with the exception.

Which prompt a model call was made from: ``LLM.predict`` (and ``stream``, ``structured_predict``
and their async forms) announces its template in a start event of its own span, and makes the
model call inside that span; the template's ``metadata`` (``prompt_name``, ``prompt_version``) is
kept for that span and handed over with the call's request (``ModelRequest.prompt_ref``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.memory.types import DEFAULT_CHAT_STORE_KEY

from sentry_llm_callbacks.base.log import fork_safe, guarded, isolated
from sentry_llm_callbacks.core import adapter as contract
from sentry_llm_callbacks.core.calls import (
    ModelRequest,
    ModelResponse,
    PromptRef,
    RequestParameters,
    Retrieval,
    ToolCall,
    ToolResult,
)
from sentry_llm_callbacks.core.kinds import GENERATIONS, RunKind
from sentry_llm_callbacks.core.message_shapes import (
    ContentShapes,
    Document,
    Part,
    content_parts,
    get_field,
    is_mapping,
    provider_name,
    tool_call_part,
)
from sentry_llm_callbacks.core.metadata import PROMPT_NAME, PROMPT_VERSION, MetadataLayer, conversation_key, prompt_ref
from sentry_llm_callbacks.core.runs import Run
from sentry_llm_callbacks.core.usage import Usage, detect

__all__ = ["SentryLlamaIndexHandler", "set_global_handler", "unset_global_handler"]

_MODEL_KINDS = GENERATIONS  # chat, completion and embeddings
_UUID_SUFFIX = 37  # "-" + str(uuid4()) at the end of every dispatcher span id

_LLM_METHODS = frozenset(
    {"chat", "achat", "stream_chat", "astream_chat", "complete", "acomplete", "stream_complete", "astream_complete"}
)
_EMBEDDING_METHODS = frozenset(
    {
        "get_query_embedding",
        "aget_query_embedding",
        "get_text_embedding",
        "aget_text_embedding",
        "get_text_embedding_batch",
        "aget_text_embedding_batch",
        "get_agg_embedding_from_queries",
        "aget_agg_embedding_from_queries",
    }
)

_on_callback = guarded("LlamaIndex")
#: The process's recorder (see the adapter contract, :mod:`sentry_llm_callbacks.core.adapter`).
_recorder = contract.recorder()


class SentryLlamaIndexHandler(BaseCallbackHandler):
    """A LlamaIndex callback handler that traces the runs of the components it is given to.

    ``user``, ``session_id``, ``trace`` and ``privacy_mode`` work as for the LangChain handler
    and apply to every run traced through it. Raises :class:`ConfigurationError` for bad values.

    Example::

        handler = SentryLlamaIndexHandler(user="user_12345", trace={"trace_name": "Docs QA"})
        Settings.callback_manager = CallbackManager([handler])
        index.as_query_engine().query("How do I rotate keys?")
    """

    def __init__(
        self,
        *,
        user: str | None = None,
        session_id: str | None = None,
        trace: Mapping[str, Any] | None = None,
        privacy_mode: bool | None = None,
    ) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.layer = MetadataLayer.build(
            user=user, session_id=session_id, trace=trace, privacy_mode=privacy_mode, strict=True
        )
        _install_bridge()

    def __repr__(self) -> str:
        return f"SentryLlamaIndexHandler(user={self.layer.user!r}, session_id={self.layer.session_id!r})"

    # The legacy callback events carry less than the instrumentation events, which the bridge
    # below records; these four methods are LlamaIndex's required interface.
    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        return event_id

    def on_event_end(
        self, event_type: CBEventType, payload: dict[str, Any] | None = None, event_id: str = "", **kwargs: Any
    ) -> None:
        return None

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None) -> None:
        return None


# --------------------------------------------------------------------------- which runs to trace

_global_layer: MetadataLayer | None = None


def set_global_handler(**handler_kwargs: Any) -> None:
    """Trace every LlamaIndex run in the process, components built before the call included.

    Example::

        from sentry_llm_callbacks.llamaindex import set_global_handler
        set_global_handler(user="user_12345")
    """
    global _global_layer
    handler = SentryLlamaIndexHandler(**handler_kwargs)
    _global_layer = handler.layer


def unset_global_handler() -> None:
    """Stop tracing LlamaIndex runs globally (handlers given to components keep working).

    Example::

        unset_global_handler()
    """
    global _global_layer
    _global_layer = None


def _handler_layer(instance: Any) -> MetadataLayer | None:
    """The metadata of the handler that asks for this component's runs to be traced, if any."""
    for manager in (getattr(instance, "callback_manager", None), _settings_callback_manager()):
        for handler in getattr(manager, "handlers", None) or ():
            if isinstance(handler, SentryLlamaIndexHandler):
                return handler.layer
    return _global_layer


def _settings_callback_manager() -> Any:
    from llama_index.core import Settings

    return getattr(Settings, "_callback_manager", None)  # the property would create one


# --------------------------------------------------------------------------- the bridge


class _SpanBridge(BaseSpanHandler):
    """Receives the dispatcher's span enter / exit / drop and hands them to its driver.

    LlamaIndex's dispatcher takes pydantic handlers, and reading a pydantic private attribute
    goes through ``BaseModel.__getattr__`` (measured 1.7 us a read, against 30 ns for a plain
    one): every span would pay it several times. So the state and the work live in a plain
    object, :class:`_SpanDriver`, held in an ordinary field."""

    driver: Any = None

    @classmethod
    def class_name(cls) -> str:
        return "SentryLlmCallbacksSpanBridge"

    def new_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    @_on_callback
    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.driver.enter(id_, bound_args, instance, parent_id)

    @_on_callback
    def span_exit(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> None:
        self.driver.exit(id_, instance, result)

    @_on_callback
    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        self.driver.drop(id_, err)


class _SpanDriver:
    """Turns the dispatcher's spans into runs, with what it must remember between their events."""

    def __init__(self) -> None:
        #: Dispatcher spans that are the same model call as an open run: span id -> that run's key.
        self._aliases: dict[str, str] = {}
        #: Model runs whose response is still streaming: run key -> (component id, its generator).
        self._lazy_streams: dict[str, tuple[int, weakref.ref[Any]]] = {}
        #: Open model runs: run key -> (id of the component they run on, the class name standing in
        #: for the model until the call's payload names one, or None once a model is named).
        self._models: dict[str, tuple[int, str | None]] = {}
        #: Runs whose end waits for their stream (a streamed response ends after its method returned).
        self._deferred: set[str] = set()
        #: Named prompts announced by ``predict``-like spans: span id -> the template's identity, for
        #: the model call made inside that span.
        self._prompts: dict[str, PromptRef] = {}

    def drop(self, id_: str, err: BaseException | None) -> None:
        self.release(id_)
        if err is None:
            _recorder.end_run(id_)
        else:
            _recorder.fail_run(id_, err)

    # -- internals ----------------------------------------------------------------------

    def enter(self, id_: str, bound_args: inspect.BoundArguments, instance: Any, parent_id: str | None) -> None:
        recorder = _recorder
        parent = recorder.get(self._aliases.get(parent_id, parent_id)) if parent_id else None
        traced_tree = parent is not None or (parent_id is not None and recorder.is_under_hidden(parent_id))
        if parent is None and traced_tree:
            parent = recorder.resolve_parent(parent_id)
        qualname = id_[:-_UUID_SUFFIX] if len(id_) > _UUID_SUFFIX else id_
        method = qualname.rpartition(".")[2]
        kind, name, start = _classify(instance, method, parent)
        if kind is None:
            if self._prompts and parent_id in self._prompts:  # the call is made deeper (a structured program)
                self.remember_prompt(id_, self._prompts[parent_id])
            if traced_tree:
                recorder.hide_run(id_, parent_id)
            return
        if kind in _MODEL_KINDS:
            owner = self._same_call(instance, parent)
            if owner is not None:  # one model call surfaces as several methods: one span
                self._aliases[id_] = owner
                recorder.hide_run(id_, parent_id)
                return
            if self._prompts and parent_id in self._prompts and isinstance(start, ModelRequest):
                start = dataclasses.replace(start, prompt_ref=self._prompts[parent_id])
        layer = conversation = None
        if not traced_tree:
            layer = _handler_layer(instance)
            if layer is None and parent is None and recorder.ambient_run() is None:
                return  # nobody asked for this run to be traced
            if instance is not None and _role_of(instance, method) in _CONVERSING:
                conversation = isolated(_conversation, instance, bound_args, default=None)
        run = recorder.start_run(
            id_, parent_id, kind=kind, name=name, explicit_name=False, handler_layer=layer, run_metadata=conversation
        )
        if run is None:
            return
        if isinstance(start, ModelRequest):
            self._remember_model(id_, instance, start)
            recorder.record_request(run, start)
        elif isinstance(start, ToolCall):
            recorder.record_tool_call(run, start)
        isolated(_record_inputs, run, kind, bound_args, default=None)

    def remember_prompt(self, span_id: str, prompt: PromptRef) -> None:
        """A ``predict``-like span announced its template: the model call inside it was made from it."""
        prompts = self._prompts
        if len(prompts) >= _MAX_SIDE_STATE:  # spans that never exited: forget the oldest
            prompts.pop(next(iter(prompts)), None)
        prompts[span_id] = prompt

    def _remember_model(self, key: str, instance: Any, request: ModelRequest) -> None:
        """Which component a model run runs on, and whether its model is only the class name."""
        if len(self._models) >= _MAX_SIDE_STATE:
            self._forget_ended_runs()
        fallback = type(instance).__name__
        self._models[key] = (id(instance), fallback if request.model == fallback else None)

    def _defer_end(self, key: str) -> None:
        """The run ends with its stream, not when its method returns."""
        if len(self._deferred) >= _MAX_SIDE_STATE:
            self._forget_ended_runs()
        self._deferred.add(key)

    def _forget_ended_runs(self) -> None:
        """Forget the runs that ended without passing here (the reaper ended them), so that the
        side state stays bounded."""
        recorder = _recorder
        for key in [k for k in list(self._models) if recorder.get(k) is None]:
            self._models.pop(key, None)
        for key in [k for k in list(self._deferred) if recorder.get(k) is None]:
            self._deferred.discard(key)

    def name_model(self, run: Run, model: str) -> None:
        """The call's payload named its model: it replaces the class name standing in for it."""
        component, fallback = self._models.get(run.key, (0, None))
        if fallback is not None:
            self._models[run.key] = (component, None)
            _recorder.record_request(run, ModelRequest(model=model))

    def _same_call(self, instance: Any, parent: Run | None) -> str | None:
        """The open model run this model method is part of, if any.

        One call surfaces as several methods of one component: ``chat`` delegating to
        ``complete`` (nested: its parent span is that model run), or ``CustomLLM.astream_chat``
        whose async generator calls ``stream_chat`` while the consumer reads it (the parent span
        is the consumer's, so the call is recognised by running inside that generator). A second
        call on the same component from another task or thread is neither, and gets its own span.
        """
        if parent is not None and parent.kind in _MODEL_KINDS and self._models.get(parent.key, (0,))[0] == id(instance):
            return str(parent.key)
        return self._streaming_owner(instance)

    def _streaming_owner(self, instance: Any) -> str | None:
        """The streaming model run of ``instance`` whose generator is running right now, in this
        thread (its frame is on the call stack), if any."""
        frames: dict[int, str] = {}
        for key, (owner, ref) in _snapshot(self._lazy_streams):
            frame = _generator_frame(ref()) if owner == id(instance) else None
            if frame is not None:
                frames[id(frame)] = key
        if not frames:
            return None
        frame = sys._getframe(1)
        for _ in range(_MAX_STACK_WALK):
            if frame is None:
                break
            key = frames.get(id(frame))
            if key is not None:
                return key
            frame = frame.f_back
        return None

    def exit(self, id_: str, instance: Any, result: Any) -> None:
        recorder = _recorder
        if self._prompts:
            self._prompts.pop(id_, None)
        owner = self._aliases.pop(id_, None)
        if owner is not None:
            recorder.end_run(id_)  # forgets the hidden alias
            return
        run = recorder.get(id_)
        if run is None:
            recorder.end_run(id_)
            return
        if run.kind in GENERATIONS and (inspect.isgenerator(result) or inspect.isasyncgen(result)):
            self._defer_end(id_)  # ends with the stream: LLM*EndEvent or ExceptionEvent
            streams = self._lazy_streams
            streams[id_] = (id(instance), weakref.ref(result, lambda _: streams.pop(id_, None)))
            return
        if run.kind == RunKind.CHAIN and isolated(_follow_stream, run, result, default=False):
            self._defer_end(id_)  # the model call happens as the user reads the stream
            return
        try:
            isolated(_record_outputs, run, result, default=None)
        finally:
            self.release(id_)
            recorder.end_run(id_)

    def owner_of(self, span_id: str) -> str:
        """The span a model call's span stands for (one call surfaces as several methods)."""
        return self._aliases.get(span_id, span_id)

    def release(self, id_: str) -> None:
        self._prompts.pop(id_, None)
        self._aliases.pop(id_, None)
        self._lazy_streams.pop(id_, None)
        self._models.pop(id_, None)
        self._deferred.discard(id_)


_MAX_STACK_WALK = 256
#: Side-state entries kept before those of runs ended elsewhere (by the reaper) are forgotten.
_MAX_SIDE_STATE = 1024


def _snapshot(streams: dict[str, tuple[int, weakref.ref[Any]]]) -> list[tuple[str, tuple[int, weakref.ref[Any]]]]:
    """The items of a dict other threads (and weakref callbacks) may change while it is copied."""
    for _ in range(8):
        try:
            return list(streams.items())
        except RuntimeError:  # changed size during the copy: try again
            continue
    return []


def _generator_frame(generator: Any) -> Any:
    """The frame of a (sync or async) generator that has not finished, else None."""
    if generator is None:
        return None
    return getattr(generator, "ag_frame", None) or getattr(generator, "gi_frame", None)


#: Where LlamaIndex keeps a stream the user reads after the method returned: the response
#: generator of a (sync or async) streaming response, and the chat stream of an async chat
#: engine's response, which a background task consumes to write the chat history.
_STREAM_FIELDS = ("response_gen", "achat_stream")


def _follow_stream(run: Run, result: Any) -> bool:
    """Keep a streaming synthesis or chat open until its stream ends, with the model call as its child.

    LlamaIndex makes the model call lazily, while the user (or a background task) iterates the
    stream, outside the span that created it. The stream is replaced by an equivalent generator
    that runs each step under that span's id, so the call nests where it belongs. Only instance
    fields are looked at: reading a property such as ``StreamingAgentChatResponse.response_gen``
    would start a new generator.
    """
    fields = getattr(result, "__dict__", None)
    if not isinstance(fields, dict):
        return False
    for name in _STREAM_FIELDS:
        stream = fields.get(name)
        if inspect.isgenerator(stream) and stream.gi_code is not _stream_steps.__code__:
            setattr(result, name, _stream_steps(stream, run.key))
            return True
        if inspect.isasyncgen(stream) and stream.ag_code is not _astream_steps.__code__:
            setattr(result, name, _astream_steps(stream, run.key))
            return True
    return False


def _stream_steps(stream: Generator[Any, None, None], key: Any) -> Generator[Any, None, None]:
    error: BaseException | None = None
    try:
        while True:
            token = active_span_id.set(key)
            try:
                item = next(stream)
            except StopIteration:
                return
            finally:
                _reset_span_id(token)
            yield item
    except BaseException as exc:
        error = exc
        raise
    finally:
        if error is not None:
            stream.close()
        _end_stream_run(key, error)


async def _astream_steps(stream: AsyncGenerator[Any, None], key: Any) -> AsyncGenerator[Any, None]:
    error: BaseException | None = None
    try:
        while True:
            token = active_span_id.set(key)
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _reset_span_id(token)
            yield item
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            if error is not None:
                await stream.aclose()
        finally:
            _end_stream_run(key, error)


def _reset_span_id(token: Any) -> None:
    with contextlib.suppress(ValueError):  # the step finished in another context than it started in
        active_span_id.reset(token)


def _end_stream_run(key: Any, error: BaseException | None) -> None:
    """End the run a stream kept open: OK when read to the end, closed early when the consumer
    stopped reading (``GeneratorExit``), failed (or cancelled) on an exception."""
    if _bridge is not None:
        _bridge.release(key)
    if error is None:
        _recorder.end_run(key)
    else:
        _recorder.fail_run(key, error)  # GeneratorExit -> close_early


class _EventBridge(BaseEventHandler):
    """Receives the dispatcher's events: the data of the runs the span bridge opened."""

    spans: Any = None

    @classmethod
    def class_name(cls) -> str:
        return "SentryLlmCallbacksEventBridge"

    @_on_callback
    def handle(self, event: Any, **kwargs: Any) -> None:
        self._handle(event)

    def _handle(self, event: Any) -> None:
        span_id = getattr(event, "span_id", None)
        if not span_id:
            return
        bridge: _SpanDriver = self.spans
        kind = type(event).__name__
        if kind in _PROMPT_EVENTS:  # announced in the span the model call will be made in
            prompt = isolated(_template_prompt, getattr(event, "template", None), default=None)
            if prompt is not None:
                bridge.remember_prompt(span_id, prompt)
            return
        owner_key = bridge.owner_of(span_id)
        recorder = _recorder
        run = recorder.get(owner_key)
        if run is None:
            return
        try:
            for extractor in _EVENTS.get(kind, ()):
                isolated(extractor, run, event, default=None)
        finally:
            # A streamed call ends with its stream's last event, whatever its payload held; an
            # event of a nested method of the same call (an alias) does not end the call.
            if owner_key == span_id and kind in _STREAM_END_EVENTS and owner_key in bridge._deferred:
                bridge.release(owner_key)
                error = getattr(event, "exception", None)
                if isinstance(error, BaseException):
                    recorder.fail_run(owner_key, error)
                else:
                    recorder.end_run(owner_key)


_bridge_lock = fork_safe(sys.modules[__name__], "_bridge_lock")
#: The span driver, once the bridges are installed.
_bridge: _SpanDriver | None = None


def _install_bridge() -> None:
    """Add the span and event bridges to LlamaIndex's root dispatcher, once per process."""
    global _bridge
    if _bridge is not None:
        return
    with _bridge_lock:
        if _bridge is not None:
            return
        driver = _SpanDriver()
        events = _EventBridge()
        events.spans = driver
        dispatcher = get_dispatcher()
        spans = _SpanBridge()
        spans.driver = driver
        dispatcher.add_span_handler(spans)
        dispatcher.add_event_handler(events)
        _bridge = driver


def _current_llamaindex_span() -> str | None:
    """The LlamaIndex span whose code is running now (a tool calling LangChain, say)."""
    if _bridge is None:  # nothing of LlamaIndex is traced yet
        return None
    span_id = active_span_id.get()
    return None if span_id is None else _bridge.owner_of(span_id)


# --------------------------------------------------------------------------- classification


_ROLES: dict[tuple[type, str], str | None] = {}


def _role_of(instance: Any, method: str) -> str | None:
    """What a component's method is ("llm", "embedding", ...), or None for internals; cached per
    (type, method), since LlamaIndex fires many internal spans per query."""
    key = (type(instance), method)
    try:
        return _ROLES[key]
    except KeyError:
        pass
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.base.llms.base import BaseLLM
    from llama_index.core.response_synthesizers.base import BaseSynthesizer
    from llama_index.core.tools.types import BaseTool

    role = None
    if isinstance(instance, BaseLLM) and method in _LLM_METHODS:
        role = "llm"
    elif isinstance(instance, BaseEmbedding) and method in _EMBEDDING_METHODS:
        role = "embedding"
    elif isinstance(instance, BaseRetriever) and method in ("retrieve", "aretrieve"):
        role = "retriever"
    elif isinstance(instance, BaseQueryEngine) and method in ("query", "aquery"):
        role = "query"
    elif isinstance(instance, BaseSynthesizer) and method in ("synthesize", "asynthesize"):
        role = "synthesize"
    elif isinstance(instance, BaseTool) and method in ("call", "acall", "__call__"):
        role = "tool"
    elif method == "run" and _is_workflow(instance):
        role = "agent"
    elif method in ("chat", "achat", "stream_chat", "astream_chat") and _is_chat_engine(instance):
        role = "chat_engine"
    elif method in ("postprocess_nodes", "apostprocess_nodes") and hasattr(instance, "_postprocess_nodes"):
        role = "postprocess"
    if len(_ROLES) < 10_000:
        _ROLES[key] = role
    return role


#: What :func:`_classify` knows of a run when it starts: a model request, a tool call, or nothing.
_Start = ModelRequest | ToolCall | None


def _classify(instance: Any, method: str, parent: Run | None) -> tuple[str | None, str, _Start]:
    """The run kind for a dispatcher span, its default-name subject (an agent's name) and what
    is known of it when it starts."""
    if instance is None:
        if parent is not None and parent.kind == RunKind.AGENT:
            return RunKind.CHAIN, method, None  # a workflow step
        return None, method, None
    role = _role_of(instance, method)
    if role is None:
        return None, method, None
    cls = type(instance).__name__
    if role in ("llm", "embedding"):
        kind = RunKind.EMBEDDINGS if role == "embedding" else RunKind.CHAT if "chat" in method else RunKind.COMPLETION
        # A component that names no model (a custom or mock LLM) is known by its class, until
        # the call's payload names one: Sentry groups generations by model.
        request = isolated(_model_request, instance, cls, default=ModelRequest(model=cls))
        return kind, request.model or cls, request
    if role == "retriever":
        return RunKind.RETRIEVER, f"{cls}.retrieve", None
    if role == "query":
        return RunKind.CHAIN, f"{cls}.query", None
    if role == "synthesize":
        return RunKind.CHAIN, f"{cls}.synthesize", None
    if role == "tool":
        meta = getattr(instance, "metadata", None)
        tool = getattr(meta, "name", None) or cls
        description = getattr(meta, "description", None)
        return (
            RunKind.TOOL,
            tool,
            ToolCall(name=tool, description=description if isinstance(description, str) else None),
        )
    if role == "agent":
        agent = getattr(instance, "name", None)
        return RunKind.AGENT, agent if isinstance(agent, str) and agent else cls, None
    if role == "chat_engine":
        return RunKind.CHAIN, f"{cls}.{method}", None
    return RunKind.CHAIN, f"{cls}.postprocess", None


#: Roles whose runs hold a conversation's memory.
_CONVERSING = frozenset({"chat_engine", "agent"})


def _conversation(instance: Any, bound_args: inspect.BoundArguments) -> MetadataLayer | None:
    """A chat engine's or agent's memory key as the run's conversation (None when it has none).

    The memory is where each keeps it: a chat engine's ``_memory`` (every chat engine of
    llama-index-core 0.12 to 0.14), a 0.12 ``AgentRunner``'s ``memory``, or for a workflow agent
    the ``memory=`` given to ``run()``, which reaches the run's span in its start event.
    """
    memory = getattr(instance, "_memory", None) or getattr(instance, "memory", None)
    if memory is None:
        start_event = bound_args.arguments.get("start_event")
        read = getattr(start_event, "get", None)
        memory = read("memory", None) if callable(read) else None
    key = _memory_key(memory)
    return MetadataLayer(conversation=key) if key is not None else None


def _memory_key(memory: Any) -> str | None:
    """A LlamaIndex memory's chat store key: ``chat_store_key`` (``ChatMemoryBuffer``,
    ``ChatSummaryMemoryBuffer``) unless it is LlamaIndex's default, which every conversation
    shares; ``session_id`` (``Memory``, one per conversation); a composable memory's primary's."""
    if memory is None or not any(c.__name__ == "BaseMemory" for c in type(memory).__mro__):
        return None
    memory = getattr(memory, "primary_memory", None) or memory
    key = getattr(memory, "chat_store_key", None)
    if key is None:
        key = getattr(memory, "session_id", None)
    elif key == DEFAULT_CHAT_STORE_KEY:
        return None
    return conversation_key(key) if isinstance(key, str) else None


def _is_workflow(instance: Any) -> bool:
    return any(c.__name__ == "Workflow" for c in type(instance).__mro__)


def _is_chat_engine(instance: Any) -> bool:
    return any(c.__name__ == "BaseChatEngine" for c in type(instance).__mro__)


def _model_request(instance: Any, fallback_model: str) -> ModelRequest:
    """What a model component's own fields say of its calls: model (``fallback_model`` when
    they name none), provider and parameters."""
    fields = getattr(instance, "__dict__", None) or {}  # pydantic fields; no exception for absent ones
    model = None
    for key in ("model", "model_name", "model_id", "deployment_name"):
        value = fields.get(key)
        if isinstance(value, str) and value and value != "unknown":
            model = value
            break
    parameters = {}
    for name, kind in (("temperature", float), ("max_tokens", int), ("top_p", float)):
        value = fields.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parameters[name] = kind(value)
    return ModelRequest(
        model=model or fallback_model,
        provider=provider_name(type(instance).__name__),
        parameters=RequestParameters(**parameters) if parameters else None,
    )


# --------------------------------------------------------------------------- inputs and outputs


def _record_inputs(run: Run, kind: str, bound_args: inspect.BoundArguments) -> None:
    args = bound_args.arguments
    if kind == RunKind.TOOL:
        payload = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in args.items() if k != "self"}
        if set(payload) == {"kwargs"} and isinstance(payload["kwargs"], Mapping):
            payload = dict(payload["kwargs"])
        _recorder.record_tool_call(run, ToolCall(arguments=payload))
    elif kind in (RunKind.CHAIN, RunKind.RETRIEVER, RunKind.AGENT):
        for key in ("str_or_query_bundle", "query", "query_str", "message", "user_msg", "input"):
            if args.get(key) is not None:
                query = _query_text(args[key])
                if kind == RunKind.RETRIEVER:
                    _recorder.record_retrieval(run, Retrieval(query=query))
                else:
                    _recorder.record_input(run, query)
                break


def _record_outputs(run: Run, result: Any) -> None:
    recorder = _recorder
    if run.kind == RunKind.RETRIEVER and isinstance(result, list):
        recorder.record_retrieval(run, Retrieval(documents=result, document_count=len(result), shapes=_SHAPES))
    elif result is None:
        return
    elif run.kind == RunKind.TOOL:
        recorder.record_tool_result(run, ToolResult(getattr(result, "content", result)))
    elif run.kind in (RunKind.CHAIN, RunKind.AGENT):
        text = _response_text(result)
        if text is not None:
            recorder.record_output(run, text)


def _response_text(result: Any) -> Any:
    """What a query, synthesis or agent returned, without touching anything lazy: calling
    ``str()`` on a ``StreamingResponse`` would drain the stream the user is about to read."""
    if isinstance(result, str):
        return result
    text = getattr(result, "response", None)
    if isinstance(text, str):
        return text
    if (
        hasattr(result, "response_gen")
        or hasattr(result, "async_response_gen")
        or inspect.isgenerator(result)
        or inspect.isasyncgen(result)
    ):
        return None
    return result


def _query_text(value: Any) -> Any:
    return getattr(value, "query_str", value)


def _read_node(item: Any) -> Document:
    node = getattr(item, "node", item)
    score = getattr(item, "score", None)
    return Document(
        text=getattr(node, "text", None) or str(node),
        id=getattr(node, "node_id", None),
        score=score if isinstance(score, (int, float)) else None,
    )


def _read_message(message: Any) -> tuple[str, list[Part]]:
    """A LlamaIndex ``ChatMessage`` as its role and content parts (tool calls included)."""
    role = getattr(getattr(message, "role", None), "value", None) or str(getattr(message, "role", "user"))
    parts = content_parts(getattr(message, "content", None))
    extra = getattr(message, "additional_kwargs", None)
    calls = extra.get("tool_calls") if is_mapping(extra) else None
    for call in calls if isinstance(calls, (list, tuple)) else ():
        function = get_field(call, "function")
        parts.append(
            tool_call_part(get_field(call, "id"), get_field(function, "name"), get_field(function, "arguments"))
        )
    return role, parts


_SHAPES = ContentShapes(read_message=_read_message, read_document=_read_node)


# --------------------------------------------------------------------------- events


#: Events that announce the prompt template a model call is about to be made from.
_PROMPT_EVENTS = frozenset({"LLMPredictStartEvent", "LLMStructuredPredictStartEvent"})


def _template_prompt(template: Any) -> PromptRef | None:
    """The named prompt of a LlamaIndex prompt template: its ``metadata``'s ``prompt_name`` and
    ``prompt_version``; None when it names none (LlamaIndex's default templates)."""
    metadata = getattr(template, "metadata", None)
    if not is_mapping(metadata) or PROMPT_NAME not in metadata:
        return None
    prompt = prompt_ref(metadata.get(PROMPT_NAME), metadata.get(PROMPT_VERSION), strict=False)
    return prompt if prompt is not None and prompt.name is not None else None


def _on_chat_start(run: Run, event: Any) -> None:
    _request_from_payload(run, getattr(event, "model_dict", None))


def _on_chat_start_messages(run: Run, event: Any) -> None:
    messages = list(getattr(event, "messages", None) or ())
    _recorder.record_request(run, ModelRequest(messages=messages, shapes=_SHAPES))


def _on_chat_start_tools(run: Run, event: Any) -> None:
    extra = getattr(event, "additional_kwargs", None)
    tools = extra.get("tools") if is_mapping(extra) else None
    _recorder.record_request(run, ModelRequest(tools=tools))


def _on_completion_start(run: Run, event: Any) -> None:
    _request_from_payload(run, getattr(event, "model_dict", None))
    _recorder.record_request(run, ModelRequest(prompt=getattr(event, "prompt", "")))


def _request_from_payload(run: Run, model_dict: Any) -> None:
    if not is_mapping(model_dict):
        return
    model = model_dict.get("model") or model_dict.get("model_name")
    if isinstance(model, str) and model and model != "unknown" and _bridge is not None:
        _bridge.name_model(run, model)


def _on_chunk(run: Run, event: Any) -> None:
    _recorder.mark_first_chunk(run.key)


def _on_llm_end(run: Run, event: Any) -> None:
    """The usage of a finished call (the last event of a stream carries the last chunk)."""
    usage = usage_from_response(getattr(event, "response", None))
    _recorder.record_response(run, ModelResponse(usage=usage))


def _on_llm_end_response(run: Run, event: Any) -> None:
    """Response model, id and finish reasons from the provider's raw payload."""
    raw = getattr(getattr(event, "response", None), "raw", None)
    if raw is None:
        return
    response = ModelResponse(
        model=isolated(_raw_text, raw, "model", default=None),
        response_id=isolated(_raw_text, raw, "id", default=None),
        finish_reasons=isolated(_finish_reasons, raw, default=None),
    )
    _recorder.record_response(run, response)


def _raw_text(raw: Any, key: str) -> str | None:
    value = get_field(raw, key)
    return value if isinstance(value, str) else None


def _finish_reasons(raw: Any) -> list[str] | None:
    choices = get_field(raw, "choices")
    if not isinstance(choices, list):
        return None
    return [r for r in (get_field(c, "finish_reason") for c in choices) if isinstance(r, str)]


def _on_llm_end_output(run: Run, event: Any) -> None:
    response = getattr(event, "response", None)
    if response is not None:
        _recorder.record_response(run, ModelResponse(outputs=[response], shapes=_SHAPES))


def usage_from_response(response: Any) -> Usage | None:
    """Token usage from a LlamaIndex ``ChatResponse`` / ``CompletionResponse``: the provider's raw
    payload first, then the counts some integrations copy into ``additional_kwargs``."""
    usage = detect(getattr(response, "raw", None))
    if usage is None:
        extra = getattr(response, "additional_kwargs", None)
        usage = detect(extra) if is_mapping(extra) else None
    return usage


def _on_embedding_end(run: Run, event: Any) -> None:
    chunks = getattr(event, "chunks", None) or ()
    _recorder.record_request(run, ModelRequest(embedding_inputs=chunks))


def _on_embedding_start(run: Run, event: Any) -> None:
    _request_from_payload(run, getattr(event, "model_dict", None))


def _on_query_end(run: Run, event: Any) -> None:
    text = _response_text(getattr(event, "response", None))
    if isinstance(text, str):
        _recorder.record_output(run, text)


#: Each event's extractors, each run on its own (see ``isolated``).
_EVENTS: dict[str, tuple[Callable[[Run, Any], None], ...]] = {
    "LLMChatStartEvent": (_on_chat_start, _on_chat_start_messages, _on_chat_start_tools),
    "LLMCompletionStartEvent": (_on_completion_start,),
    "LLMChatInProgressEvent": (_on_chunk,),
    "LLMCompletionInProgressEvent": (_on_chunk,),
    "LLMChatEndEvent": (_on_llm_end, _on_llm_end_response, _on_llm_end_output),
    "LLMCompletionEndEvent": (_on_llm_end, _on_llm_end_response, _on_llm_end_output),
    "EmbeddingStartEvent": (_on_embedding_start,),
    "EmbeddingEndEvent": (_on_embedding_end,),
    "QueryEndEvent": (_on_query_end,),
}
_STREAM_END_EVENTS = frozenset({"LLMChatEndEvent", "LLMCompletionEndEvent", "ExceptionEvent"})

ADAPTER = contract.FrameworkAdapter("llamaindex", set_global_handler, unset_global_handler, _current_llamaindex_span)
contract.register(ADAPTER)
