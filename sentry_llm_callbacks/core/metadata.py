"""Trace metadata: the layers users set it in, how they merge, and trace-id resolution.

Precedence, later wins: ``configure()`` defaults < handler constructor < ``trace_context()`` <
the invocation's own metadata. The ``trace`` dicts merge key by key. Privacy only tightens. A
prompt named in a layer (``prompt_name`` / ``prompt_version``) names the prompt the trace's
generations were made from; a layer naming another prompt names its version too.

Besides what users set, a run's layer may carry the conversation key its framework already keeps
(a LangGraph ``thread_id``, a LlamaIndex memory's chat store key): the trace's conversation when
no layer sets ``session_id`` (:func:`~.roots.trace_attributes` decides).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.base.log import log_once
from sentry_llm_callbacks.core.calls import PromptRef
from sentry_llm_callbacks.core.content import to_json

#: Keys of the ``trace`` dict that steer the trace rather than becoming ``trace.metadata.*``.
TRACE_ID = "trace_id"
TRACE_NAME = "trace_name"
SPAN_NAME = "span_name"
GENERATION_NAME = "generation_name"
PARENT_SPAN_ID = "parent_span_id"
ENVIRONMENT = "environment"
RELEASE = "release"
#: The named prompt the trace's generations were made from (``gen_ai.prompt.name`` and its version
#: on each generation, not ``trace.metadata.*`` on every span). Also read at the top of a run's
#: own metadata, beside ``user`` and ``session_id``.
PROMPT_NAME = "prompt_name"
PROMPT_VERSION = "prompt_version"
STEERING_KEYS = frozenset(
    {
        TRACE_ID,
        TRACE_NAME,
        SPAN_NAME,
        GENERATION_NAME,
        PARENT_SPAN_ID,
        ENVIRONMENT,
        RELEASE,
        PROMPT_NAME,
        PROMPT_VERSION,
    }
)

#: Longest ``user`` or ``session_id`` kept, in characters.
MAX_ID_CHARS = 256
#: Longest value of any other trace metadata kept (names, environment, release, the original
#: ``trace_id`` string, each ``trace.metadata.*`` value; dicts and lists as their JSON text).
MAX_METADATA_CHARS = 1024
#: Longest ``trace`` key kept.
MAX_KEY_CHARS = 128
#: Ends a value that was cut to its limit.
CUT_MARKER = "...[cut]"

_HEX = frozenset("0123456789abcdef")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def trace_id_for(value: str) -> str:
    """The 32-hex OpenTelemetry trace id that ``value`` maps to, the same in every process.

    32 hex characters or a UUID are used as they are (lowercased); any other string maps to
    the first 32 hex characters of its SHA-256.

    >>> trace_id_for("incident_investigation_001") == trace_id_for("incident_investigation_001")
    True
    >>> trace_id_for("0AF7651916CD43DD8448EB211C80319C")
    '0af7651916cd43dd8448eb211c80319c'
    """
    if not isinstance(value, str):
        raise TypeError(f"trace ids are strings, not {type(value).__name__}")
    candidate = value.strip().lower()
    if len(candidate) == 36 and candidate.count("-") == 4:
        candidate = candidate.replace("-", "")
    if len(candidate) == 32 and _HEX.issuperset(candidate) and candidate != "0" * 32:
        return candidate
    import hashlib  # loaded with the first trace id to hash, not with the package

    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def is_native_trace_id(value: str) -> bool:
    """True if ``value`` is used as the trace id as it is (no hashing)."""
    return trace_id_for(value) == value.strip().lower().replace("-", "")


def capped(text: str, limit: int, fieldname: str) -> str:
    """``text``, or its first characters and :data:`CUT_MARKER` if it is longer than ``limit``.

    Metadata is copied onto every span of a trace: one oversized value would make every span
    too large to send, and lose the whole trace.

    >>> capped("x" * 2000, 16, "trace.team")
    'xxxxxxxx...[cut]'
    """
    if len(text) <= limit:
        return text
    log_once(
        f"metadata-cut-{fieldname}",
        logging.WARNING,
        "Metadata %s is %d characters long; it is cut to %d (ending in %r) and the trace is sent.",
        fieldname,
        len(text),
        limit,
        CUT_MARKER,
    )
    return text[: limit - len(CUT_MARKER)] + CUT_MARKER


def kept_trace_id(value: str) -> str:
    """The original ``trace_id`` string as kept in ``trace.metadata.trace_id`` (capped; the
    trace id itself is computed from the whole string)."""
    return capped(value, MAX_METADATA_CHARS, "trace.trace_id")


def parse_span_id(value: object) -> int | None:
    """A 16-hex span id as an int, or None if it is not one."""
    if not isinstance(value, str):
        return None
    candidate = value.strip().lower()
    if len(candidate) != 16 or not _HEX.issuperset(candidate) or candidate == "0" * 16:
        return None
    return int(candidate, 16)


@dataclass(frozen=True, slots=True)
class MetadataLayer:
    """One layer of trace metadata (a handler's, a ``trace_context()``'s or a run's).

    ``conversation`` is the framework's own conversation key for a run (LangGraph's ``thread_id``,
    a LlamaIndex chat store key), handed over by an adapter; an explicit ``session_id`` of any
    layer wins over it.
    """

    user: str | None = None
    session_id: str | None = None
    trace: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    privacy_mode: bool | None = None
    conversation: str | None = None
    #: The prompt this layer names (from ``prompt_name`` / ``prompt_version``), or None.
    prompt: PromptRef | None = None

    @classmethod
    def build(
        cls,
        *,
        user: object = None,
        session_id: object = None,
        trace: object = None,
        privacy_mode: object = None,
        prompt_name: object = None,
        prompt_version: object = None,
        conversation: object = None,
        strict: bool,
    ) -> MetadataLayer:
        """Validate one layer. ``strict`` raises :class:`ConfigurationError` (configuration time);
        otherwise bad values are logged once and left out (run time). The prompt is
        ``prompt_name`` / ``prompt_version`` (a run's metadata has them beside ``user``), else
        the ``trace`` dict's keys of those names. ``conversation`` is read from the framework,
        never from the user: a value that is no id is left out silently."""
        checked = _trace_dict(trace, strict)
        if checked:
            prompt_name = checked.get(PROMPT_NAME) if prompt_name is None else prompt_name
            prompt_version = checked.get(PROMPT_VERSION) if prompt_version is None else prompt_version
        return cls(
            user=_identity("user", user, strict),
            session_id=_identity("session_id", session_id, strict),
            trace=checked,
            privacy_mode=_flag("privacy_mode", privacy_mode, strict),
            conversation=conversation_key(conversation),
            prompt=prompt_ref(prompt_name, prompt_version, strict=strict),
        )

    @property
    def empty(self) -> bool:
        return (
            self.user is None
            and self.session_id is None
            and not self.trace
            and self.privacy_mode is None
            and self.conversation is None
            and self.prompt is None
        )

    def over(self, base: MetadataLayer) -> MetadataLayer:
        """This layer on top of ``base``: set values win, ``trace`` merges key by key, privacy tightens."""
        if self.empty:
            return base
        if base.empty:
            return self
        privacy = (
            None
            if base.privacy_mode is None and self.privacy_mode is None
            else bool(base.privacy_mode or self.privacy_mode)
        )
        return MetadataLayer(
            user=self.user if self.user is not None else base.user,
            session_id=self.session_id if self.session_id is not None else base.session_id,
            trace=MappingProxyType({**base.trace, **self.trace}) if self.trace else base.trace,
            privacy_mode=privacy,
            conversation=self.conversation if self.conversation is not None else base.conversation,
            prompt=self.prompt.over(base.prompt) if self.prompt is not None else base.prompt,
        )

    @property
    def session(self) -> str | None:
        """The trace's conversation: the explicit ``session_id``, else the framework's key."""
        return self.session_id if self.session_id is not None else self.conversation


def conversation_key(value: object) -> str | None:
    """A framework's conversation key as text (capped), or None when ``value`` is none: a string,
    an int or a UUID (LangGraph takes any of them as a ``thread_id``).

    >>> conversation_key("thread-7"), conversation_key(42), conversation_key(True)
    ('thread-7', '42', None)
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int)) or type(value).__name__ == "UUID":
        return capped(str(value), MAX_ID_CHARS, "conversation") or None
    return None


