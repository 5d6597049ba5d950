"""Errors the app never saw, as issues in the app's own Sentry project.

Sentry drops span events, so an exception a run failed with is only an ERROR span. When it
reached the app's code, the app's own error handling reports it. When the framework absorbed it
(a tool error turned into a message, a model a fallback replaced, a retried call), nothing
would: :class:`SentryIssues` captures it through the app's ``sentry_sdk``, with the event's
trace context set to the failed run's span, so the issue opens on the trace and the trace
shows the issue.

Which exceptions reached the caller is known only when the trace's local root ends; the
recorder keeps each trace's failures until then and hands them to :meth:`SentryIssues.report`.

``sentry_sdk`` is never imported here: it is used only when the app has imported and
initialised it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

from . import attributes as attr
from ._logging import log_once
from .content import clean_str
from .recorder import Failure
from .sentry_sdk_interop import has_dsn

#: sentry-sdk integrations that capture these errors themselves: the LangChain one reports every
#: failed model and tool run from its callback. (Its LangGraph integration only wraps graph
#: invocations and reports no error, so alone it is no reason to stand down.)
SDK_ERROR_INTEGRATIONS = ("langchain",)
MECHANISM = "sentry_llm_callbacks"
MAX_TAG_VALUE = 200  # Sentry's limit for a tag value
#: How many exceptions of a ``__cause__`` / ``__context__`` chain (or group) to follow.
MAX_CHAIN = 64


class SentryIssues:
    """Captures the failures the app never saw through the app's ``sentry_sdk``.

    Example::

        Recorder(get_pipeline, failure_reporter=SentryIssues())
    """

    def __init__(self) -> None:
        # The last client asked about and the verdict: the check runs at every root start.
        self._client: Any = None
        self._verdict = False

    def wants_failures(self) -> bool:
        """True when the app initialised ``sentry_sdk`` with a DSN and the SDK's own LangChain
        integration (which captures these errors) is not active."""
        sdk = sys.modules.get("sentry_sdk")
        if sdk is None:
            return False
        client = sdk.get_client()
        if client is self._client:
            return self._verdict
        if not client.is_active():  # no client: the SDK hands out a new stand-in on every call
            return False
        self._verdict = _can_capture(client)
        self._client = client
        if self._verdict:
            _watch_captures(sdk)
        return self._verdict

    def report(
        self, failures: list[Failure], *, root_error: BaseException | None, root_attributes: Mapping[str, Any]
    ) -> None:
        """Capture each exception of ``failures`` once, unless it reached the caller (it is
        ``root_error`` or in its cause/context chain) or the app's SDK captured it already."""
        sdk = sys.modules.get("sentry_sdk")
        if sdk is None or not self.wants_failures():  # the app may have closed its client since
            return
        seen = set(map(id, _chain(root_error)))
        root_agent = root_attributes.get(attr.AGENT_NAME)
        for failure in failures:
            error = failure.error
            if id(error) in seen:
                continue
            seen.add(id(error))  # the innermost run that failed with it reports it, once
            if _already_captured(error):
                continue
            try:
                _capture(sdk, failure, root_agent)
            except Exception as exc:
                log_once("capture-error", logging.WARNING, "Sending a run's error to Sentry failed: %r", exc)


def _can_capture(client: Any) -> bool:
    try:
        if not has_dsn(client):
            return False
        integrations = getattr(client, "integrations", None) or {}
        return not any(name in integrations for name in SDK_ERROR_INTEGRATIONS)
    except Exception:
        return False


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and every exception it was raised from, raised while handling, or groups."""
    pending = [error] if error is not None else []
    seen: set[int] = set()
    while pending and len(seen) < MAX_CHAIN:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (current.__cause__, current.__context__, *getattr(current, "exceptions", ()))
        pending.extend(e for e in linked if isinstance(e, BaseException))


#: Set on an exception once the app's SDK sent an event for it (see :func:`_watch_captures`).
CAPTURED_MARK = "_sentry_llm_callbacks_captured"
_watching = False


def _watch_captures(sdk: ModuleType) -> None:
    """Mark every exception the app's SDK captures from now on.

    sentry-sdk marks nothing on a captured exception: its ``DedupeIntegration`` remembers only
    the last one, in a context variable that a framework's copied context hides from us. A
    global event processor (the SDK's extension point for this) sees every event's exception;
    the mark lives and dies with the exception (built-in exceptions cannot be weakly referenced,
    and an id could be reused by the next exception).
    """
    global _watching
    if _watching:
        return
    _watching = True
    sdk.scope.add_global_event_processor(_mark_captured)


def _mark_captured(event: Any, hint: Any) -> Any:
    try:
        error = hint.get("exc_info", (None, None))[1] if hint else None
        if error is not None:
            setattr(error, CAPTURED_MARK, True)
    except Exception:  # a hint of another shape, a read-only exception: never break the app's events
        pass
    return event


def _already_captured(error: BaseException) -> bool:
    return getattr(error, CAPTURED_MARK, False) is True


def _capture(sdk: ModuleType, failure: Failure, root_agent: Any) -> None:
    event, hint = _event(sdk, failure)
    event.setdefault("contexts", {})["trace"] = _trace_context(failure)
    tags = event.setdefault("tags", {})
    for key, value in _tags(failure.attributes, root_agent):
        tags[key] = value
    sdk.capture_event(event, hint=hint)


def _event(sdk: ModuleType, failure: Failure) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The SDK's own event for the exception; in Privacy Mode one built here with its type only
    (the SDK's would carry the message, the chained exceptions and each frame's local variables)."""
    error = failure.error
    mechanism = {"type": MECHANISM, "handled": True}
    if not failure.private:
        from sentry_sdk.utils import event_from_exception  # the app imported sentry_sdk already

        event, hint = event_from_exception(error, client_options=sdk.get_client().options, mechanism=mechanism)
        event["level"] = "error"
        return event, hint
    cls = type(error)
    exception = {"type": cls.__name__, "module": cls.__module__, "mechanism": mechanism}
    return {"level": "error", "exception": {"values": [exception]}}, None


def _trace_context(failure: Failure) -> dict[str, str]:
    context = {
        "trace_id": f"{failure.context.trace_id:032x}",
        "span_id": f"{failure.context.span_id:016x}",
        "op": failure.op,
        "status": "internal_error",
    }
    if failure.parent is not None:
        context["parent_span_id"] = f"{failure.parent.span_id:016x}"
    return context


def _tags(attributes: Mapping[str, Any], root_agent: Any) -> Iterator[tuple[str, str]]:
    """The model, tool and agent names, under the attribute keys the spans use."""
    model = attributes.get(attr.REQUEST_MODEL) or attributes.get(attr.RESPONSE_MODEL)
    agent = attributes.get(attr.AGENT_NAME) or root_agent
    tool = attributes.get(attr.TOOL_NAME)
    for key, value in ((attr.REQUEST_MODEL, model), (attr.TOOL_NAME, tool), (attr.AGENT_NAME, agent)):
        if isinstance(value, str) and value:
            yield key, clean_str(value.replace("\n", " "))[:MAX_TAG_VALUE]
