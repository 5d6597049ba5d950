"""Our own threads and requests, kept out of the app's telemetry.

A thread inherits nothing from the code that starts it in plain Python, but sentry-sdk's
threading integration (on by default) copies the starting thread's scopes into it: an export
thread first started inside a traced web request would report every OTLP request it ever sends
as an ``http.client`` span of that request's transaction and as a breadcrumb on the app's error
events (sentry-sdk skips only requests to the app's own DSN host). A thread started from an
empty :class:`contextvars.Context` gets fresh scopes with no span and no breadcrumbs, whatever
the starting code had, and nothing it records is ever sent. The same empty context around a
request made on the caller's thread (``test_connection()``) keeps that request out too. Only
standard-library calls: nothing of sentry-sdk or OpenTelemetry is touched or imported.

Example::

    start_daemon(worker.run, "sentry-llm-callbacks-export")
    result = outside_app_context(session.post, url, data=b"")
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def start_daemon(target: Callable[..., object], name: str, *args: Any) -> threading.Thread:
    """Start ``target(*args)`` on a daemon thread that begins in an empty context."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    contextvars.Context().run(thread.start)
    return thread


def outside_app_context(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)`` in an empty context: no app span is its parent, no app scope
    records it."""
    return contextvars.Context().run(call, *args, **kwargs)
