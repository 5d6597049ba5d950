"""What may leave the process, and in what shape.

``ContentPolicy`` is the single gate for prompt, completion, tool and document text: in
Privacy Mode it admits nothing (and no content is even serialised); otherwise it applies the
user's ``mask``, replaces base64 ``data:`` blobs with a placeholder and cuts strings to a size
limit with a visible marker. ``to_json`` turns framework objects into compact JSON, never
raising.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._logging import log_once
from .options import default

_DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,[A-Za-z0-9+/=\s]{16,}")
_INT64 = (-(2**63), 2**63 - 1)


def clean_str(value: str) -> str:
    """``value`` with lone surrogates replaced: they cannot be encoded and would fail a whole batch."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


_SIMPLE = ("datetime", "date", "time", "Decimal", "UUID", "PurePath", "Enum")


def _default(obj: Any) -> Any:
    """JSON fallback for objects: pydantic models, dataclasses, sets, bytes, plain objects.

    It never calls an arbitrary ``repr``: framework objects' reprs can be very slow (LangChain
    messages' compute signatures) and say less than the object's public fields.
    """
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        try:
            return dataclasses.asdict(obj)
        except Exception:
            pass
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    kind = type(obj)
    if any(c.__name__ in _SIMPLE for c in kind.__mro__):
        value = getattr(obj, "value", None) if isinstance(obj, enum.Enum) else None
        return value if isinstance(value, (str, int, float)) else str(obj)
    fields = _public_fields(obj)
    if fields is not None:
        return {"type": kind.__name__, **fields}
    return f"<{kind.__name__}>"


def _public_fields(obj: Any) -> dict[str, Any] | None:
    """An object's public attributes (slots and instance dict), or None for callables."""
    if callable(obj):
        return None
    names = getattr(type(obj), "__slots__", None)
    if isinstance(names, str):
        names = (names,)
    values: dict[str, Any] = {}
    for name in names or ():
        if not name.startswith("_") and hasattr(obj, name):
            values[name] = getattr(obj, name)
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        values.update((k, v) for k, v in state.items() if not k.startswith("_"))
    return values if values or names or isinstance(state, dict) else None


_ENCODER = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"))


def to_json(value: Any) -> str:
    """Compact JSON for any value; strings are returned as they are."""
    if isinstance(value, str):
        return value
    try:
        return _ENCODER.encode(value)
    except Exception as exc:  # circular references, hostile model_dump, ...
        log_once("json", logging.DEBUG, "Could not serialise a %s as JSON: %r", type(value).__name__, exc)
        return f"<unserialisable {type(value).__name__}>"


def scalar_or_json(value: Any) -> str | bool | int | float:
    """Attribute value for user metadata: scalars as they are, anything else as compact JSON."""
    if isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, str):
        return clean_str(value)
    return clean_str(to_json(value))


@dataclasses.dataclass(frozen=True, slots=True)
class ContentPolicy:
    """Decides whether and how content leaves the process."""

    private: bool = False
    max_chars: int = default("max_content_chars")
    mask: Callable[[str], str] | None = None

    def render(self, value: Any) -> str | None:
        """The text to send for ``value``, or None (Privacy Mode, or nothing to send)."""
        if self.private or value is None:
            return None
        text = to_json(value)
        if not text:
            return None
        if "data:" in text:
            text = _DATA_URI.sub(_data_placeholder, text)
        if self.mask is not None:
            try:
                text = self.mask(text)
            except Exception as exc:
                log_once("mask", logging.WARNING, "The mask callable failed (%r); content was dropped.", exc)
                return None
            if not isinstance(text, str):
                return None
        if len(text) > self.max_chars:
            text = f"{text[: self.max_chars]}...[truncated {len(text) - self.max_chars} chars]"
        return clean_str(text)

    def tightened(self, private: bool) -> ContentPolicy:
        """This policy, made private if ``private``; never loosened."""
        if private and not self.private:
            return dataclasses.replace(self, private=True)
        return self


def snapshot(value: Any) -> Any:
    """A copy of ``value``'s containers, cheap enough for the application's thread: dicts are
    copied two levels deep, lists and tuples shallowly; the objects inside are shared (framework
    messages and documents are not changed after they are made)."""
    kind = type(value)
    if kind is dict:
        return {
            k: (dict(v) if type(v) is dict else list(v) if type(v) in (list, tuple) else v) for k, v in value.items()
        }
    if kind in (list, tuple):
        return list(value)
    return value


def content_source(value: Any) -> int:
    """Where content came from, for reusing a rendering: a dict by its keys and the identity of its
    values (LangGraph hands each step a new state dict around the same message list), anything
    else by its identity. Equality is still checked before a rendering is reused."""
    if type(value) is dict:
        return hash((tuple(value), tuple(map(id, value.values()))))
    return id(value)


class LazyContent:
    """Content captured on the application's thread, converted and rendered on the export thread.

    ``value`` must be a snapshot (see :func:`snapshot`), so that later changes by the application
    do not leak into the span; ``convert`` (framework objects to plain data) runs at render time.
    """

    __slots__ = ("convert", "policy", "source", "value")

    def __init__(
        self, value: Any, policy: ContentPolicy, convert: Callable[[Any], Any] | None = None, source: int = 0
    ) -> None:
        self.value = value
        self.policy = policy
        self.convert = convert
        self.source = source  # see content_source()

    def render(self) -> str | None:
        value = self.value
        if self.convert is not None:
            try:
                value = self.convert(value)
            except Exception as exc:
                log_once("convert", logging.DEBUG, "Could not convert content: %r", exc)
        return self.policy.render(value)


RenderCache = dict[tuple[int, Any, ContentPolicy], tuple[Any, "str | None"]]


def finished_attributes(attributes: Mapping[str, Any], cache: RenderCache | None = None) -> dict[str, Any] | None:
    """A copy of ``attributes`` with every :class:`LazyContent` value rendered (and dropped where
    it renders to nothing); None when nothing in them is lazy, so the caller keeps what it has.

    With a ``cache`` (one per export batch), content captured from the same object with equal
    contents (a LangGraph state seen by a node and by the steps inside it) is rendered once.
    """
    finished: dict[str, Any] | None = None
    for key, value in attributes.items():
        if type(value) is not LazyContent:
            continue
        if finished is None:
            finished = dict(attributes)
        text = _rendered(value, cache)
        if text is None:
            del finished[key]
        else:
            finished[key] = text
    return finished


def _rendered(value: LazyContent, cache: RenderCache | None) -> str | None:
    if cache is None or not value.source:
        return value.render()
    cache_key = (value.source, value.convert, value.policy)
    hit = cache.get(cache_key)
    try:
        same = hit is not None and hit[0] == value.value
    except Exception:
        same = False
    if same:
        return hit[1]  # type: ignore[index]
    text = value.render()
    cache[cache_key] = (value.value, text)
    return text


def _data_placeholder(match: re.Match[str]) -> str:
    mime = match.group(1) or "application/octet-stream"
    return f"data:{mime};base64,<{len(match.group(0))} chars omitted>"