def prompt_ref(name: object, version: object, *, strict: bool) -> PromptRef | None:
    """The prompt named by ``name`` and ``version`` (strings or numbers, capped like other
    metadata), or None when neither is usable. ``strict`` raises :class:`ConfigurationError`
    for a value of another type; otherwise it is logged once and left out.

    >>> prompt_ref("support-triage", 3, strict=True)
    PromptRef(name='support-triage', version='3')
    """
    name = _label(PROMPT_NAME, name, strict)
    version = _label(PROMPT_VERSION, version, strict)
    if name is None and version is None:
        return None
    return PromptRef(name, version)


def _label(fieldname: str, value: object, strict: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return capped(str(value), MAX_METADATA_CHARS, fieldname) or None
    _problem(strict, fieldname, f"must be a string, not {type(value).__name__}", '"support-triage"')
    return None


def _problem(strict: bool, fieldname: str, problem: str, example: str) -> None:
    if strict:
        raise ConfigurationError(fieldname, problem, example)
    log_once(
        f"metadata-{fieldname}", logging.WARNING, "Ignoring metadata %s: %s (example: %s).", fieldname, problem, example
    )


def _identity(name: str, value: object, strict: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        _problem(strict, name, f"must be a string id, not {value!r}", '"user_12345"')
        return None
    if isinstance(value, (str, int)):
        return capped(str(value), MAX_ID_CHARS, name) or None
    if isinstance(value, Mapping) and isinstance(value.get("id"), (str, int)):
        return capped(str(value["id"]), MAX_ID_CHARS, name) or None
    _problem(strict, name, f"must be a string id, not {type(value).__name__}", '"user_12345"')
    return None


def _flag(name: str, value: object, strict: bool) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(value, int):
        return bool(value)
    _problem(strict, name, f"must be True or False, not {value!r}", "True")
    # Privacy only tightens: an unreadable value must not switch it off.
    return True


def _trace_dict(value: object, strict: bool) -> Mapping[str, Any]:
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        _problem(
            strict,
            "trace",
            f"must be a dict, not {type(value).__name__}",
            '{"trace_name": "Error Analysis Agent", "trace_id": "incident_001"}',
        )
        return _EMPTY
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            _problem(strict, "trace", f"keys must be non-empty strings, not {key!r}", '{"team": "ml"}')
            continue
        if item is None:
            continue
        if key == TRACE_ID and not isinstance(item, str):
            _problem(
                strict, "trace.trace_id", f"must be a string, not {type(item).__name__}", '"incident_investigation_001"'
            )
            continue
        if key == PARENT_SPAN_ID and parse_span_id(item) is None:
            _problem(strict, "trace.parent_span_id", f"must be 16 hex characters, not {item!r}", '"b7ad6b7169203331"')
            continue
        if key in (TRACE_NAME, SPAN_NAME, GENERATION_NAME, ENVIRONMENT, RELEASE) and not isinstance(item, str):
            _problem(strict, f"trace.{key}", f"must be a string, not {type(item).__name__}", '"production"')
            continue
        if key in (PROMPT_NAME, PROMPT_VERSION) and (isinstance(item, bool) or not isinstance(item, (str, int, float))):
            _problem(strict, f"trace.{key}", f"must be a string, not {type(item).__name__}", '"support-triage"')
            continue
        key = capped(key, MAX_KEY_CHARS, "trace key")
        out[key] = item if key == TRACE_ID else _capped_value(item, f"trace.{key}")
    return MappingProxyType(out) if out else _EMPTY


def _capped_value(value: Any, fieldname: str) -> Any:
    """Numbers and booleans as they are; anything else as (JSON) text, capped."""
    if isinstance(value, (bool, int, float)):
        return value
    return capped(to_json(value), MAX_METADATA_CHARS, fieldname)


# --------------------------------------------------------------------------- trace_context()

_context_layer: ContextVar[MetadataLayer | None] = ContextVar("sentry_llm_callbacks_trace_context", default=None)


def current_context_layer() -> MetadataLayer | None:
    return _context_layer.get()


@contextlib.contextmanager
def trace_context(
    *,
    user: str | None = None,
    session_id: str | None = None,
    trace: Mapping[str, Any] | None = None,
    privacy_mode: bool | None = None,
) -> Iterator[MetadataLayer]:
    """Attach metadata to every LangChain and LlamaIndex run started inside the block.

    It is a context variable: asyncio tasks created inside the block and LangChain's own
    thread pools inherit it; plain ``threading.Thread`` targets do not. Nested blocks merge,
    the inner one winning key by key. Raises :class:`ConfigurationError` for bad values.

    Example::

        with slc.trace_context(user="u1", session_id="s1", trace={"trace_name": "Nightly job"}):
            chain.invoke({"question": "..."})
    """
    layer = MetadataLayer.build(user=user, session_id=session_id, trace=trace, privacy_mode=privacy_mode, strict=True)
    outer = _context_layer.get()
    merged = layer.over(outer) if outer is not None else layer
    token = _context_layer.set(merged)
    try:
        yield merged
    finally:
        _context_layer.reset(token)
