"""What may leave the process, and in what shape.

``ContentPolicy`` is the single gate for prompt, completion, tool and document text: in
Privacy Mode it admits nothing (and no content is even serialised); otherwise it applies the
user's ``mask``, replaces base64 ``data:`` blobs with a placeholder and cuts strings to a size
limit with a visible marker. ``to_json`` turns framework objects into compact JSON, never
raising.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._logging import log_once

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


def _default(obj: Any) -> Any:
    """JSON fallback for framework objects: pydantic models, dataclasses, sets, bytes, anything."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    to_dict = getattr(obj, "to_dict", None) or getattr(obj, "dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:
            pass
    return _safe_repr(obj)


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception:
        return f"<{type(obj).__name__}>"


_ENCODER = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"))


def to_json(value: Any) -> str:
    """Compact JSON for any value; strings are returned as they are."""
    if isinstance(value, str):
        return value
    try:
        return _ENCODER.encode(value)
    except Exception as exc:  # circular references, hostile __repr__/model_dump, ...
        log_once("json", logging.DEBUG, "Could not serialise a %s as JSON: %r", type(value).__name__, exc)
        return _safe_repr(value)


def scalar_or_json(value: Any) -> str | bool | int | float:
    """Attribute value for user metadata: scalars as they are, anything else as compact JSON."""
    if isinstance(value, bool) or isinstance(value, float):
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
    max_chars: int = 20_000
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


class LazyContent:
    """Content captured on the application's thread, rendered on the export thread.

    The value must already be a snapshot (adapters convert framework objects into fresh
    containers), so that later changes by the application do not leak into the span.
    """

    __slots__ = ("policy", "value")

    def __init__(self, value: Any, policy: ContentPolicy) -> None:
        self.value = value
        self.policy = policy

    def render(self) -> str | None:
        return self.policy.render(self.value)


def resolve_content(attributes: dict[str, Any]) -> None:
    """Render every :class:`LazyContent` value in place (dropping those that render to nothing)."""
    for key, value in list(attributes.items()):
        if type(value) is LazyContent:
            text = value.render()
            if text is None:
                del attributes[key]
            else:
                attributes[key] = text


def _data_placeholder(match: re.Match[str]) -> str:
    mime = match.group(1) or "application/octet-stream"
    return f"data:{mime};base64,<{len(match.group(0))} chars omitted>"


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)
