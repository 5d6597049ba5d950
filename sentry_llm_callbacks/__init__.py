"""Send LangChain, LangGraph and LlamaIndex traces to Sentry over OpenTelemetry (OTLP/HTTP).

Quick start::

    import sentry_llm_callbacks as slc
    from sentry_llm_callbacks.langchain import SentryCallbackHandler

    slc.configure(dsn="https://PUBLICKEY@o123.ingest.us.sentry.io/456")
    chain.invoke(inputs, config={"callbacks": [SentryCallbackHandler(user="user_12345")]})

Importing this package imports neither LangChain nor LlamaIndex.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sentry_llm_callbacks import _state
from sentry_llm_callbacks._version import __version__
from sentry_llm_callbacks.base.counters import COUNTERS
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.base.log import SentryLlmCallbacksWarning
from sentry_llm_callbacks.config.options import MAX_QUEUE_BYTES
from sentry_llm_callbacks.config.settings import Destination, build_destination
from sentry_llm_callbacks.connection import (
    ConnectionResult,
    ConnectionTestError,
    TestTraceResult,
    check_destination,
    send_test_trace,
    test_connection,
)
from sentry_llm_callbacks.core import adapter
from sentry_llm_callbacks.core.metadata import trace_context, trace_id_for
from sentry_llm_callbacks.scores import RunRef, current_run, last_trace, score

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "ConfigurationError",
    "ConnectionResult",
    "ConnectionTestError",
    "Destination",
    "RunRef",
    "SentryLlmCallbacksWarning",
    "TestTraceResult",
    "__version__",
    "configure",
    "current_run",
    "flush",
    "last_trace",
    "score",
    "send_test_trace",
    "set_global_handler",
    "shutdown",
    "stats",
    "test_connection",
    "trace_context",
    "trace_id_for",
    "unset_global_handler",
]


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext sentry_llm_callbacks``: global tracing, a bounded flush and a summary after each cell."""
    from sentry_llm_callbacks.devtools.jupyter import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext sentry_llm_callbacks``: stop tracing."""
    from sentry_llm_callbacks.devtools.jupyter import unload_ipython_extension as unload

    unload(shell)


logging.getLogger("sentry_llm_callbacks").addHandler(logging.NullHandler())


def configure(
    *,
    dsn: str | None = None,
    otlp_endpoint: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    privacy_mode: bool | None = None,
    sample_rate: float = 1.0,
    verify: bool = False,
    headers: Mapping[str, str] | None = None,
    service_name: str | None = None,
    allow_insecure_http: bool = False,
    exporters: Sequence[SpanExporter] = (),
    max_queue_size: int = 100_000,
    max_queue_bytes: int = MAX_QUEUE_BYTES,
    max_batch_size: int = 512,
    export_timeout: float | None = None,
    exit_timeout: float = 5.0,
    run_timeout: float = 3600.0,
    max_open_runs: int = 100_000,
    max_content_chars: int = 20_000,
    mask: Callable[[str], str] | None = None,
    pricing: Mapping[str, Any] | None = None,
    capture_errors: bool = True,
    keep: Mapping[str, Any] | None = None,
) -> Destination:
    """Set the process-wide destination every handler sends to, and return it.

    Arguments left out fall back to the environment: ``SENTRY_DSN``,
    ``SENTRY_OTLP_TRACES_ENDPOINT``, ``SENTRY_ENVIRONMENT``, ``SENTRY_RELEASE``,
    ``SENTRY_LLM_PRIVACY_MODE`` and ``OTEL_SERVICE_NAME``. An explicit ``otlp_endpoint``
    without ``dsn`` sends to any OTLP/HTTP traces endpoint (an OpenTelemetry Collector, say),
    with ``headers`` for its auth, and does not read ``SENTRY_DSN``.
    The standard OTLP exporter variables that apply to a traces endpoint are honoured as
    OpenTelemetry's OTLP/HTTP exporter reads them (``OTEL_EXPORTER_OTLP_TRACES_HEADERS``,
    ``..._TIMEOUT``, ``..._COMPRESSION``, ``..._CERTIFICATE``, ``..._CLIENT_CERTIFICATE``,
    ``..._CLIENT_KEY``, each falling back to its ``OTEL_EXPORTER_OTLP_*`` form); ``headers`` and
    ``export_timeout`` given here win.

    With ``verify=True`` the destination is tested first (:func:`test_connection`); if the
    test fails, :class:`ConnectionTestError` is raised and the previous destination is kept.

    When the app has initialised ``sentry_sdk`` with a DSN, an exception a traced run failed
    with that never reached the app's code (a tool error turned into a message, a model a
    fallback replaced, a retried call) is sent once through the app's SDK as an error event
    linked to the run's span, so it shows in Sentry's Issues; in Privacy Mode the event
    carries only the exception type. ``capture_errors=False`` turns this off. Nothing is
    captured while sentry-sdk's own LangChain integration is active (it captures these
    errors itself).

    ``sample_rate`` keeps a share of traces, decided from the trace id. ``keep`` adds rules
    decided when a trace's root run ends, which keep a trace whatever ``sample_rate`` said:
    ``{"errors": True}`` (any span failed, was cancelled or abandoned), ``{"slower_than": 30.0}``
    (seconds the root took), ``{"costlier_than": 0.05}`` (USD its model calls cost, from
    ``gen_ai.cost.total_tokens``). Until then the trace's finished spans wait in memory, at most
    ``max_buffered_spans`` (20 000) and ``max_buffered_bytes`` (64 MiB, estimated) for the
    process (keys of the same dict); a trace that would go over decides at once with what is
    known. Traces kept by a rule carry ``sentry.client_sample_rate`` 1.0 (they were certain to
    be kept), so Sentry's extrapolated counts stay right. With ``sample_rate=1.0`` the rules
    have nothing to add and nothing is buffered.

    The export backlog is bounded: at most ``max_queue_size`` finished spans waiting to be
    encoded, and ``max_queue_bytes`` (4 MiB) of encoded spans waiting to be sent (for instance
    while Sentry is unreachable). When the backlog is full, new traces are dropped whole and
    counted in ``stats()["spans_dropped"]``.

    Raises :class:`ConfigurationError` (a ``ValueError``) naming the field, what is wrong and
    an example of a right value, also when there is nothing to send to (no ``dsn``, no
    ``otlp_endpoint``, no ``SENTRY_DSN``): an explicit call asks for tracing. Never calling
    ``configure()`` with no ``SENTRY_DSN`` is not an error: handlers are no-ops and one
    :class:`SentryLlmCallbacksWarning` says so. The returned :class:`Destination` is immutable; calling
    ``configure()`` again replaces it atomically and starts a fresh export pipeline.

    Example::

        slc.configure(dsn="https://PUBLICKEY@o123.ingest.us.sentry.io/456",
                      environment="production", release="v2.1.0",
                      sample_rate=0.1, keep={"errors": True, "slower_than": 30.0})
    """
    destination = build_destination(
        dsn=dsn,
        otlp_endpoint=otlp_endpoint,
        environment=environment,
        release=release,
        privacy_mode=privacy_mode,
        sample_rate=sample_rate,
        headers=headers,
        service_name=service_name,
        allow_insecure_http=allow_insecure_http,
        exporters=exporters,
        max_queue_size=max_queue_size,
        max_queue_bytes=max_queue_bytes,
        max_batch_size=max_batch_size,
        export_timeout=export_timeout,
        exit_timeout=exit_timeout,
        run_timeout=run_timeout,
        max_open_runs=max_open_runs,
        max_content_chars=max_content_chars,
        mask=mask,
        pricing=pricing,
        capture_errors=capture_errors,
        keep=keep,
    )
    if verify:
        result = check_destination(destination, timeout=min(destination.export_timeout, 10.0))
        if not result.ok:
            raise ConnectionTestError(result)
    _state.install(destination)
    return destination


def flush(timeout: float | None = None) -> bool:
    """Deliver every queued span; True if all were delivered within ``timeout`` seconds.

    Returns at the deadline whatever the endpoint does (``timeout`` defaults to the
    destination's ``exit_timeout``, 5 s).

    Example::

        chain.invoke(...)
        slc.flush(timeout=2)
    """
    return _state.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush within ``timeout`` seconds and stop the export thread. Handlers become no-ops
    until the next use re-creates the pipeline.

    Example::

        slc.shutdown()
    """
    return _state.shutdown(timeout)


def stats() -> dict[str, int]:
    """Counters since the process started: ``spans_started`` (every span a run produced,
    sampled or not), ``spans_exported``, ``spans_dropped`` (sampled out, over a bound, or not
    delivered), ``exports_failed``, ``runs_abandoned``, ``generations_without_usage``; plus
    ``spans_queued`` and ``runs_open`` right now. Once no run is open and no trace waits for
    its tail decision, ``spans_started == spans_exported + spans_dropped + spans_queued``.

    While ``sample_rate`` is below 1, each trace's decision is counted once:
    ``traces_kept_by_head``, ``traces_kept_by_parent`` (a sampled app span it joined),
    ``traces_kept_by_errors`` / ``traces_kept_by_slower_than`` / ``traces_kept_by_costlier_than``
    (the first ``keep`` rule it met), ``traces_dropped_by_sampling``; and
    ``traces_decided_early`` counts traces decided before their root ended because the buffer
    was full (also counted under their outcome). ``extra_exporter_spans_dropped`` counts spans an
    extra exporter (``configure(exporters=...)``) was too far behind to take.

    Example::

        print(slc.stats()["spans_exported"])
    """
    out: dict[str, int] = COUNTERS.snapshot()
    pipeline = _state._pipeline
    out["spans_queued"] = pipeline.processor.queued if pipeline is not None else 0
    out["runs_open"] = _state.recorder.open_runs
    return out


def set_global_handler(frameworks: Iterable[str] = ("langchain", "llamaindex"), **handler_kwargs: Any) -> None:
    """Trace every run of the given frameworks, with no ``callbacks=`` needed.

    Objects built before the call are traced too, in every thread. A run that is also given
    a handler explicitly is traced once, by that handler. ``handler_kwargs`` are the handler's
    (``user``, ``session_id``, ``trace``, ``privacy_mode``). Frameworks that are not installed
    are skipped; a name that is no framework raises :class:`ConfigurationError`.

    Example::

        slc.set_global_handler(user="user_12345", trace={"team": "ml"})
    """
    adapter.set_global_handler(frameworks, **handler_kwargs)


def unset_global_handler(frameworks: Iterable[str] = ("langchain", "llamaindex")) -> None:
    """Stop global tracing started by :func:`set_global_handler`.

    Example::

        slc.unset_global_handler()
    """
    adapter.unset_global_handler(frameworks)
