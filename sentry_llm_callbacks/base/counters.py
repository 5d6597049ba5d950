"""The process's counters, as ``stats()`` reports them.

Kept apart from the export pipeline so that every part that counts (the recorder, sampling, the
export queue, extra exporters) imports them without importing each other.
"""

from __future__ import annotations

from sentry_llm_callbacks.base.log import fork_safe


class Counters:
    """Thread-safe counters behind :func:`sentry_llm_callbacks.stats`."""

    NAMES = (
        "spans_started",
        "spans_exported",
        "spans_dropped",
        "exports_failed",
        "runs_abandoned",
        "generations_without_usage",
        # Sampling decisions, one per trace (see sampling.py); none while sample_rate is 1.0.
        "traces_kept_by_head",
        "traces_kept_by_parent",
        "traces_kept_by_errors",
        "traces_kept_by_slower_than",
        "traces_kept_by_costlier_than",
        "traces_dropped_by_sampling",
        "traces_decided_early",
        # Spans an extra exporter (configure(exporters=...)) had no room for.
        "extra_exporter_spans_dropped",
    )

    def __init__(self) -> None:
        fork_safe(self, "_lock")  # taken on every span start: a child forked mid-update must not hang
        self._values = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


#: One set of counters for the process; a new ``configure()`` does not reset them.
COUNTERS = Counters()
