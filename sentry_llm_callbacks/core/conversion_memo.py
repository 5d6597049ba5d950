"""Framework objects converted to plain data once per export chunk.

LangGraph hands the same message objects to every step of an agent, and each step's captured
content holds them again: rendering a chunk of spans would convert one message many times. While
a chunk renders, its memo (owned by ``content.RenderCache``, living exactly as long as the chunk)
maps each object to its conversion. The chunk's snapshots hold those objects until it is
rendered, and rendering reads their state at that point anyway, so the memo changes nothing in
the output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: (id(object), id(convert)) -> (object, convert, plain data). The entry keeps its object and
#: converter alive, so that their ids cannot be reused by others while the memo lives.
Memo = dict[tuple[int, int], tuple[Any, Any, Any]]

#: The memo of the chunk this thread is rendering (an export thread renders one chunk at a time).
_rendering = threading.local()


def set_active(memo: Memo | None) -> None:
    """Make ``memo`` the one :func:`converted_once` uses on this thread (None: no memo)."""
    _rendering.memo = memo


def converted_once(obj: Any, convert: Callable[[Any], Any]) -> Any:
    """``convert(obj)``, computed once per object and converter while a chunk renders.

    The result is shared by every place the object appears in the chunk: callers must not change it.

    >>> converted_once("hi", str.upper)  # no chunk rendering: converted every time
    'HI'
    """
    memo: Memo | None = getattr(_rendering, "memo", None)
    if memo is None:
        return convert(obj)
    key = (id(obj), id(convert))
    hit = memo.get(key)
    if hit is not None:
        return hit[2]
    result = convert(obj)
    memo[key] = (obj, convert, result)
    return result
