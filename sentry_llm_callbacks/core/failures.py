"""Exceptions runs failed with, kept until their trace's local root ends, then reported.

Only then is it known whether an exception reached the user's code (the root's own, and what it
was raised from) or was absorbed on the way (a tool error turned into a message, a retried call).
The reporter (errors to Sentry issues, :mod:`sentry_llm_callbacks.sentry_sdk.issues`) decides.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.trace import SpanContext

from sentry_llm_callbacks.base.log import log_once

#: Kept per trace at most; more failures in one trace are not reported.
MAX_FAILURES_PER_TRACE = 32


@dataclass(slots=True, frozen=True)
class Failure:
    """An exception a run failed with, kept until the trace's local root ends, when it is known
    whether the exception reached the user's code."""

    error: BaseException
    context: SpanContext
    parent: SpanContext | None
    op: str
    attributes: Mapping[str, Any]
    private: bool


class FailureReporter(Protocol):
    """Receives the failures of a trace when its local root ends."""

    def wants_failures(self) -> bool:
        """Asked at each root start: keep this trace's failures? Must be cheap."""
        ...

    def report(
        self, failures: list[Failure], *, root_error: BaseException | None, root_attributes: Mapping[str, Any]
    ) -> None:
        """``root_error``: the exception the root ended with (it reached the caller), or None."""
        ...


def wants_failures(reporter: FailureReporter | None) -> bool:
    """Whether a trace starting now keeps its failures (never raises: a broken reporter says no)."""
    if reporter is None:
        return False
    try:
        return reporter.wants_failures()
    except Exception as exc:
        log_once("failure-reporter", logging.WARNING, "Error capture is off: %r", exc)
        return False


def report_failures(
    reporter: FailureReporter | None,
    failures: list[Failure] | None,
    root_error: BaseException | None,
    root_attributes: Mapping[str, Any],
) -> None:
    """Hand a finished trace's failures to ``reporter`` (never raises)."""
    if not failures or reporter is None:
        return
    try:
        reporter.report(failures, root_error=root_error, root_attributes=root_attributes)
    except Exception as exc:
        log_once("failure-report", logging.WARNING, "Reporting a run's error failed: %r", exc)
