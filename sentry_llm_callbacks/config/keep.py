"""The tail rules of ``configure(keep=...)``: what they are, validated once.

The decisions they make are :mod:`sentry_llm_callbacks.core.sampling`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentry_llm_callbacks.base.errors import ConfigurationError

#: A right value of ``keep``, shown in each of its ConfigurationErrors.
KEEP_EXAMPLE = '{"errors": True, "slower_than": 30.0, "costlier_than": 0.05}'

#: Default bound on the spans pending traces hold, per process (``keep={"max_buffered_spans": ...}``).
MAX_BUFFERED_SPANS = 20_000
#: Default bound on their estimated size in bytes (``keep={"max_buffered_bytes": ...}``).
MAX_BUFFERED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KeepRules:
    """Tail rules of :func:`sentry_llm_callbacks.configure` (``keep=``), validated.

    ``errors``: keep a trace with any span in ERROR status (cancelled and abandoned runs too).
    ``slower_than``: keep a trace whose local root took more than this many seconds.
    ``costlier_than``: keep a trace whose generations cost more than this many USD in total
    (``gen_ai.cost.total_tokens``; a model with no known price adds nothing).
    ``max_buffered_spans`` / ``max_buffered_bytes``: bound what pending traces hold, per process.
    """

    errors: bool = False
    slower_than: float | None = None
    costlier_than: float | None = None
    max_buffered_spans: int = MAX_BUFFERED_SPANS
    max_buffered_bytes: int = MAX_BUFFERED_BYTES

    @property
    def any_rule(self) -> bool:
        return self.errors or self.slower_than is not None or self.costlier_than is not None

    def matched(self, *, errored: bool, seconds: float, cost: float) -> str | None:
        """The first rule the trace meets (``errors``, ``slower_than``, ``costlier_than``), or None."""
        if self.errors and errored:
            return "errors"
        if self.slower_than is not None and seconds > self.slower_than:
            return "slower_than"
        if self.costlier_than is not None and cost > self.costlier_than:
            return "costlier_than"
        return None


def parse_keep(value: object) -> KeepRules | None:
    """Validate ``configure(keep=...)``; None when no rule is on (then nothing is buffered).

    >>> parse_keep({"errors": True, "slower_than": 30}).slower_than
    30.0

    Raises :class:`ConfigurationError` naming the key, what is wrong and an example.
    """
    if value is None or isinstance(value, KeepRules):
        return value if value is None or value.any_rule else None
    if not isinstance(value, Mapping):
        raise ConfigurationError("keep", f"must be a dict of rules, not {type(value).__name__}", KEEP_EXAMPLE)
    unknown = sorted(str(k) for k in value if k not in KeepRules.__dataclass_fields__)
    if unknown:
        known = ", ".join(KeepRules.__dataclass_fields__)
        raise ConfigurationError("keep", f"unknown rule {unknown[0]!r} (known: {known})", KEEP_EXAMPLE)
    errors = value.get("errors", False)
    if not isinstance(errors, bool):
        raise ConfigurationError("keep", f"'errors' must be True or False, not {errors!r}", KEEP_EXAMPLE)
    rules = KeepRules(
        errors=errors,
        slower_than=_threshold(value, "slower_than", "seconds"),
        costlier_than=_threshold(value, "costlier_than", "USD"),
        max_buffered_spans=_bound(value, "max_buffered_spans", MAX_BUFFERED_SPANS),
        max_buffered_bytes=_bound(value, "max_buffered_bytes", MAX_BUFFERED_BYTES),
    )
    return rules if rules.any_rule else None


def _threshold(rules: Mapping[Any, Any], key: str, unit: str) -> float | None:
    value = rules.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
        problem = f"{key!r} must be a finite number of {unit}, 0 or more, not {value!r}"
        raise ConfigurationError("keep", problem, KEEP_EXAMPLE)
    return float(value)


def _bound(rules: Mapping[Any, Any], key: str, default: int) -> int:
    value = rules.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError("keep", f"{key!r} must be a positive integer, not {value!r}", KEEP_EXAMPLE)
    return value
