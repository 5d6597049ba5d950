"""The package logger, and "once per kind" logging for problems that repeat on every run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger("sentry_llm_callbacks")

_seen: set[str] = set()
_seen_lock = threading.Lock()


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
