"""Process-wide state: the current destination, its export pipeline, and the recorder.

One pipeline per process, created on first use and shared by every handler of every
framework. ``configure()`` swaps it atomically; the old one is flushed and closed in the
background within its deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading

from ._logging import log_once, logger
from .config import Destination, build_destination
from .errors import ConfigurationError
from .export import ExportPipeline
from .issues import SentryIssues
from .recorder import Recorder

_lock = threading.RLock()
_destination: Destination | None = None
_pipeline: ExportPipeline | None = None
_env_checked = False


def get_pipeline() -> ExportPipeline | None:
    """The pipeline for the current destination, created on first use; None if not configured."""
    pipeline = _pipeline
    if pipeline is not None:
        return pipeline
    return _create_pipeline()


def _create_pipeline() -> ExportPipeline | None:
    global _pipeline, _destination, _env_checked
    with _lock:
        if _pipeline is not None:
            return _pipeline
        if _destination is None:
            if _env_checked:
                return None
            _env_checked = True
            try:
                _destination = build_destination()
            except ConfigurationError as exc:
                log_once(
                    "not-configured",
                    logging.WARNING,
                    "sentry_llm_callbacks is not configured (%s); runs are not traced. "
                    "Call sentry_llm_callbacks.configure(dsn=...) or set SENTRY_DSN.",
                    exc.problem,
                )
                return None
        _pipeline = ExportPipeline(_destination, maintenance=_maintenance)
        logger.debug("Export pipeline created for %r", _destination)
        return _pipeline


def _maintenance() -> None:
    pipeline = _pipeline
    if pipeline is not None:
        recorder.reap(pipeline.destination.run_timeout)


def current_destination() -> Destination | None:
    return _destination


def install(destination: Destination) -> None:
    """Make ``destination`` current; the previous pipeline is flushed and closed in the background."""
    global _destination, _pipeline, _env_checked
    with _lock:
        old = _pipeline
        _destination = destination
        _pipeline = None
        _env_checked = True
    if old is not None:
        timeout = old.destination.exit_timeout
        threading.Thread(target=old.shutdown, args=(timeout,), name="sentry-llm-callbacks-retire", daemon=True).start()


def reset() -> None:
    """Forget the destination (the next use reads the environment again)."""
    global _destination, _pipeline, _env_checked
    with _lock:
        old = _pipeline
        _destination = None
        _pipeline = None
        _env_checked = False
    if old is not None:
        old.shutdown(0.5)


def flush(timeout: float | None = None) -> bool:
    pipeline = _pipeline
    if pipeline is None:
        return True
    return pipeline.flush(pipeline.destination.exit_timeout if timeout is None else timeout)


def shutdown(timeout: float | None = None) -> bool:
    global _pipeline
    with _lock:
        pipeline = _pipeline
        _pipeline = None
    if pipeline is None:
        return True
    return pipeline.shutdown(pipeline.destination.exit_timeout if timeout is None else timeout)


def _at_exit() -> None:
    pipeline = _pipeline
    if pipeline is not None:
        with contextlib.suppress(Exception):  # interpreter teardown: never raise
            pipeline.shutdown(pipeline.destination.exit_timeout)


def _after_fork_in_child() -> None:
    """A forked child gets a fresh pipeline: the parent's thread does not exist here, and its
    queued spans belong to the parent."""
    global _pipeline, _lock
    _lock = threading.RLock()
    _pipeline = None
    recorder.clear()


recorder = Recorder(get_pipeline, failure_reporter=SentryIssues())
atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
