"""What the trace page shows of one span: its attributes grouped, its messages as a conversation,
its error, and the link to the trace in Sentry.

Plain values only (no HTML): :mod:`sentry_llm_callbacks.devtools.trace_page` draws them. Every
attribute of a span lands in exactly one place: an attribute group, or the input or output
content it belongs to.

Messages arrive in several shapes, and all of them read as one conversation here: Sentry's
``{"role", "parts": [...]}`` (what the package sends as ``gen_ai.input.messages``), LangChain's
message-like ``("human", "text")`` pairs and ``{"type": "human", "content": ...}`` dumps (what a
chain's raw input holds, such as a LangGraph agent's ``{"messages": [["human", "..."]]}``), and
OpenAI's ``{"role", "content", "tool_calls"}``.

Example::

    from sentry_llm_callbacks.devtools.details import conversation

    messages = conversation('{"messages": [["human", "Why are payments failing?"]]}')
    [(m.role, m.parts[0].text) for m in messages]   # [('user', 'Why are payments failing?')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sentry_llm_callbacks.config.settings import parse_dsn
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.devtools.waterfall import ReceivedSpanLike

__all__ = [
    "GROUPS",
    "INPUT_KEYS",
    "MAX_VALUE_CHARS",
    "OUTPUT_KEYS",
    "AttributeGroup",
    "Content",
    "ErrorDetails",
    "Message",
    "Part",
    "SpanRecord",
    "conversation",
    "error_details",
    "group_attributes",
    "io_content",
    "preview",
    "sentry_trace_url",
    "show_value",
    "trace_link_for_dsn",
]

#: Characters of one value the page holds; what a hostile client sends beyond it is cut, visibly.
MAX_VALUE_CHARS = 50_000

#: Content shown as a span's input, and as its output, in this order.
INPUT_KEYS: tuple[str, ...] = (
    attr.SYSTEM_INSTRUCTIONS,
    attr.INPUT_MESSAGES,
    attr.INPUT_VALUE,
    attr.TOOL_CALL_ARGUMENTS,
    attr.EMBEDDINGS_INPUT,
    attr.TOOL_DEFINITIONS,
)
OUTPUT_KEYS: tuple[str, ...] = (
    attr.OUTPUT_MESSAGES,
    attr.OUTPUT_VALUE,
    attr.TOOL_CALL_RESULT,
    attr.RETRIEVAL_DOCUMENTS,
)


class SpanRecord(ReceivedSpanLike, Protocol):
    """What the page reads of a span: what the waterfall reads, with the span's events and
    resource (the fields of :class:`~sentry_llm_callbacks.devtools.receiver.ReceivedSpan`)."""

    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]


# --------------------------------------------------------------------------- values


def show_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """An attribute value as text to show and copy: strings as they are, ``true`` / ``false``,
    numbers as Python writes them, arrays and maps as compact JSON; cut past ``limit``.

    >>> show_value(["stop"]), show_value(True), show_value(0.2)
    ('["stop"]', 'true', '0.2')
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return _cut(text, limit)


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [cut {len(text) - limit} chars]"


def _parsed(value: Any) -> Any:
    """A content attribute's value: its JSON decoded when it is JSON, else the value itself."""
    if isinstance(value, str) and value[:1] in ("[", "{") and len(value) <= 4 * MAX_VALUE_CHARS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _pretty(value: Any) -> str:
    """A content attribute's value for the raw view: JSON indented, anything else as it is."""
    parsed = _parsed(value)
    if isinstance(parsed, (dict, list)):
        return _cut(json.dumps(parsed, ensure_ascii=False, indent=2, default=str))
    return show_value(value)


# --------------------------------------------------------------------------- attribute groups


@dataclass(frozen=True)
class AttributeGroup:
    """A titled list of ``(key, value shown)`` rows."""

    title: str
    rows: tuple[tuple[str, str], ...]


_MODEL = frozenset(
    {
        attr.OPERATION_NAME,
        attr.PROVIDER_NAME,
        attr.RESPONSE_MODEL,
        attr.RESPONSE_FINISH_REASONS,
        attr.RESPONSE_STREAMING,
        attr.RESPONSE_TIME_TO_FIRST_CHUNK,
        attr.AGENT_NAME,
        attr.TOOL_NAME,
        attr.TOOL_DESCRIPTION,
        attr.PROMPT_NAME,
        attr.PROMPT_VERSION,
    }
)
_USAGE = frozenset({attr.USAGE_SOURCE, attr.COST_SOURCE})
_WHO = frozenset({attr.USER_ID, attr.SESSION_ID, attr.CONVERSATION_ID, attr.SENTRY_ENVIRONMENT, attr.SENTRY_RELEASE})
_IDS = frozenset({attr.SENTRY_OP, attr.SENTRY_DESCRIPTION, attr.RESPONSE_ID, attr.PREVIOUS_TRACE})


