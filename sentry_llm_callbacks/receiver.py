"""``sentry_llm_callbacks.receiver``: the local OTLP receiver, at the import path users know.

The code lives in :mod:`sentry_llm_callbacks.devtools.receiver`.
"""

from sentry_llm_callbacks.devtools.receiver import LocalReceiver, ReceivedSpan, format_trace_tree, group_traces

__all__ = ["LocalReceiver", "ReceivedSpan", "format_trace_tree", "group_traces"]
