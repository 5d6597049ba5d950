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
initialised it, and only through its documented API (``capture_exception``, ``capture_event``,
``new_scope``, ``get_global_scope``, ``Scope.add_event_processor``), the same in sentry-sdk 2.x
and 3.x. An SDK without one of them gets one :class:`SentryLlmCallbacksWarning` saying errors
cannot become issues; tracing goes on.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

from sentry_llm_callbacks.base.log import log_once, warn_user
from sentry_llm_callbacks.core import attributes as attr
from sentry_llm_callbacks.core.content import clean_str
from sentry_llm_callbacks.core.recorder import Failure
from sentry_llm_callbacks.sentry_sdk.interop import has_dsn

#: sentry-sdk integrations that capture these errors themselves: the LangChain one reports every
#: failed model and tool run from its callback. (Its LangGraph integration only wraps graph
#: invocations and reports no error, so alone it is no reason to stand down.)
SDK_ERROR_INTEGRATIONS = ("langchain",)
MECHANISM = "sentry_llm_callbacks"
MAX_TAG_VALUE = 200  # Sentry's limit for a tag value
#: How many exceptions of a ``__cause__`` / ``__context__`` chain (or group) to follow.
MAX_CHAIN = 64
#: The documented sentry-sdk functions errors-to-issues needs (2.x and 3.x alike).
REQUIRED_API = ("capture_exception", "capture_event", "new_scope", "get_global_scope")
#: Told once when the app's sentry-sdk lacks what errors-to-issues needs.
UNSUPPORTED_SDK = (
    "Errors a traced run absorbed cannot become Sentry issues with the installed sentry-sdk {version} "
    "({problem}); traces are sent as before. sentry-sdk 2.x and 3.x are supported."
)


class SentryIssues:
    """Captures the failures the app never saw through the app's ``sentry_sdk``.

    Example::

        Recorder(get_target, failure_reporter=SentryIssues())
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
        self._verdict = _can_capture(client) and _has_required_api(sdk)
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
            except (TypeError, AttributeError) as exc:  # an SDK whose API no longer fits: say so, once
                warn_user("capture-unsupported", UNSUPPORTED_SDK.format(version=_version(sdk), problem=repr(exc)))
            except Exception as exc:
                log_once("capture-error", logging.WARNING, "Sending a run's error to Sentry failed: %r", exc)


def _can_capture(client: Any) -> bool:
    try:
        if not has_dsn(client):
            return False
        return not any(client.get_integration(name) is not None for name in SDK_ERROR_INTEGRATIONS)
    except Exception:
        return False


def _has_required_api(sdk: ModuleType) -> bool:
    missing = [name for name in REQUIRED_API if not callable(getattr(sdk, name, None))]
    if missing:
        problem = f"it has no sentry_sdk.{', sentry_sdk.'.join(missing)}"
        warn_user("capture-unsupported", UNSUPPORTED_SDK.format(version=_version(sdk), problem=problem))
        return False
    return True


def _version(sdk: ModuleType) -> str:
    return str(getattr(sdk, "VERSION", "of unknown version"))


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
    sdk.get_global_scope().add_event_processor(_mark_captured)


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
    """Send ``failure`` through the app's SDK with the failed run's trace context and our tags.

    With content allowed the SDK builds the event itself (``capture_exception``: stack trace,
    chained exceptions, the app's ``before_send`` sees the exception in its hint); a scope event
    processor names our mechanism. In Privacy Mode the event is built here with the exception's
    type only (the SDK's would carry the message, the chained exceptions and each frame's local
    variables) and sent with ``capture_event``.
    """
    kwargs = {"contexts": {"trace": _trace_context(failure)}, "tags": dict(_tags(failure.attributes, root_agent))}
    error = failure.error
    if failure.private:
        cls = type(error)
        exception = {"type": cls.__name__, "module": cls.__module__, "mechanism": _mechanism()}
        sdk.capture_event({"level": "error", "exception": {"values": [exception]}}, **kwargs)
        return
    with sdk.new_scope() as scope:
        scope.add_event_processor(functools.partial(_name_mechanism, error))
        sdk.capture_exception(error, **kwargs)


def _mechanism() -> dict[str, Any]:
    return {"type": MECHANISM, "handled": True}


def _name_mechanism(error: BaseException, event: Any, hint: Any) -> Any:
    """Mark the event of ``error`` as ours: the mechanism of its outermost exception value."""
    try:
        if hint and hint.get("exc_info", (None, None))[1] is error:
            values = event["exception"]["values"]
            values[-1]["mechanism"] = _mechanism()
    except (KeyError, IndexError, TypeError, AttributeError):  # an event of another shape: leave it
        pass
    return event


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
