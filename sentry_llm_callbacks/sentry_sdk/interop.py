"""What the app's own Sentry SDK (``sentry_sdk``) means for our traces, read without changing it.

* :func:`ambient_parent`: where a root run joins the app's Sentry trace. A sampled span becomes
  our root's (remote) parent; an unsampled one (an errors-only ``sentry_sdk.init``, whose
  LangGraph integration wraps each graph run in a transaction that is never sent) does not, but
  its trace id does, so the app's error events and our trace still link.
* :func:`warn_if_duplicated`: sentry-sdk's own AI integrations trace the same model calls when
  tracing is on; say so once, with the line that turns them off. The SDK is never patched.

``sentry_sdk`` is never imported here: the app has imported it, or it is not in use.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags

from sentry_llm_callbacks.base.log import log_once

#: sentry-sdk integrations that trace the same runs we do, and their classes' import paths.
DUPLICATING_INTEGRATIONS: dict[str, str] = {
    "langchain": "sentry_sdk.integrations.langchain.LangchainIntegration",
    "langgraph": "sentry_sdk.integrations.langgraph.LanggraphIntegration",
    "openai": "sentry_sdk.integrations.openai.OpenAIIntegration",
    "anthropic": "sentry_sdk.integrations.anthropic.AnthropicIntegration",
    "google_genai": "sentry_sdk.integrations.google_genai.GoogleGenAIIntegration",
    "litellm": "sentry_sdk.integrations.litellm.LiteLLMIntegration",
}

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def _sdk() -> Any:
    return sys.modules.get("sentry_sdk")


def at_root() -> None:
    """Run at each root: the first time the app's Sentry client is seen, check it for AI
    integrations of its own that would trace the same runs (:func:`warn_if_duplicated`)."""
    if duplicate_warning is None and "sentry_sdk" in sys.modules:
        warn_if_duplicated()


def ambient_parent() -> SpanContext | None:
    """The app's current Sentry span, as a remote span context: sampled (our parent) or not
    (only its trace id counts: the one the app's error events carry here). None without one."""
    sdk = _sdk()
    if sdk is None:
        return None
    try:
        span = sdk.get_current_span()
        if span is None or _finished(span):
            return None  # none, or one that already finished (left on a scope by the app)
        if span.sampled:
            return _context(span.trace_id, span.span_id, sampled=True)
        if not has_dsn(sdk.get_client()):
            return None  # no DSN: no error event will carry this trace id
        traceparent = sdk.get_traceparent()  # what error events carry: the span's, or the scope's
    except Exception as exc:
        log_once("sentry-sdk-parent", logging.DEBUG, "Could not read the Sentry SDK's trace: %r", exc)
        return None
    if not isinstance(traceparent, str):
        return None
    trace_id, _, rest = traceparent.partition("-")
    span_id = rest.partition("-")[0]
    return _context(trace_id, span_id or "1", sampled=False)


def _finished(span: Any) -> bool:
    """A span that already ended: its end time is ``timestamp`` in sentry-sdk 2.x and
    ``end_timestamp`` in 3.x (read whichever the span has)."""
    return getattr(span, "end_timestamp", None) is not None or getattr(span, "timestamp", None) is not None


def _context(trace_id: str, span_id: str, *, sampled: bool) -> SpanContext | None:
    try:
        trace, span = int(trace_id, 16), int(span_id, 16)
    except (TypeError, ValueError):
        return None
    if not trace or not span:
        return None
    return SpanContext(trace, span, is_remote=True, trace_flags=_SAMPLED if sampled else _NOT_SAMPLED)


_checked_clients: set[int] = set()
#: Set once a duplicate was found (the notebook summary shows it too).
duplicate_warning: str | None = None


def warn_if_duplicated() -> str | None:
    """Warn once per Sentry client when its own AI integrations also trace these runs."""
    global duplicate_warning
    sdk = _sdk()
    if sdk is None:
        return None
    try:
        client = sdk.get_client()
        key = id(client)
        if key in _checked_clients:
            return None
        _checked_clients.add(key)
        if not has_dsn(client) or not _tracing_enabled(client.options):
            return None
        active = [name for name in DUPLICATING_INTEGRATIONS if client.get_integration(name) is not None]
    except Exception as exc:
        log_once("sentry-sdk-integrations", logging.DEBUG, "Could not read the Sentry SDK's integrations: %r", exc)
        return None
    if not active:
        return None
    duplicate_warning = duplicate_message(active)
    log_once("sentry-sdk-duplicates", logging.WARNING, "%s", duplicate_warning)
    return duplicate_warning


def duplicate_message(active: list[str]) -> str:
    imports = "; ".join(
        f"from {path.rpartition('.')[0]} import {path.rpartition('.')[2]}"
        for path in (DUPLICATING_INTEGRATIONS[name] for name in active)
    )
    classes = ", ".join(f"{DUPLICATING_INTEGRATIONS[name].rpartition('.')[2]}()" for name in active)
    return (
        f"sentry_sdk is also tracing these runs (its {', '.join(active)} integration(s) are on): every model call "
        f"will show twice in Sentry and tokens and cost will be counted twice. Keep one tracer: {imports}; "
        f"sentry_sdk.init(..., disabled_integrations=[{classes}])"
    )


def has_dsn(client: Any) -> bool:
    """A client that sends anything (``is_active()`` is also true for a client without a DSN)."""
    return bool(client.is_active() and client.options.get("dsn"))


def _tracing_enabled(options: Any) -> bool:
    return options.get("traces_sample_rate") is not None or options.get("traces_sampler") is not None


def _reset_for_tests() -> None:
    global duplicate_warning
    _checked_clients.clear()
    duplicate_warning = None
