"""Waiting for something to happen: the one place the tests poll.

A test that waits for a thread, a process, a port or spans waits on the condition itself, here
or on an ``Event`` / ``join``; a ``sleep`` left in a test is the behaviour under test (a slow step,
a run older than a timeout, a window in which nothing may be sent) and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """True as soon as ``condition()`` is true; False if it is still false after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