def _namespace(key: str) -> str:
    """``gen_ai.request.`` of ``gen_ai.request.model``: what other senders' keys there start with."""
    return key.rpartition(".")[0] + "."


#: The groups, in the order shown: title, the keys it takes, the key prefixes it takes.
GROUPS: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    ("Model and parameters", _MODEL, (_namespace(attr.REQUEST_MODEL),)),
    ("Usage and cost", _USAGE, (_namespace(attr.USAGE_INPUT_TOKENS), _namespace(attr.COST_TOTAL))),
    ("User, session and metadata", _WHO, (attr.TRACE_METADATA_PREFIX,)),
    ("Identifiers", _IDS, ()),
)


def _group_of(key: str) -> str:
    for title, keys, prefixes in GROUPS:
        if key in keys or key.startswith(prefixes):
            return title
    return "Other"


def group_attributes(
    attributes: Mapping[str, Any], *, identifiers: Sequence[tuple[str, str]] = ()
) -> list[AttributeGroup]:
    """Every attribute but the input and output content (:data:`INPUT_KEYS`,
    :data:`OUTPUT_KEYS`), grouped: model and parameters, usage and cost, user / session /
    metadata, identifiers (``identifiers`` first: the span's own ids), other. Keys sorted
    within a group; a group with no row is left out.

    Example::

        group_attributes({"gen_ai.request.model": "gpt-4o", "user.id": "u1"})
        # [AttributeGroup('Model and parameters', (('gen_ai.request.model', 'gpt-4o'),)),
        #  AttributeGroup('User, session and metadata', (('user.id', 'u1'),))]
    """
    content = set(INPUT_KEYS) | set(OUTPUT_KEYS)
    rows: dict[str, list[tuple[str, str]]] = {title: [] for title, _, _ in GROUPS}
    rows["Other"] = []
    rows["Identifiers"].extend(identifiers)
    for key in sorted(attributes):
        if key not in content:
            rows[_group_of(key)].append((key, show_value(attributes[key])))
    return [AttributeGroup(title, tuple(found)) for title, found in rows.items() if found]


# --------------------------------------------------------------------------- conversations


@dataclass(frozen=True)
class Part:
    """One piece of a message: ``text``, ``reasoning``, ``tool_call`` (``name`` and its
    arguments as ``text``), ``tool_result`` (the result as ``text``) or ``other`` (as JSON)."""

    kind: str
    text: str
    name: str | None = None
    call_id: str | None = None


@dataclass(frozen=True)
class Message:
    """One message of a conversation; ``role`` is ``system``, ``user``, ``assistant``, ``tool``
    or whatever other role the message named."""

    role: str
    parts: tuple[Part, ...]
    finish_reason: str | None = None


_ROLES = {"human": "user", "ai": "assistant", "function": "tool"}
_KNOWN_ROLES = frozenset({"user", "assistant", "system", "developer", "tool", *_ROLES})
#: LangChain's message ``type`` values (``AIMessageChunk`` and friends dump as these too).
_LC_TYPES = frozenset({"human", "ai", "system", "tool", "function", "chat", "developer"})


