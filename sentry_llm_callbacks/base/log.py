"""The package logger, "once per kind" logging for problems that repeat on every run, warnings
a user must see, URL redaction for log lines, and locks that survive ``fork``.

Most problems are logged on the ``sentry_llm_callbacks`` logger, which has a ``NullHandler``:
an app that never configured logging is not spammed with a library's diagnostics. Three problems
need the user to act, and without them "why don't I see my traces?" has no answer: the package
is not configured, the endpoint refuses our key (401/403), spans are being dropped. These go
through :func:`warn_user`, once per kind, which

- always logs a WARNING record (an app that configured logging gets it where its logs go), and
- when no handler would show that record (logging not configured: the ``NullHandler`` also
  silences Python's last-resort handler), also issues ``warnings.warn`` with the category
  :class:`SentryLlmCallbacksWarning`.

Why ``warnings`` rather than a line printed to stderr or dropping the ``NullHandler``: Python
shows a ``UserWarning`` by default (on stderr, and in Jupyter under the cell), users know how
to silence it (``warnings.filterwarnings("ignore", category=SentryLlmCallbacksWarning)``,
``-W``, pytest's ``filterwarnings``), and only these three messages are affected; removing the
``NullHandler`` would put every diagnostic of the package on stderr. The warning is skipped
when logging already shows the record, so nobody sees it twice, and a filter that turns
warnings into errors never raises into the caller.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE = "sentry_llm_callbacks"
logger = logging.getLogger(_PACKAGE)


@functools.cache
def _library_prefixes() -> tuple[str, ...]:
    """Where library code lives: this package (wherever it is installed) and the standard
    library. Worked out at the first user warning, not at import (``sysconfig`` costs ~1.5 ms)."""
    import sysconfig

    package_root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
    stdlib = (os.path.join(path, "") for key, path in sysconfig.get_paths().items() if key in ("stdlib", "platstdlib"))
    return tuple({package_root, *stdlib})


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
    logger.log(level if _first_time(kind) else logging.DEBUG, msg, *args)


def _first_time(kind: str) -> bool:
    with _seen_lock:
        if kind in _seen:
            return False
        if len(_seen) > 1000:  # bounded: kinds can embed values such as status codes
            _seen.clear()
        _seen.add(kind)
        return True


class SentryLlmCallbacksWarning(UserWarning):
    """A problem that stops traces from reaching their destination and needs the user to act:
    the package is not configured, the endpoint refuses the key, spans are being dropped.

    Example::

        warnings.filterwarnings("ignore", category=SentryLlmCallbacksWarning)
    """


#: What to do about spans that were dropped (after "Dropped N span(s): <why>.").
DROP_ADVICE = (
    "Check the destination with `sentry-llm-callbacks test-connection` (or slc.test_connection()); "
    "slc.stats() counts what was lost."
)

#: The endpoint refused the key: every later request will be refused too.
UNAUTHORIZED = (
    "{endpoint} refused our credentials (HTTP {status}), and will refuse every later span. "
    "Copy the DSN again from Sentry (Settings > Projects > your project > Client Keys (DSN)) and "
    "check the key is enabled, or check the headers= given to configure() for a collector"
)

#: Not configured: every run is a no-op until configure() or SENTRY_DSN.
NOT_CONFIGURED = (
    "sentry_llm_callbacks is not configured ({problem}); runs are not traced. "
    "Call sentry_llm_callbacks.configure(dsn=...) or set SENTRY_DSN. To look at traces on this "
    "machine without Sentry, run `python -m sentry_llm_callbacks serve` and use the DSN it prints."
)


def warn_user(kind: str, message: str) -> None:
    """Tell the user ``message`` the first time ``kind`` happens: a WARNING log record, plus a
    :class:`SentryLlmCallbacksWarning` when logging would not show the record (DEBUG afterwards)."""
    if not _first_time(kind):
        logger.debug("%s", message)
        return
    logger.warning("%s", message)
    if logger.isEnabledFor(logging.WARNING) and not _logging_shows_warnings():
        # contextlib.suppress: a filter set to "error" must not raise into the app (or end the
        # export thread).
        with contextlib.suppress(Exception):
            frame = _warning_origin(sys._getframe(1))
            globals_ = frame.f_globals
            warnings.warn_explicit(
                message,
                SentryLlmCallbacksWarning,
                frame.f_code.co_filename,
                frame.f_lineno,
                globals_.get("__name__", "<string>"),
                globals_.setdefault("__warningregistry__", {}),
            )


def _is_library(filename: str) -> bool:
    """True for this package's files, the standard library's, installed packages' (the
    frameworks whose callbacks call us) and the interpreter's frozen modules."""
    return (
        filename.startswith(_library_prefixes())
        or filename.startswith("<frozen")
        or any(part in filename for part in (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}"))
    )


def _warning_origin(caller: FrameType) -> FrameType:
    """The frame a user warning points at: the innermost frame of the application's own code
    (the line that invoked the chain, the query, the call that found nothing configured), as
    ``warnings.warn`` with the right ``stacklevel`` would. On a thread with no application frame
    (the export thread, a framework's thread pool) it is ``caller``: the line of the package that
    found the problem, never line 0."""
    frame: FrameType | None = caller
    while frame is not None:
        if not _is_library(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return caller


def _logging_shows_warnings() -> bool:
    """True if a handler other than a ``NullHandler`` would receive a WARNING record of the
    package logger (the same walk up the hierarchy ``Logger.callHandlers`` does)."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not isinstance(handler, logging.NullHandler) and handler.level <= logging.WARNING:
                return True
        current = current.parent if current.propagate else None
    return False


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


def guarded(framework: str) -> Callable[[F], F]:
    """Decorate a framework's callback so that a tracing problem never reaches the user's code:
    the exception is logged once per kind and the callback returns None. Inside, each piece read
    from the payload goes through :func:`isolated`, and a run is ended in a ``finally``.

    Example::

        @guarded("LangChain")
        def on_chain_start(self, serialized, inputs, **kwargs): ...
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                callback_failed(framework, method.__name__, exc)
                return None

        return cast(F, wrapper)

    return decorate


def callback_failed(framework: str, callback: str, exc: Exception) -> None:
    """Log a framework callback that failed and was skipped (once per kind); what :func:`guarded`
    does, for a callback too hot for a wrapper (one called per streamed chunk)."""
    log_once(
        f"{framework}-{callback}-{type(exc).__name__}",
        logging.WARNING,
        "sentry_llm_callbacks: %s %s failed and was skipped: %r",
        framework,
        callback,
        exc,
    )
