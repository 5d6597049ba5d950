"""Reading what the local receiver decoded: delivery, and finding spans by name or place."""

from __future__ import annotations

import sentry_llm_callbacks as slc
from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan


def delivered(receiver: LocalReceiver, count: int | None = None, timeout: float = 10.0) -> list[ReceivedSpan]:
    """Flush and return what the receiver decoded; with ``count``, wait for that many spans."""
    assert slc.flush(timeout), f"flush failed: {slc.stats()}"
    if count is not None:
        return receiver.wait_for_spans(count, timeout)
    return receiver.spans


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, f"{len(matches)} spans named {name!r} in {[s.name for s in spans]}"
    return matches[0]


def children_of(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


def root_of(spans: list[ReceivedSpan]) -> ReceivedSpan:
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    assert len(roots) == 1, [s.name for s in roots]
    return roots[0]
