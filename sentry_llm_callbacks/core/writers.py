"""Neutral values to attributes: what a run carried, written onto it while it is open.

Adapters hand the recorder the neutral values of :mod:`.calls` (a model request and response, a
tool call, a retrieval, a chain's input and output); these methods alone turn them into span
attributes and events. Content (prompts, completions, I/O, documents, event data) passes
:meth:`RunWriter.set_content` or :meth:`RunWriter.add_event`, where Privacy Mode keeps it in the
process; otherwise only a snapshot is taken here, and it is rendered on the export thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Link, SpanContext

from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core import calls
from sentry_llm_callbacks.core.content import LazyContent, capture, clean_str
from sentry_llm_callbacks.core.kinds import CHAT_LIKE, RunKind
from sentry_llm_callbacks.core.message_shapes import prompt_messages, tool_definitions
from sentry_llm_callbacks.core.runs import Run, RunMap
from sentry_llm_callbacks.core.spans import MAX_NAME, admits_content, default_name, fit_name

#: Longest tool description kept, in characters.
MAX_DESCRIPTION = 1024


class RunWriter:
    """The recorder's writing half (see :class:`~.recorder.Recorder`): ``_map`` holds the open runs."""

    _map: RunMap

    def set_content(self, run: Run, key: str, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
        """Add a content attribute (prompt, completion, I/O) if the run's policy lets it out.

        This is where Privacy Mode keeps content in the process: every content attribute and
        event of every framework passes here (:func:`~.spans.admits_content`), and in Privacy Mode not
        even a snapshot is taken. Only a snapshot of ``value``'s containers is taken here;
        ``convert`` and the rendering to text run on the export thread, so that serialising
        content costs the app next to nothing.
        """
        if value is None or not admits_content(run):
            return
        copy, source = capture(value)
        run.attributes[key] = LazyContent(copy, run.policy, convert, source)

    # -- neutral values to attributes -------------------------------------------------------

    def record_request(self, run: Run | None, request: calls.ModelRequest) -> None:
        """A model call's request: model, provider, parameters, the named prompt it was made
        from, and as content its messages (system instructions apart), prompt, tool definitions
        and embedding inputs.

        Example::

            recorder.record_request(run, ModelRequest(model="gpt-4o", provider="openai"))
        """
        if run is None:
            return
        attrs = run.attributes
        if request.model:
            attrs[attr.REQUEST_MODEL] = request.model
        if request.provider:
            attrs[attr.PROVIDER_NAME] = request.provider
        if request.parameters is not None:
            _write_parameters(attrs, request.parameters)
        if request.embedding_inputs is not None:
            attrs[attr.EMBEDDINGS_INPUT_COUNT] = len(request.embedding_inputs)
        if request.prompt_ref is not None and run.kind in CHAT_LIKE:
            write_prompt(attrs, request.prompt_ref)
        if not admits_content(run):
            return
        shapes = request.shapes
        if request.messages is not None and shapes is not None:
            self.set_content(run, attr.SYSTEM_INSTRUCTIONS, request.messages, shapes.system_parts)
            self.set_content(run, attr.INPUT_MESSAGES, request.messages, shapes.conversation)
        if request.prompt is not None and attr.INPUT_MESSAGES not in attrs:  # a chat's messages stay
            self.set_content(run, attr.INPUT_MESSAGES, request.prompt, prompt_messages)
        if request.tools:
            self.set_content(run, attr.TOOL_DEFINITIONS, request.tools, tool_definitions)
        self.set_content(run, attr.EMBEDDINGS_INPUT, request.embedding_inputs)

    def record_prompt(self, run: Run | None, prompt: calls.PromptRef) -> None:
        """A run rendered a named prompt (a prompt template): the run started next under the
        same parent was made from it (a model call, or a chain such as a retry, a fallback or a
        structured-output wrapper, with every model call in it). Later runs are not: the
        identity follows the template's output, not the rest of the parent.

        Example::

            recorder.record_prompt(template_run, PromptRef("support-triage", "3"))
        """
        if run is not None and run.parent_run is not None and prompt.name is not None:
            run.parent_run.next_prompt = prompt

    def record_response(self, run: Run | None, response: calls.ModelResponse) -> None:
        """A model call's response: response model, id and finish reasons, the output messages
        as content, and its usage (costed when the run ends).

        Example::

            recorder.record_response(run, ModelResponse(model="gpt-4o-2024-08-06", finish_reasons=["stop"]))
        """
        if run is None:
            return
        attrs = run.attributes
        if response.model:
            attrs[attr.RESPONSE_MODEL] = response.model
        if response.response_id:
            attrs[attr.RESPONSE_ID] = response.response_id
        if response.finish_reasons:
            attrs[attr.RESPONSE_FINISH_REASONS] = list(response.finish_reasons)
        if response.usage is not None:
            run.usage = response.usage
        if response.outputs and response.shapes is not None:
            self.set_content(run, attr.OUTPUT_MESSAGES, response.outputs, response.shapes.output_messages)

    def record_tool_call(self, run: Run | None, call: calls.ToolCall) -> None:
        """A tool run's tool (name, description cut to 1024 characters) and its arguments.

        Example::

            recorder.record_tool_call(run, ToolCall(name="search", arguments={"q": "otlp"}))
        """
        if run is None:
            return
        if call.name:
            run.attributes[attr.TOOL_NAME] = call.name
        if call.description:
            run.attributes[attr.TOOL_DESCRIPTION] = call.description[:MAX_DESCRIPTION]
        self.set_content(run, attr.TOOL_CALL_ARGUMENTS, call.arguments, call.convert)

    def record_tool_result(self, run: Run | None, result: calls.ToolResult) -> None:
        """What a tool returned, as content."""
        if run is not None:
            self.set_content(run, attr.TOOL_CALL_RESULT, result.result, result.convert)

    def record_retrieval(self, run: Run | None, retrieval: calls.Retrieval) -> None:
        """A retriever run's query and, as content, the documents it found, with their count.

        Example::

            recorder.record_retrieval(run, Retrieval(query="key rotation"))
        """
        if run is None:
            return
        if retrieval.document_count is not None:
            run.attributes[attr.RETRIEVAL_DOCUMENT_COUNT] = retrieval.document_count
        self.set_content(run, attr.INPUT_VALUE, retrieval.query)
        if retrieval.documents is not None and retrieval.shapes is not None:
            self.set_content(run, attr.RETRIEVAL_DOCUMENTS, retrieval.documents, retrieval.shapes.documents)

    def record_input(self, run: Run | None, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
        """What a chain, graph node, agent or query took, as content (``convert`` turns the
        framework's objects into plain data on the export thread).

        Example::

            recorder.record_input(run, {"question": "How do I rotate keys?"})
        """
        if run is not None:
            self.set_content(run, attr.INPUT_VALUE, value, convert)

    def record_output(self, run: Run | None, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
        """What a chain, graph node, agent or query returned, as content."""
        if run is not None:
            self.set_content(run, attr.OUTPUT_VALUE, value, convert)

    def mark_first_chunk(self, key: Hashable) -> None:
        run = self._map.runs.get(key)
        if run is not None and run.first_chunk_at is None:
            run.first_chunk_at = time.monotonic()

    def promote_to_agent(self, key: Hashable, agent_name: str | None) -> None:
        """Re-kind a running chain as an agent (e.g. once it turns out to be a LangGraph graph)."""
        run = self._map.runs.get(key)
        if run is None or run.kind == RunKind.AGENT:
            return
        run.kind = RunKind.AGENT
        agent_name = clean_str(agent_name or run.subject)
        run.attributes[attr.AGENT_NAME] = agent_name
        if run.name_is_default:
            run.name = fit_name(default_name(RunKind.AGENT, agent_name))

    def add_event(
        self,
        key: Hashable,
        name: str,
        attributes: dict[str, Any] | None = None,
        content: dict[str, Any] | None = None,
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        """An event on a run. ``content`` values leave only if the run's policy lets them out, and
        like a span's content are rendered on the export thread (``convert`` first, then the
        policy's JSON, ``mask`` and size cut), never on the application's."""
        run = self._map.runs.get(key)
        if run is None:
            return
        event_attrs = dict(attributes or {})
        if content and admits_content(run):
            for k, v in content.items():
                if v is not None:
                    copy, source = capture(v)
                    event_attrs[k] = LazyContent(copy, run.policy, convert, source)
        if run.events is None:
            run.events = []
        run.events.append(Event(clean_str(name)[:MAX_NAME], event_attrs))

    def record_agent_action(self, key: Hashable, call: calls.ToolCall) -> None:
        """An agent chose a tool: an ``agent_action`` event on its run (arguments as content)."""
        content = {attr.TOOL_CALL_ARGUMENTS: call.arguments} if call.arguments is not None else None
        attributes = {attr.TOOL_NAME: call.name} if call.name else None
        self.add_event(key, "agent_action", attributes, content=content, convert=call.convert)

    def record_agent_finish(self, key: Hashable, output: Any) -> None:
        """An agent returned: an ``agent_finish`` event on its run (the output as content)."""
        self.add_event(key, "agent_finish", content={attr.OUTPUT_VALUE: output})

    def record_retry(self, key: Hashable, attempt: int | None) -> None:
        """A run is retried: a ``retry`` event, with the attempt number when known."""
        self.add_event(key, "retry", {attr.EVENT_RETRY_ATTEMPT: attempt} if attempt is not None else None)

    def record_custom_event(self, key: Hashable, name: str, data: Any) -> None:
        """An event the app dispatched itself: an event of that name, its data as content."""
        self.add_event(key, name, None, content={attr.EVENT_CUSTOM_DATA: data})


#: Each request parameter and the attribute it becomes.
_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("temperature", attr.REQUEST_TEMPERATURE),
    ("max_tokens", attr.REQUEST_MAX_TOKENS),
    ("top_p", attr.REQUEST_TOP_P),
    ("top_k", attr.REQUEST_TOP_K),
    ("frequency_penalty", attr.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", attr.REQUEST_PRESENCE_PENALTY),
    ("seed", attr.REQUEST_SEED),
    ("reasoning_level", attr.REQUEST_REASONING_LEVEL),
)


def _write_parameters(attrs: dict[str, Any], parameters: calls.RequestParameters) -> None:
    for field_name, key in _PARAMETERS:
        value = getattr(parameters, field_name)
        if value is not None:
            attrs[key] = value
    if parameters.stop_sequences:
        attrs[attr.REQUEST_STOP_SEQUENCES] = list(parameters.stop_sequences)


def write_prompt(attrs: dict[str, Any], prompt: calls.PromptRef) -> None:
    """The named prompt a model call was made from; a ref without a name writes nothing. Name
    and version go together: a version is never left beside another prompt's name."""
    if prompt.name is None:
        return
    attrs[attr.PROMPT_NAME] = prompt.name
    if prompt.version is not None:
        attrs[attr.PROMPT_VERSION] = prompt.version
    else:
        attrs.pop(attr.PROMPT_VERSION, None)


def write_graph_step(attrs: dict[str, Any], step: calls.GraphStep) -> None:
    attrs[attr.LANGGRAPH_NODE] = step.node
    if step.step is not None:
        attrs[attr.LANGGRAPH_STEP] = step.step


def write_previous_trace(run: Run, previous: SpanContext) -> None:
    """A root that continues an earlier trace of its conversation (a run resumed after an
    interrupt): a span link to that trace's root, typed ``previous_trace``, and
    ``sentry.previous_trace``, as Sentry's JavaScript SDK links the traces of one page session."""
    run.links = (Link(previous, {attr.LINK_TYPE: attr.LINK_PREVIOUS_TRACE}),)
    sampled = 1 if previous.trace_flags.sampled else 0
    run.attributes[attr.PREVIOUS_TRACE] = f"{previous.trace_id:032x}-{previous.span_id:016x}-{sampled}"
