"""Framework-neutral values: what a model call, a tool call or a retrieval carried.

A framework adapter reads its payloads into these values and hands them to the recorder
(``Recorder.record_request``, ``record_response``, ``record_tool_call``, ...), which alone turns
them into span attributes, the same way for every framework. Every field defaults to None, and a
field left None yields no attribute: an adapter fills what its framework tells it. (A chain's
input and output need no value of their own: ``Recorder.record_input(run, value, convert)``,
on the path every chain, graph node and parser takes.)

The values made at every callback are plain slotted dataclasses, never changed once made (a
frozen one costs three times as much to make, on the application's thread); the identities
(:class:`PromptRef`, :class:`ControlFlow`) are frozen.

Content (messages, arguments, documents) is kept as the framework's own objects, with the
adapter's converter (a bound method of its :class:`~.message_shapes.ContentShapes`, or a plain
function); it is converted and rendered on the export thread, never on the application's.

Example::

    request = ModelRequest(model="gpt-4o", provider="openai", parameters=RequestParameters(temperature=0.2))
    recorder.record_request(run, request)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sentry_llm_callbacks.core.message_shapes import ContentShapes
from sentry_llm_callbacks.core.usage import Usage

Convert = Callable[[Any], Any]


@dataclass(slots=True)
class RequestParameters:
    """The sampling parameters of a model request, typed."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: str | None = None
    reasoning_level: str | None = None
    stop_sequences: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class PromptRef:
    """Which named prompt a generation was made from: its ``name`` and, when known, its
    ``version`` (a hub commit hash, a version label). An identity, not the prompt's text: it is
    sent in Privacy Mode too.

    A ref without a name only completes one that has a name (a metadata layer that gives the
    version alone); only a ref with a name is written onto a generation.

    Example::

        PromptRef("support-triage", "3")
    """

    name: str | None
    version: str | None = None

    def over(self, base: PromptRef | None) -> PromptRef:
        """This ref on top of ``base``: a name names its own version (none if it gives none),
        so a version never sticks to another prompt's name; a version alone completes ``base``.

        >>> PromptRef(None, "4").over(PromptRef("triage", "3"))
        PromptRef(name='triage', version='4')
        >>> PromptRef("summary").over(PromptRef("triage", "3"))
        PromptRef(name='summary', version=None)
        """
        if self.name is not None or base is None:
            return self
        return PromptRef(base.name, self.version if self.version is not None else base.version)


@dataclass(slots=True)
class ModelRequest:
    """What a chat, completion or embeddings call asked for.

    ``messages`` are the framework's message objects, system instructions included (the
    recorder splits them), read with ``shapes``; ``prompt`` is a completion model's prompt text
    (it does not replace messages already recorded for the call); ``tools`` are the tool
    definitions offered to the model; ``embedding_inputs`` the texts an embeddings call embeds;
    ``prompt_ref`` the named prompt (template) the call was made from, when the framework's
    payload says (it wins over a prompt named in the trace's metadata).
    """

    model: str | None = None
    provider: str | None = None
    parameters: RequestParameters | None = None
    messages: Sequence[Any] | None = None
    shapes: ContentShapes | None = None
    prompt: Any = None
    tools: Any = None
    embedding_inputs: Sequence[Any] | None = None
    prompt_ref: PromptRef | None = None


@dataclass(slots=True)
class ModelResponse:
    """What a model call answered. ``outputs`` are the framework's outputs (generations, a
    response), read with ``shapes``; ``usage`` is kept for the end of the run."""

    model: str | None = None
    response_id: str | None = None
    finish_reasons: Sequence[str] | None = None
    outputs: Sequence[Any] | None = None
    shapes: ContentShapes | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class ToolCall:
    """A tool run: which tool, and what it was called with (``convert`` turns the framework's
    arguments into plain data on the export thread)."""

    name: str | None = None
    description: str | None = None
    arguments: Any = None
    convert: Convert | None = None


@dataclass(slots=True)
class ToolResult:
    """What a tool returned."""

    result: Any = None
    convert: Convert | None = None


@dataclass(slots=True)
class Retrieval:
    """A retriever run: its query, and the documents it found (read with ``shapes`` into
    id, score, text and metadata). ``document_count`` is None when it cannot be known."""

    query: Any = None
    documents: Any = None
    document_count: int | None = None
    shapes: ContentShapes | None = None


@dataclass(slots=True)
class GraphStep:
    """A run that is one step of a graph: the node it runs, and the step number when known."""

    node: str
    step: int | None = None


@dataclass(frozen=True, slots=True)
class ControlFlow:
    """A run ended by the framework steering its graph, not by an error: an interrupt waiting
    for input, or (``handoff``) a hand-over to another node, ``target`` when it is one name."""

    handoff: bool = False
    target: str | None = None
