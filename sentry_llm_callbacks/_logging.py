"""The package logger, "once per kind" logging for problems that repeat on every run, URL
redaction for log lines, and locks that survive ``fork``."""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

logger = logging.getLogger("sentry_llm_callbacks")

# --------------------------------------------------------------------------- fork-safe locks

#: (owner, attribute name, factory) of every lock to re-create in a forked child. Owners are held
#: weakly: a retired pipeline's locks are forgotten with it.
_fork_safe: list[tuple[weakref.ref[Any], str, Callable[[], Any]]] = []


def fork_safe(owner: object, name: str, factory: Callable[[], Any] = threading.Lock) -> Any:
    """Set ``owner.<name>`` to ``factory()``, now and again in every child forked later.

    A lock held by another thread at the moment of ``fork`` stays locked forever in the child
    (that thread does not exist there), so every lock on a path the child may take is replaced.
    Returns the new object. Modules register with ``fork_safe(sys.modules[__name__], "_lock")``.

    Example::

        fork_safe(self, "_lock", threading.RLock)
    """
    value = factory()
    setattr(owner, name, value)
    if len(_fork_safe) > 256:  # each configure() registers a new pipeline's locks: forget dead ones
        _fork_safe[:] = [entry for entry in _fork_safe if entry[0]() is not None]
    _fork_safe.append((weakref.ref(owner), name, factory))
    return value


def _renew_locks_in_child() -> None:
    alive = []
    for ref, name, factory in _fork_safe:
        owner = ref()
        if owner is not None:
            setattr(owner, name, factory())
            alive.append((ref, name, factory))
    _fork_safe[:] = alive


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks_in_child)

# --------------------------------------------------------------------------- redaction


def redact_url(url: str) -> str:
    """``url`` fit for a log line: credentials in the userinfo and every query value replaced.

    >>> redact_url("https://user:KEY@o1.ingest.sentry.io/api/1/otlp/v1/traces?sentry_key=KEY")
    'https://***@o1.ingest.sentry.io/api/1/otlp/v1/traces?sentry_key=***'
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rpartition("@")[2]
        query = "&".join(
            f"{pair.partition('=')[0]}=***" if "=" in pair else "***" for pair in parts.query.split("&") if pair
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<unparsable URL>"


# --------------------------------------------------------------------------- log once

_seen: set[str] = set()
_seen_lock: threading.Lock = fork_safe(sys.modules[__name__], "_seen_lock")


def log_once(kind: str, level: int, msg: str, *args: object) -> None:
    """Log ``msg`` at ``level`` the first time ``kind`` happens, at DEBUG afterwards."""
    with _seen_lock:
        first = kind not in _seen
        if first:
            if len(_seen) > 1000:  # bounded: kinds can embed values such as status codes
                _seen.clear()
            _seen.add(kind)
    logger.log(level if first else logging.DEBUG, msg, *args)


def reset_log_once() -> None:
    with _seen_lock:
        _seen.clear()


def isolated(extractor: Callable[..., T], *args: Any, default: T) -> T:
    """``extractor(*args)``, or ``default`` if it raises: a malformed framework payload costs only
    what that one extractor reads (and one warning), never the run it belongs to."""
    try:
        return extractor(*args)
    except Exception as exc:
        log_once(
            f"extractor-{getattr(extractor, '__qualname__', extractor)}-{type(exc).__name__}",
            logging.WARNING,
            "sentry_llm_callbacks: could not read %s from a framework payload (%r); the span is sent without it.",
            getattr(extractor, "__name__", "a value"),
            exc,
        )
        return default
