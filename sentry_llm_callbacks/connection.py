"""Checking a destination before relying on it: ``test_connection`` and ``send_test_trace``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sentry_llm_callbacks import _state
from sentry_llm_callbacks.base.errors import ConfigurationError
from sentry_llm_callbacks.base.threads import outside_app_context
from sentry_llm_callbacks.config.settings import Destination, build_destination
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.recorder import CHAIN, CHAT
from sentry_llm_callbacks.core.usage import Usage


@dataclass(frozen=True, slots=True)
class ConnectionResult:
    """Outcome of :func:`test_connection`. ``message`` is a sentence a person can act on."""

    ok: bool
    status_code: int | None
    reason: str
    message: str
    latency_s: float

    def __bool__(self) -> bool:
        return self.ok


class ConnectionTestError(ConnectionError):
    """``configure(verify=True)`` could not reach the destination; the previous one is kept."""

    def __init__(self, result: ConnectionResult) -> None:
        self.result = result
        super().__init__(result.message)


@dataclass(frozen=True, slots=True)
class TestTraceResult:
    """Outcome of :func:`send_test_trace`."""

    __test__ = False  # not a pytest test class

    ok: bool
    trace_id: str
    message: str


def _where(destination: Destination) -> str:
    project = destination.project_id
    return f"{destination.host} (project {project})" if project else destination.host


def _describe_status(status: int, destination: Destination, retry_after: str | None, said: str) -> tuple[str, str]:
    """``(reason, message)``: the reason from the exporter's own classification, the message
    saying what to do about it (and what the server said, when it said something)."""
    where = _where(destination)
    from sentry_llm_callbacks.export.transport import classify_status  # with the check, not the package

    reason = classify_status(status).reason
    quote = f' The server said: "{said}".' if said else ""
    if reason == "ok":
        return reason, f"Connected to {where}: the endpoint accepted a test request (HTTP {status})."
    if reason == "unauthorized":
        return reason, (
            f"{where} rejected the DSN's public key (HTTP {status}). Copy the DSN again from Sentry: "
            "Settings > Projects > your project > Client Keys (DSN), and check the key is enabled." + quote
        )
    if reason == "not_found":
        return reason, (
            f"{where} has no OTLP traces endpoint at this address (HTTP 404). Check the project id at the "
            "end of the DSN, and that a custom endpoint ends in /integration/otlp/v1/traces." + quote
        )
    if reason == "rate_limited":
        wait = f" Retry after {retry_after} s." if retry_after else ""
        return reason, (
            f"{where} is rate limiting this project (HTTP 429).{wait} Check the project's quota and "
            "spike protection in Sentry."
        )
    if reason == "server_error":
        return reason, f"{where} answered HTTP {status}: a server-side problem. Try again in a minute." + quote
    if status == 413:
        return reason, (
            f"{where} refused the request as larger than its body limit (HTTP 413 Payload Too Large). "
            "A proxy in front of it may set a lower limit than Sentry's." + quote
        )
    if said:
        return reason, f"{where} refused the request (HTTP {status}).{quote}"
    return reason, (
        f"{where} refused the request (HTTP {status}). Check that the endpoint is an OTLP/HTTP traces endpoint."
    )


def _unreachable_message(why: str, destination: Destination) -> str:
    return f"Could not reach {destination.host}: {why}. Check the DSN's host, your network, proxy and firewall."


def test_connection(
    dsn: str | None = None,
    otlp_endpoint: str | None = None,
    timeout: float = 5.0,
    *,
    headers: Mapping[str, str] | None = None,
    allow_insecure_http: bool = False,
) -> ConnectionResult:
    """Send one valid, empty OTLP export request and report what the endpoint said.

    With no ``dsn`` and no ``otlp_endpoint`` it tests the configured destination (or the
    environment's ``SENTRY_DSN``). Never raises for network or configuration problems: look
    at ``result.ok``, ``result.reason`` and ``result.message``.

    Example::

        result = slc.test_connection(dsn="https://KEY@o123.ingest.us.sentry.io/456")
        if not result.ok:
            print(result.reason, result.message)
    """
    started = time.perf_counter()
    try:
        destination = _state.current_destination()
        if destination is None or dsn is not None or otlp_endpoint is not None:
            destination = build_destination(
                dsn=dsn, otlp_endpoint=otlp_endpoint, headers=headers, allow_insecure_http=allow_insecure_http
            )
    except ConfigurationError as exc:
        return ConnectionResult(False, None, "invalid_config", str(exc), time.perf_counter() - started)
    return check_destination(destination, timeout)


def check_destination(destination: Destination, timeout: float = 5.0) -> ConnectionResult:
    """:func:`test_connection` for an already validated destination (also used by ``configure(verify=True)``)."""
    import requests

    from sentry_llm_callbacks.export.transport import network_problem, server_text  # with the check

    started = time.perf_counter()
    with requests.Session() as session:
        try:
            response = outside_app_context(  # an empty ExportTraceServiceRequest is b""
                session.post,
                destination.endpoint,
                data=b"",
                headers=destination.request_headers(),
                timeout=timeout,
                verify=destination.transport.verify,
                cert=destination.transport.cert,
            )
        except requests.RequestException as exc:
            return ConnectionResult(
                False,
                None,
                "unreachable",
                _unreachable_message(network_problem(exc, timeout), destination),
                time.perf_counter() - started,
            )
        except Exception as exc:  # e.g. an invalid header value
            return ConnectionResult(
                False,
                None,
                "invalid_config",
                f"The request could not be built ({type(exc).__name__}).",
                time.perf_counter() - started,
            )
        latency = time.perf_counter() - started
        said = ""
        if not 200 <= response.status_code < 300:
            secrets = [destination.dsn.public_key] if destination.dsn else []
            secrets += destination.headers.values()
            said = server_text(response.content, response.headers.get("Content-Type", ""), secrets)
        reason, message = _describe_status(response.status_code, destination, response.headers.get("Retry-After"), said)
        response.close()
    return ConnectionResult(reason == "ok", response.status_code, reason, message, latency)


def send_test_trace(timeout: float = 10.0) -> TestTraceResult:
    """Send a small trace (a root span and one generation with token usage) and wait for delivery.
    A failure is reported as soon as the first request fails (refused connection, HTTP status...),
    with its cause; the trace stays queued and is retried as any other.

    Example::

        result = slc.send_test_trace()
        print(result.ok, result.trace_id, result.message)
    """
    return deliver_test_trace(timeout, diagnose="run test_connection()")


def deliver_test_trace(
    timeout: float, *, diagnose: str, where_to_look: Callable[[str], str | None] | None = None
) -> TestTraceResult:
    """:func:`send_test_trace`, with ``diagnose`` saying how to find out more when no answer came
    in time, in the caller's terms (a Python call, or the command line's ``test-connection``), and
    ``where_to_look(trace_id)`` the sentence that says where to see a delivered trace (None: in
    Sentry's Explore > Traces)."""
    pipeline = _state.get_pipeline()
    if pipeline is None:
        return TestTraceResult(False, "", "Not configured: call configure(dsn=...) or set SENTRY_DSN first.")
    trace_id = _record_test_trace()
    if trace_id is None:
        return TestTraceResult(False, "", "The test trace was sampled out; set sample_rate=1.0 to send it.")
    processor = pipeline.processor
    failed_before = processor.failed_attempts
    delivered = pipeline.flush(timeout, until_failure=True)
    destination = pipeline.destination
    where = _where(destination)
    if delivered:
        look = (where_to_look(trace_id) if where_to_look else None) or (
            f"In Sentry, open Explore > Traces and search for trace {trace_id}."
        )
        return TestTraceResult(True, trace_id, f"Sent trace {trace_id} to {where}. {look}")
    failure = processor.last_failure if processor.failed_attempts != failed_before else None
    if failure is None:
        why = f"{where} did not answer within {timeout:g} s; {diagnose} to see why."
    elif failure.status_code is None and failure.retryable:
        why = _unreachable_message(failure.detail, destination)
    elif failure.status_code is None:
        why = f"the request to {where} could not be built ({failure.detail})."
    else:
        retry_after = f"{failure.retry_after:g}" if failure.retry_after is not None else None
        why = _describe_status(failure.status_code, destination, retry_after, failure.said)[1]
    return TestTraceResult(False, trace_id, f"Trace {trace_id} was not delivered: {why}")


def _record_test_trace() -> str | None:
    """Record the test trace (a root span and one generation with usage); its id, or None if it was sampled out."""
    recorder = _state.recorder
    root_key, child_key = uuid.uuid4(), uuid.uuid4()
    root = recorder.start_run(
        root_key,
        None,
        kind=CHAIN,
        name="sentry-llm-callbacks test trace",
        explicit_name=True,
        handler_layer=None,
        run_metadata=None,
    )
    if root is None:
        return None
    recorder.start_run(
        child_key,
        root_key,
        kind=CHAT,
        name="test-model",
        explicit_name=False,
        handler_layer=None,
        run_metadata=None,
        attributes={attr.REQUEST_MODEL: "test-model", attr.PROVIDER_NAME: "sentry-llm-callbacks"},
    )
    recorder.end_run(child_key, usage=Usage(input_tokens=12, output_tokens=3, total_tokens=15))
    recorder.end_run(root_key)
    return format(root.trace_id, "032x")
