"""The recorder's timer: every few seconds, runs whose end never came are ended as abandoned.

It is the recorder's own housekeeping on a daemon thread of its own, owned by the process-wide
state next to the recorder; the export pipeline knows nothing of it. Fork-safe: a forked child
has no such thread (its lock and event are renewed), and the next ``start`` there makes one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sentry_llm_callbacks.base.log import fork_safe, log_once
from sentry_llm_callbacks.base.threads import start_daemon

#: Seconds between two sweeps of the open runs.
REAP_INTERVAL = 5.0


class RunReaper:
    """Calls ``reap(max_age)`` every ``interval`` seconds while started.

    Example::

        reaper = RunReaper(recorder.reap)
        reaper.start(max_age=3600.0)
        ...
        reaper.stop()
    """

    def __init__(self, reap: Callable[[float], int], interval: float = REAP_INTERVAL) -> None:
        self._reap = reap
        self._interval = interval
        self._max_age: float | None = None  # not started: a sweep does nothing
        self._thread: threading.Thread | None = None
        fork_safe(self, "_lock")
        fork_safe(self, "_stop", threading.Event)

    def start(self, max_age: float) -> None:
        """Sweep for runs older than ``max_age`` seconds from now on (starting the thread if needed)."""
        with self._lock:
            self._max_age = max_age
            if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
                return
            self._stop = threading.Event()
            self._thread = start_daemon(self._run, "sentry-llm-callbacks-reaper", self._stop)

    def stop(self) -> None:
        """Stop sweeping (the thread ends at its next wake-up, at once)."""
        with self._lock:
            self._stop.set()
            self._thread = None

    def sweep(self) -> int:
        """One sweep now (nothing before the first ``start``); returns how many runs were ended."""
        if self._max_age is None:
            return 0
        try:
            return self._reap(self._max_age)
        except Exception as exc:  # housekeeping must never take the thread down
            log_once("reaper", logging.WARNING, "Run reaper failed: %r", exc)
            return 0

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self.sweep()
