"""Content rendering: orjson, where it is used, writes exactly what the standard encoder writes.

The standard library's encoder (with the package's fallback for objects) is the reference: for
every generated value the fast path either declines (None) or returns the identical string.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import math
import pathlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel

from sentry_llm_callbacks.core import content
from sentry_llm_callbacks.core.content import ContentPolicy, to_json

pytestmark = pytest.mark.skipif(not content._FAST, reason="orjson is not installed, or writes floats differently")


class Colour(enum.Enum):
    RED = "red"
    PAIR = (1, 2)
    NOTHING = None
    RATIO = 0.5


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2**40


class Tag(str):
    pass


class Count(int):
    pass


class Ratio(float):
    pass


class Items(list):
    def __iter__(self) -> Any:  # the standard encoder iterates subclasses: reversed shows which it used
        return reversed(list.__iter__(self))


class Row(dict):
    def items(self) -> Any:
        return reversed(list(dict.items(self)))


Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Doc:
    text: str
    score: float
    tags: list[str]


class Slotted:
    __slots__ = ("kind", "size")

    def __init__(self, kind: str, size: int) -> None:
        self.kind, self.size = kind, size


class Plain:
    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value, self._private = name, value, object()


class Model(BaseModel):
    name: str
    weight: float
    when: datetime.datetime | None = None


def _ordered(items: list[tuple[str, Any]]) -> collections.OrderedDict[str, Any]:
    ordered = collections.OrderedDict(items)
    if ordered:
        ordered.move_to_end(next(iter(ordered)))  # its own order differs from its dict storage's
    return ordered


SAMPLE_TEXTS = ["", "é ü 你好 😀", "\x00\x1f\x7f", "\u2028\u2029", '"\\/', "\ud800 lone", "1e5:null"]
text = st.text(st.characters(codec=None), max_size=12) | st.sampled_from([*SAMPLE_TEXTS, "data:a/b;base64," + "A" * 20])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e16, 1e-5, 1e-4, 5e-324, 1e22, 0.1, 123456789012345680.0, math.nan, -math.inf]
)
ints = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63)]
)
when = st.datetimes(timezones=st.none() | st.timezones()) | st.dates() | st.times()
scalars = (
    st.none()
    | st.booleans()
    | ints
    | floats
    | text
    | st.binary(max_size=8)
    | st.builds(bytearray, st.binary(max_size=4))
    | when
    | st.decimals(allow_nan=True)
    | st.uuids()
    | st.sampled_from([*Colour, *Level, pathlib.PurePosixPath("/tmp/x"), Ratio(1e-7), Ratio(2.5)])
    | st.builds(Tag, text)
    | st.builds(Count, ints)
)
messages = st.one_of(
    st.builds(HumanMessage, content=text),
    st.builds(SystemMessage, content=text),
    st.builds(
        AIMessage,
        content=text,
        tool_calls=st.lists(
            st.fixed_dictionaries(
                {"name": st.just("add"), "args": st.dictionaries(text, ints, max_size=2), "id": text}
            ),
            max_size=1,
        ),
    ),
    st.builds(ToolMessage, content=text, tool_call_id=text),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = text | ints | floats | st.booleans() | st.none()
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3).map(Items),
        st.builds(Point, children, children),
        st.dictionaries(text, children, max_size=4),
        st.dictionaries(keys, children, max_size=3),
        st.dictionaries(text, children, max_size=3).map(Row),
        st.lists(st.tuples(text, children), max_size=3).map(_ordered),
        st.frozensets(ints | text, max_size=3),
        st.builds(Doc, text, floats, st.lists(text, max_size=2)),
        st.builds(Slotted, text, ints),
        st.builds(Plain, text, children),
        st.builds(Model, name=text, weight=floats, when=st.none() | st.datetimes()),
        messages,
    )


values = st.recursive(scalars | messages, _containers, max_leaves=25)


def reference(value: Any) -> str | None:
    """What the standard encoder writes, or None where it raises."""
    try:
        return content._ENCODER.encode(value)
    except Exception:
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_orjson_writes_the_standard_encoders_string_or_declines(value: Any) -> None:
    fast = content._fast_json(value)
    if fast is not None:
        assert fast == reference(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_rendered_content_is_the_same_with_and_without_orjson(value: Any) -> None:
    policy = ContentPolicy(max_chars=200)
    with_orjson = (to_json(value), policy.render(value))
    content._FAST = False
    try:
        assert (to_json(value), policy.render(value)) == with_orjson
    finally:
        content._FAST = True


@pytest.mark.parametrize(
    "value",
    [
        {"messages": [HumanMessage("What is 2 + 3?"), AIMessage("5", tool_calls=[])]},
        [{"role": "user", "parts": [{"type": "text", "content": "héllo 😀"}]}],
        {"temperature": 0.7, "max_tokens": 512, "stop": ["\n"], "nested": {"ok": True}},
        Model(name="m", weight=2.5),
        Doc("text", 0.25, ["a"]),
    ],
)
def test_everyday_content_takes_the_fast_path(value: Any) -> None:
    fast = content._fast_json(value)
    assert fast is not None and fast == reference(value)


@pytest.mark.parametrize(
    "value",
    [
        [1e-5],
        {"x": 1e16},
        [math.nan],
        {"inf": -math.inf},
        {"none": None},
        {1: "int key"},
        [2**64],
        ["\ud800"],
        {"n": Ratio(1e-7)},
    ],
)
def test_fast_path_declines_what_orjson_might_write_differently(value: Any) -> None:
    assert content._fast_json(value) is None
    assert to_json(value) == reference(value) or reference(value) is None


def test_enum_members_are_written_as_their_value() -> None:
    assert to_json([Colour.RED, Colour.PAIR, Colour.NOTHING, Level.HIGH]) == f'["red",[1,2],null,{2**40}]'


def test_deep_nesting_past_orjsons_limit_is_written_by_the_standard_encoder() -> None:
    value: Any = "leaf"
    for _ in range(300):
        value = [value]
    assert content._fast_json(value) is None
    assert to_json(value) == "[" * 300 + '"leaf"' + "]" * 300


def test_a_circular_value_still_renders_as_unserialisable() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert to_json(loop) == "<unserialisable list>"
