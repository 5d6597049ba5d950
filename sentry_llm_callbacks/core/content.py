"""What may leave the process, and in what shape.

``ContentPolicy`` is the single gate for prompt, completion, tool and document text: in
Privacy Mode it admits nothing (and no content is even serialised); otherwise it applies the
user's ``mask``, replaces base64 ``data:`` blobs with a placeholder and cuts strings to a size
limit with a visible marker. ``to_json`` turns framework objects into compact JSON, never
raising: with ``orjson`` when it is importable and gives the very string the standard encoder
would (see ``_fast_json``), else with the standard library's encoder.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from sentry_llm_callbacks.base.log import log_once
from sentry_llm_callbacks.config.options import default
from sentry_llm_callbacks.core import conversion_memo

try:  # installed wherever LangChain is (langsmith needs it); optional here
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

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
    if isinstance(obj, enum.Enum):  # its value, as IntEnum and StrEnum members are written anyway
        return obj.value
    kind = type(obj)
    if any(c.__name__ in _SIMPLE for c in kind.__mro__):
        return str(obj)
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


def _default_once(obj: Any) -> Any:
    """:func:`_default`, once per object while an export chunk renders: the same framework object
    (a message inside a LangGraph ``Send``) recurs across a chunk's content, and a text orjson
    declines is encoded again by the standard encoder."""
    return conversion_memo.converted_once(obj, _default)


_ENCODER = json.JSONEncoder(default=_default_once, ensure_ascii=False, separators=(",", ":"))


def _orjson_default(obj: Any) -> Any:
    """For orjson: what the standard encoder writes for the types orjson hands over.

    The standard encoder writes subclasses of str, int and float by their built-in value, lists
    and tuples (subclasses too) through iteration and dict subclasses through ``items()``; orjson
    is told to pass those, dataclasses and datetimes here, so that both end up writing the same.
    """
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, int):  # bool is never a subclass
        return int.__int__(obj)
    if isinstance(obj, float):
        return float.__float__(obj)
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, dict):
        return dict(obj.items())
    return _default_once(obj)


#: A number token the two encoders may spell differently (exponents, the tiny decimals orjson
#: writes where Python uses an exponent), or null (orjson writes NaN and infinities as null).
#: Compact JSON has a number or null only at the start or after ``:``, ``,`` or ``[``; a match
#: inside a string only costs the standard path.
_AMBIGUOUS = re.compile(r"(?:^|[:,\[])(?:-?\d[\d.]*[eE]|-?0\.0000|null)")
#: What every such token contains (orjson writes an exponent with its sign, as Python does):
#: substring tests are ten times cheaper than the pattern, which runs only after one of them.
_SUSPECT = ("null", "e-", "e+", "0.0000")
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    if orjson is not None
    else 0
)


def _fast_json(value: Any) -> str | None:
    """``value`` as orjson writes it, or None where that might differ from the standard encoder
    (orjson refuses non-str keys, integers beyond 64 bits, lone surrogates and deep nesting; the
    float spellings and null are checked in its output)."""
    try:
        text = orjson.dumps(value, default=_orjson_default, option=_ORJSON_OPTIONS).decode()
    except Exception:
        return None
    for suspect in _SUSPECT:
        if suspect in text:
            return None if _AMBIGUOUS.search(text) else text
    return text


def _orjson_agrees() -> bool:
    """orjson's float spelling has changed between its versions: use it only if, on the edge
    cases, this one writes what the standard encoder writes or ``_fast_json`` declines."""
    probes: list[Any] = [0.1, 1e15, 1e16, 1e22, 1.5e300, 123456789012345680.0, 1.7976931348623157e308]
    probes += [1e-4, 1e-5, 1.5e-7, 5e-324]
    probes += [-x for x in probes] + [0.0, -0.0, 2**63 - 1, 2**64 - 1, -(2**63), '\x00\x1f\x7f\u2028é"\\/']
    for probe in probes:
        try:
            fast = orjson.dumps(probe).decode()
        except Exception:
            continue
        if fast != _ENCODER.encode(probe) and _fast_json(probe) is not None:
            return False
    return True


def to_json(value: Any) -> str:
    """Compact JSON for any value; strings are returned as they are."""
    if isinstance(value, str):
        return value
    if _FAST:
        text = _fast_json(value)
        if text is not None:
            return text
    try:
        return _ENCODER.encode(value)
    except Exception as exc:  # circular references, hostile model_dump, ...
        log_once("json", logging.DEBUG, "Could not serialise a %s as JSON: %r", type(value).__name__, exc)
        return f"<unserialisable {type(value).__name__}>"


_FAST = orjson is not None and _orjson_agrees()


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


def capture(value: Any) -> tuple[Any, int]:
    """A snapshot of ``value`` and where it came from, in one pass (it runs on the application's
    thread for every content attribute).

    The snapshot copies ``value``'s containers, cheap enough for the application's thread: dicts
    two levels deep, lists and tuples shallowly; the objects inside are shared (framework messages
    and documents are not changed after they are made). The source, for reusing a rendering: a
    dict by its keys and the identity of its values (LangGraph hands each step a new state dict
    around the same message list), anything else by its identity. Equality of the snapshots is
    still checked before a rendering is reused.
    """
    kind = type(value)
    if kind is dict:
        copy: dict[Any, Any] = {}
        for k, v in value.items():
            inner = type(v)
            copy[k] = v.copy() if inner is dict else list(v) if inner is list or inner is tuple else v
        return copy, hash((tuple(value), tuple(map(id, value.values()))))
    if kind is list or kind is tuple:
        return list(value), id(value)
    return value, id(value)


class LazyContent:
    """Content captured on the application's thread, converted and rendered on the export thread.

    ``value`` must be a snapshot (see :func:`capture`), so that later changes by the application
    do not leak into the span; ``convert`` (framework objects to plain data) runs at render time.
    """

    __slots__ = ("convert", "policy", "source", "value")

    def __init__(
        self, value: Any, policy: ContentPolicy, convert: Callable[[Any], Any] | None = None, source: int = 0
    ) -> None:
        self.value = value
        self.policy = policy
        self.convert = convert
        self.source = source  # see capture()

    def render(self) -> str | None:
        value = self.value
        if self.convert is not None:
            try:
                value = self.convert(value)
            except Exception as exc:
                log_once("convert", logging.DEBUG, "Could not convert content: %r", exc)
        return self.policy.render(value)


class RenderCache(dict[tuple[int, Any, int], tuple[Any, ContentPolicy, "str | None"]]):
    """What one export chunk has rendered, so that repeated content is rendered once.

    As a dict: (source, convert, id(policy)) -> (snapshot, policy, text). The entry keeps its
    policy alive, so that the policy's id in the key cannot be reused (hashing the policy's
    fields each time cost more than a tenth of a cached lookup); a trace's runs share one
    policy object.

    ``converted`` is the chunk's memo of framework objects converted to plain data (see
    :mod:`.conversion_memo`), alive exactly as long as the chunk's renderings.
    """

    __slots__ = ("converted",)

    def __init__(self) -> None:
        super().__init__()
        self.converted: conversion_memo.Memo = {}


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
        text = rendered(value, cache)
        if text is None:
            del finished[key]
        else:
            finished[key] = text
    return finished


def rendered(value: LazyContent, cache: RenderCache | None) -> str | None:
    """``value`` rendered, through ``cache`` (one per export batch) when given."""
    if cache is None or not value.source:
        return value.render()
    cache_key = (value.source, value.convert, id(value.policy))
    hit = cache.get(cache_key)
    try:
        same = hit is not None and hit[1] is value.policy and hit[0] == value.value
    except Exception:
        same = False
    if same:
        return hit[2]  # type: ignore[index]
    conversion_memo.set_active(cache.converted)
    try:
        text = value.render()
    finally:
        conversion_memo.set_active(None)
    cache[cache_key] = (value.value, value.policy, text)
    return text


def _data_placeholder(match: re.Match[str]) -> str:
    mime = match.group(1) or "application/octet-stream"
    return f"data:{mime};base64,<{len(match.group(0))} chars omitted>"
