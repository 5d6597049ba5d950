"""The composition root: the current destination, its export pipeline and target, the recorder
and its reaper; the one place that knows both the core and the export side.

One pipeline per process, created on first use and shared by every handler of every
framework. ``configure()`` swaps it atomically; the old one is flushed and closed in the
background within its deadline.

Exit: an ``atexit`` hook flushes within ``exit_timeout``. ``multiprocessing`` children end with
``os._exit``, which skips ``atexit``; multiprocessing runs its own finalisers there first
(``util._exit_function`` in ``BaseProcess._bootstrap``), so the same flush is registered as one.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.base.log import NOT_CONFIGURED, fork_safe, log_once, logger, warn_user
from sentry_llm_callbacks.base.threads import outside_app_context, start_daemon
from sentry_llm_callbacks.config.options import default
from sentry_llm_callbacks.config.settings import Destination, build_destination
from sentry_llm_callbacks.core import adapter
from sentry_llm_callbacks.core.pricing import PriceTable
from sentry_llm_callbacks.core.reaper import RunReaper
from sentry_llm_callbacks.core.recorder import Recorder
from sentry_llm_callbacks.core.target import Target
from sentry_llm_callbacks.sentry_sdk import interop as sentry_sdk_interop
from sentry_llm_callbacks.sentry_sdk.issues import SentryIssues

if TYPE_CHECKING:
    from sentry_llm_callbacks.export.pipeline import ExportPipeline

_lock: threading.RLock = fork_safe(sys.modules[__name__], "_lock", threading.RLock)
_destination: Destination | None = None
_pipeline: ExportPipeline | None = None
#: What new traces are recorded for: the destination, with ``_pipeline``'s sink.
_target: Target | None = None
#: The price table of the destination installed last (made at ``configure()``: genai-prices
#: starts loading then, not at the first trace).
_prices: PriceTable | None = None
_env_checked = False


def get_pipeline() -> ExportPipeline | None:
    """The pipeline for the current destination, created on first use; None if not configured."""
    pipeline = _pipeline
    if pipeline is not None:
        return pipeline
    return _create_pipeline()


def get_target() -> Target | None:
    """What a trace starting now is recorded for (the recorder asks at each root); None if not configured."""
    target = _target
    if target is not None:
        return target
    if _create_pipeline() is None:
        return None
    return _target


def _create_pipeline() -> ExportPipeline | None:
    global _pipeline, _target, _destination, _env_checked
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
                warn_user("not-configured", NOT_CONFIGURED.format(problem=exc.problem))
                return None
        # The export side is imported with the first pipeline, not with the package: an app that
        # imports us and never traces (or traces later) does not pay for it at start-up.
        from sentry_llm_callbacks.export.pipeline import ExportPipeline

        _child_exit.watch()
        pipeline = outside_app_context(ExportPipeline, _destination)  # its threads start clean
        _target = Target.create(_destination, pipeline.sink, _prices)  # None: a destination read from the environment
        _pipeline = pipeline
        reaper.start(_destination.run_timeout)
        logger.debug("Export pipeline created for %r", _destination)
        return _pipeline


def current_destination() -> Destination | None:
    return _destination


def install(destination: Destination) -> None:
    """Make ``destination`` current; the previous pipeline is flushed and closed in the background."""
    global _destination, _pipeline, _target, _prices, _env_checked
    prices = PriceTable(destination.prices)
    with _lock:
        old = _pipeline, _target
        _destination = destination
        _prices = prices
        _pipeline = _target = None
        _env_checked = True
    if old[0] is not None:
        _retire(*old)


class _Retiring:
    """A replaced pipeline delivering what it holds on a thread of its own; ``flush()``,
    ``shutdown()`` and the exit flush wait for it within their deadline."""

    def __init__(self, pipeline: ExportPipeline, target: Target | None) -> None:
        self.ok = False
        self.done = threading.Event()
        self._pipeline = pipeline
        self._target = target
        start_daemon(self._run, "sentry-llm-callbacks-retire")

    def _run(self) -> None:
        try:
            self.ok = _close(self._pipeline, self._target, self._pipeline.destination.exit_timeout)
        finally:
            self.done.set()


#: Replaced pipelines still delivering (a process may exit right after a new ``configure()``).
_retiring: list[_Retiring] = []


def _retire(pipeline: ExportPipeline, target: Target | None) -> None:
    _retiring[:] = [r for r in _retiring if not r.done.is_set()]
    _retiring.append(_Retiring(pipeline, target))


def _close(pipeline: ExportPipeline, target: Target | None, timeout: float) -> bool:
    """Shut ``pipeline`` down within ``timeout``: first the traces still waiting for their tail
    decision are decided with what is known (sent or counted, never lost), then it delivers."""
    if target is not None:
        try:
            target.sampling.decide_all()
        except Exception as exc:
            log_once("decide-all", logging.WARNING, "Deciding held traces at shutdown failed: %r", exc)
    return pipeline.shutdown(timeout)


def _wait_for_retired(deadline: float) -> bool:
    """Wait until ``deadline`` (monotonic) for replaced pipelines; True if all delivered. A
    finished one is reported once, then forgotten."""
    ok = True
    for retiring in list(_retiring):
        if retiring.done.wait(max(0.0, deadline - time.monotonic())):
            ok = retiring.ok and ok
            with contextlib.suppress(ValueError):
                _retiring.remove(retiring)
        else:
            ok = False
    return ok


def reset() -> None:
    """Forget the destination (the next use reads the environment again)."""
    global _destination, _pipeline, _target, _prices, _env_checked
    with _lock:
        old, target = _pipeline, _target
        _destination = None
        _pipeline = _target = _prices = None
        _env_checked = False
    reaper.stop()
    _retiring.clear()
    if old is not None:
        _close(old, target, 0.5)


def deadline_seconds(timeout: object, default: float) -> float:
    """A timeout a deadline can be computed from, whatever the caller passed: public functions
    never raise on a timeout. None is ``default``; NaN, negative or not a number is 0 (check
    once, don't wait); infinity waits as long as it takes (a year, as a finite number)."""
    if timeout is None:
        return default
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or math.isnan(timeout) or timeout < 0:
        log_once("bad-timeout", logging.WARNING, "A timeout of %r seconds was read as 0.", timeout)
        return 0.0
    return min(float(timeout), 365 * 24 * 3600.0)


def _exit_timeout(pipeline: ExportPipeline | None) -> float:
    """The default deadline of a flush: that of the pipeline's destination, else the current one's."""
    destination = pipeline.destination if pipeline is not None else _destination
    return destination.exit_timeout if destination is not None else default("exit_timeout")


def flush(timeout: float | None = None) -> bool:
    pipeline = _pipeline
    deadline = time.monotonic() + deadline_seconds(timeout, _exit_timeout(pipeline))
    if pipeline is None:
        return _wait_for_retired(deadline)
    reaper.sweep()  # runs already past their time limit are delivered with this flush
    return _wait_for_retired(deadline) & pipeline.flush(max(0.0, deadline - time.monotonic()))


def shutdown(timeout: float | None = None) -> bool:
    global _pipeline, _target
    with _lock:
        pipeline, target = _pipeline, _target
        _pipeline = _target = None
    deadline = time.monotonic() + deadline_seconds(timeout, _exit_timeout(pipeline))
    if pipeline is None:
        return _wait_for_retired(deadline)
    reaper.sweep()
    reaper.stop()
    return _wait_for_retired(deadline) & _close(pipeline, target, max(0.0, deadline - time.monotonic()))


def _at_exit() -> None:
    pipeline, target = _pipeline, _target
    with contextlib.suppress(Exception):  # interpreter teardown: never raise
        seconds = _exit_timeout(pipeline)
        deadline = time.monotonic() + seconds
        if pipeline is not None:
            reaper.sweep()
            _close(pipeline, target, seconds)
        _wait_for_retired(deadline)


def _after_fork_in_child() -> None:
    """A forked child gets a fresh pipeline: the parent's thread does not exist here, and its
    queued spans belong to the parent. (``_lock`` is renewed by ``fork_safe``, registered first.)"""
    global _pipeline, _target
    _pipeline = _target = None
    _retiring.clear()  # the parent's, and their threads do not exist here
    recorder.clear()


class _ChildExit:
    """Registers the exit flush as a multiprocessing finaliser in each multiprocessing child.

    ``BaseProcess._bootstrap`` clears the finaliser registry inherited from the parent, then runs
    the after-fork callbacks (where this registers again), runs the target, and calls
    ``util._exit_function()`` (which runs the finalisers) before ``os._exit``. A child started
    with ``spawn`` imports this module afresh, so the import registers it too.

    ``multiprocessing`` is not imported for this (it costs a tenth of the package's import): the
    hook is set up once the app has imported it, checked at import, before each fork and when a
    pipeline is created, which is before any child process can start with it.
    """

    watching = False

    def watch(self) -> None:
        if self.watching or "multiprocessing" not in sys.modules:
            return
        import multiprocessing.util  # already in use by the app: what is left of it to load is small

        self.watching = True
        multiprocessing.util.register_after_fork(self, _ChildExit.after_fork)
        if multiprocessing.parent_process() is not None:  # imported inside a child, after its bootstrap began
            self.register()

    def register(self) -> None:
        import multiprocessing.util

        # exitpriority 0: run with the first finalisers, before multiprocessing closes its pipes.
        multiprocessing.util.Finalize(None, _at_exit, exitpriority=0)

    def after_fork(self) -> None:
        self.register()


recorder = Recorder(
    get_target,
    failure_reporter=SentryIssues(),
    ambient_span=sentry_sdk_interop.ambient_parent,
    at_root=sentry_sdk_interop.at_root,
)
adapter.use_recorder(recorder)  # what every framework adapter records through
reaper = RunReaper(recorder.reap)
atexit.register(_at_exit)
_child_exit = _ChildExit()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_child_exit.watch, after_in_child=_after_fork_in_child)
_child_exit.watch()
