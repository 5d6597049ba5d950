"""Conversations across traces: where a run resumed after an interrupt finds the run it continues.

A LangGraph run stopped by ``interrupt()`` ends its trace; the run that resumes it
(``Command(resume=...)`` on the same thread) is a new trace in the same conversation. Its root
links to the interrupted run's root, when that run was recorded in this process: this map keeps,
per conversation key (the thread id), the root span of the last trace on it that ended
interrupted. It is bounded (the oldest entries go first), its lock is re-created in a forked
child, and the recorder clears it there (the parent's runs are not the child's).
"""

from __future__ import annotations

from collections import OrderedDict

from opentelemetry.trace import SpanContext

from sentry_llm_callbacks.base.log import fork_safe

#: Conversations remembered at most; each entry is a short key and a span context.
MAX_INTERRUPTED = 4096


class InterruptedRoots:
    """Conversation key -> root span of its last trace that ended interrupted.

    Example::

        roots = InterruptedRoots()
        roots.interrupted("thread-1", root_context)
        roots.get("thread-1")  # root_context, until the conversation's next trace ends otherwise
    """

    def __init__(self, capacity: int = MAX_INTERRUPTED) -> None:
        self._capacity = capacity
        self._roots: OrderedDict[str, SpanContext] = OrderedDict()
        fork_safe(self, "_lock")

    def __len__(self) -> int:
        return len(self._roots)

    def get(self, key: str) -> SpanContext | None:
        return self._roots.get(key)

    def interrupted(self, key: str, root: SpanContext) -> None:
        """The trace of ``root`` on conversation ``key`` ended at an interrupt."""
        with self._lock:
            self._roots.pop(key, None)
            self._roots[key] = root
            while len(self._roots) > self._capacity:
                self._roots.popitem(last=False)

    def completed(self, key: str) -> None:
        """A trace on conversation ``key`` ended without an interrupt: nothing waits to resume."""
        if key in self._roots:
            with self._lock:
                self._roots.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._roots.clear()
