"""The user's prices (``configure(pricing=...)``), validated once: USD per token per model id.

Looking prices up, with genai-prices underneath, is :mod:`sentry_llm_callbacks.core.pricing`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sentry_llm_callbacks.base.errors import ConfigurationError

PRICING_EXAMPLE = '{"my-model": {"input": 3e-6, "output": 1.2e-5}}'


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    #: A fee per call (USD), counted in the total only.
    per_request: float = 0.0
    #: Tiered library prices, priced by the library itself.
    library: Any = None
    source: str = "configure(pricing=...)"


def parse_pricing(rows: Mapping[str, Any] | None) -> Mapping[str, Price]:
    """Each row of ``configure(pricing=...)`` as a :class:`Price`, by lower-cased model id.

    >>> parse_pricing({"My-Model": {"input": 3e-6, "output": 1.2e-5}})["my-model"].output
    1.2e-05

    Raises :class:`ConfigurationError` naming the row and what is wrong.
    """
    out: dict[str, Price] = {}
    for name, row in (rows or {}).items():
        if isinstance(row, Price):
            out[name.lower()] = row
            continue
        if not isinstance(row, Mapping):
            raise ConfigurationError("pricing", f"the row for {name!r} must be a dict", PRICING_EXAMPLE)
        out[name.lower()] = _price(name, row)
    return MappingProxyType(out)


def _price(name: str, row: Mapping[str, Any]) -> Price:
    try:
        values = {k: float(row[k]) for k in ("input", "output")}
        for key in ("cached_input", "cache_write", "reasoning"):
            if row.get(key) is not None:
                values[key] = float(row[key])
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(
            "pricing",
            f"the row for {name!r} needs numeric 'input' and 'output' USD per token",
            PRICING_EXAMPLE,
        ) from None
    if any(v < 0 for v in values.values()):
        raise ConfigurationError("pricing", f"prices for {name!r} must not be negative", PRICING_EXAMPLE)
    return Price(**values)