def _role(name: str) -> str:
    return _ROLES.get(name.lower(), name.lower())


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        parsed = _parsed(value)  # arguments sent as a JSON string read as the object they hold
        if not isinstance(parsed, (dict, list)):
            return _cut(value)
        value = parsed
    return _cut(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _sentry_part(part: Any) -> Part:
    if not isinstance(part, Mapping):
        return Part("text", show_value(part))
    kind = part.get("type")
    if kind in ("text", "reasoning"):
        return Part(str(kind), show_value(part.get("content", "")))
    if kind == "tool_call":
        return Part("tool_call", _json_text(part.get("arguments")), _str_or_none(part.get("name")), _call_id(part))
    if kind == "tool_call_response":
        return Part("tool_result", _json_text(part.get("result")), None, _call_id(part))
    return Part("other", _json_text(dict(part)))


def _call_id(part: Mapping[str, Any]) -> str | None:
    return _str_or_none(part.get("id") or part.get("tool_call_id"))


def _content_parts(content: Any) -> list[Part]:
    """A LangChain or OpenAI ``content``: a string, or a list of strings and typed blocks."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [Part("text", _cut(content))]
    if not isinstance(content, list):
        return [Part("other", _json_text(content))]
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(Part("text", _cut(block)))
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(Part("text", show_value(block.get("text", ""))))
        elif isinstance(block, Mapping) and block.get("type") in ("reasoning", "thinking"):
            parts.append(Part("reasoning", show_value(block.get("reasoning") or block.get("thinking") or "")))
        else:
            parts.append(_sentry_part(block))
    return parts


def _tool_calls(calls: Any) -> list[Part]:
    """LangChain's ``[{"name", "args", "id"}]`` or OpenAI's ``[{"id", "function": {"name", "arguments"}}]``."""
    parts = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") if isinstance(call.get("function"), Mapping) else call
        arguments = function.get("arguments", function.get("args"))
        parts.append(Part("tool_call", _json_text(arguments), _str_or_none(function.get("name")), _call_id(call)))
    return parts


def _message(item: Any, *, strings: bool = False) -> Message | None:
    """``item`` as a message, or None when it is not one (``strings``: a bare string is a user
    message, as LangChain reads one in a list of messages)."""
    if isinstance(item, str):
        return Message("user", (Part("text", _cut(item)),)) if strings else None
    if isinstance(item, (list, tuple)):
        if len(item) == 2 and isinstance(item[0], str) and item[0].lower() in _KNOWN_ROLES:
            return Message(_role(item[0]), tuple(_content_parts(item[1])))
        return None
    if not isinstance(item, Mapping):
        return None
    role = item.get("role")
    if isinstance(role, str) and isinstance(item.get("parts"), list):  # Sentry's shape
        reason = item.get("finish_reason")
        return Message(_role(role), tuple(_sentry_part(p) for p in item["parts"]), _str_or_none(reason))
    kind = item.get("type")
    if not isinstance(role, str) and kind in _LC_TYPES:  # a LangChain message dump
        role = item.get("role") if kind == "chat" else kind
    if not isinstance(role, str) or ("content" not in item and "tool_calls" not in item):
        return None
    return _openai_like(_role(role), item)


def _openai_like(role: str, item: Mapping[str, Any]) -> Message:
    parts = _content_parts(item.get("content"))
    if role == "tool":
        text = "\n".join(p.text for p in parts) if all(p.kind == "text" for p in parts) else _json_text(item["content"])
        parts = [Part("tool_result", text, _str_or_none(item.get("name")), _call_id(item))]
    parts += _tool_calls(item.get("tool_calls"))
    return Message(role, tuple(parts), _str_or_none(item.get("finish_reason")))


def conversation(value: Any) -> list[Message] | None:
    """``value`` (a content attribute, JSON text or decoded) as a conversation, or None when it
    is not one: a list of messages, one message, or a map with a ``messages`` list (a LangGraph
    state; its other keys are left to the raw view). Every item of a list must be a message.

    >>> [m.role for m in conversation('[["system", "Be brief"], ["human", "hi"], ["ai", "hello"]]')]
    ['system', 'user', 'assistant']
    """
    value = _parsed(value)
    strings = False
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        value, strings = value["messages"], True
    if isinstance(value, Mapping):
        single = _message(value)
        return [single] if single is not None else None
    if not isinstance(value, list) or not value:
        return None
    messages = [_message(item, strings=strings) for item in value]
    if any(m is None for m in messages):
        return None
    return [m for m in messages if m is not None]


def preview(messages: Iterable[Message], limit: int = 160) -> str:
    """A conversation in one line: each message ``role: text``, a tool call as ``name(arguments)``.

    >>> preview(conversation([["human", "Why are payments failing?"]]))
    'user: Why are payments failing?'
    """
    pieces = []
    for message in messages:
        texts = []
        for part in message.parts:
            text = " ".join(part.text.split())
            texts.append(f"{part.name}({text})" if part.kind == "tool_call" else text)
        pieces.append(f"{message.role}: {' '.join(t for t in texts if t)}")
    line = " · ".join(pieces)
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --------------------------------------------------------------------------- input and output


@dataclass
class Content:
    """One side (input or output) of a span: its conversation when the content reads as one,
    and every content attribute as ``(key, text)`` for the raw view."""

    messages: list[Message] | None = None
    raw: list[tuple[str, str]] = field(default_factory=list)


def _system(value: Any) -> Message | None:
    parsed = _parsed(value)
    if isinstance(parsed, list):
        return Message("system", tuple(_sentry_part(p) for p in parsed))
    return Message("system", (Part("text", show_value(value)),)) if isinstance(value, str) and value else None


def _tool_call_message(attributes: Mapping[str, Any]) -> Message:
    name = attributes.get(attr.TOOL_NAME)
    part = Part("tool_call", _json_text(attributes[attr.TOOL_CALL_ARGUMENTS]), _str_or_none(name))
    return Message("assistant", (part,))


def _input_messages(attributes: Mapping[str, Any]) -> list[Message] | None:
    if attr.TOOL_CALL_ARGUMENTS in attributes:
        return [_tool_call_message(attributes)]
    found = conversation(attributes.get(attr.INPUT_MESSAGES))
    if found is None:
        found = conversation(attributes.get(attr.INPUT_VALUE))
    system = _system(attributes[attr.SYSTEM_INSTRUCTIONS]) if attr.SYSTEM_INSTRUCTIONS in attributes else None
    if system is not None:
        found = [system, *(found or [])]
    return found


def _output_messages(attributes: Mapping[str, Any]) -> list[Message] | None:
    if attr.TOOL_CALL_RESULT in attributes:
        text = _json_text(attributes[attr.TOOL_CALL_RESULT])
        return [Message("tool", (Part("tool_result", text, _str_or_none(attributes.get(attr.TOOL_NAME))),))]
    found = conversation(attributes.get(attr.OUTPUT_MESSAGES))
    return found if found is not None else conversation(attributes.get(attr.OUTPUT_VALUE))


def io_content(attributes: Mapping[str, Any]) -> tuple[Content, Content]:
    """A span's input and output: each as a conversation where its content reads as one (the
    system instructions first; a tool's call and result as a tool call and a tool result), and
    every content attribute indented for the raw view.

    Example::

        inputs, outputs = io_content(span.attributes)
        [m.role for m in inputs.messages or []]   # ['system', 'user', 'assistant', 'tool']
    """
    sides = []
    for keys, read in ((INPUT_KEYS, _input_messages), (OUTPUT_KEYS, _output_messages)):
        raw = [(key, _pretty(attributes[key])) for key in keys if key in attributes]
        sides.append(Content(read(attributes) if raw else None, raw))
    return sides[0], sides[1]


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ErrorDetails:
    """A failed span's exception: its type, its message and its stack trace, each None when the
    span did not carry it (Privacy Mode sends the type alone)."""

    type: str
    message: str | None
    stacktrace: str | None


def error_details(span: SpanRecord) -> ErrorDetails | None:
    """The span's error, from its ``exception`` event (type, message, stack trace, as the
    exporter sends them), else its ``error.type`` and status message; None for a span that did
    not fail.

    Example::

        error = error_details(span)   # a ReceivedSpan of a run that raised
        # ErrorDetails(type='ValueError', message='card token <missing>', stacktrace='Traceback ...')
        # and in Privacy Mode: ErrorDetails(type='ValueError', message=None, stacktrace=None)
    """
    event = next((attrs for name, attrs in span.events if name == "exception"), None)
    if span.status_code != 2 and event is None:
        return None
    event = event or {}
    status = span.status_message or ""
    kind = event.get(attr.EXCEPTION_TYPE) or span.attributes.get(attr.ERROR_TYPE) or status.split(":", 1)[0]
    kind = str(kind or "error")
    message = event.get(attr.EXCEPTION_MESSAGE)
    if message is None and status and status != kind:
        message = status[len(kind) + 2 :] if status.startswith(f"{kind}: ") else status
    stack = event.get(attr.EXCEPTION_STACKTRACE)
    return ErrorDetails(kind, _cut(str(message)) if message else None, _cut(str(stack)) if stack else None)


# --------------------------------------------------------------------------- a link to Sentry

_ORG_HOST = re.compile(r"o(\d+)\.ingest\.(?:(\w+)\.)?sentry\.io$")


def sentry_trace_url(host: str, trace_id: str) -> str | None:
    """A link to the trace in Sentry when the DSN's ``host`` names the organisation (``o123.…``).

    >>> sentry_trace_url("o123.ingest.us.sentry.io", "ab" * 16)
    'https://sentry.io/organizations/123/explore/traces/trace/abababababababababababababababab/'
    """
    match = _ORG_HOST.match(host)
    if not match:
        return None
    return f"https://sentry.io/organizations/{match.group(1)}/explore/traces/trace/{trace_id}/"


def trace_link_for_dsn(dsn: str | None) -> Callable[[str], str | None] | None:
    """The link maker for traces that also went to the Sentry of ``dsn``; None when ``dsn`` is
    missing, invalid or does not name the organisation.

    >>> trace_link_for_dsn("https://key@o123.ingest.us.sentry.io/456")("ab" * 16)
    'https://sentry.io/organizations/123/explore/traces/trace/abababababababababababababababab/'
    """
    if not dsn:
        return None
    try:
        host = parse_dsn(dsn).host
    except ValueError:
        return None
    if sentry_trace_url(host, "0" * 32) is None:
        return None
    return lambda trace_id: sentry_trace_url(host, trace_id)
