"""Client-side cost from a shipped, dated price table (``prices.json``), overridable per model.

A provider-reported cost always wins; an unknown model gets no cost, never a guess.

Override or extend the table::

    slc.configure(dsn=..., pricing={"my-finetune": {"input": 3e-6, "output": 12e-6}})

Each row is USD per token: ``input``, ``output`` and, where the provider prices them apart,
``cached_input``, ``cache_write`` and ``reasoning``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import ConfigurationError
from .usage import Usage


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None


_PREFIXES = re.compile(
    r"^(?:[\w.-]+/)+|^(?:us|eu|apac|global)\.|^(?:anthropic|meta|mistral|amazon|cohere|ai21)\.|^models/"
)
_SUFFIXES = re.compile(
    r"(?:[-@](?:20\d{2}-?\d{2}-?\d{2}|\d{4}|\d{8})|-latest|-preview(?:-[\w-]+)?|:[\w.-]+|-v\d+(?::\d+)?|-exp[\w-]*)+$"
)


def normalise_model_id(model: str) -> str:
    """``openai/gpt-4o-2024-08-06`` -> ``gpt-4o``; ``us.anthropic.claude-3-5-sonnet-20241022-v2:0``
    -> ``claude-3-5-sonnet``; ``models/gemini-1.5-pro-002`` -> ``gemini-1.5-pro``."""
    name = model.strip().lower()
    previous = None
    while previous != name:
        previous = name
        name = _PREFIXES.sub("", name)
    previous = None
    while previous != name:
        previous = name
        name = _SUFFIXES.sub("", name)
        name = re.sub(r"-\d{3}$", "", name)  # Gemini's "-002"
    return name


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
            '{"my-model": {"input": 3e-6, "output": 1.2e-5}}',
        ) from None
    if any(v < 0 for v in values.values()):
        raise ConfigurationError(
            "pricing", f"prices for {name!r} must not be negative", '{"my-model": {"input": 3e-6, "output": 1.2e-5}}'
        )
    return Price(**values)


@lru_cache(maxsize=1)
def shipped_table() -> tuple[str, dict[str, Price]]:
    """``(as_of date, model -> price)`` from the table shipped with the package."""
    data = json.loads(resources.files(__package__).joinpath("prices.json").read_text("utf-8"))
    return data["as_of"], {name: _price(name, row) for name, row in data["models"].items()}


class PriceTable:
    """The shipped table with the user's overrides on top; lookups by normalised model id."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        _, shipped = shipped_table()
        self._prices = dict(shipped)
        for name, row in (overrides or {}).items():
            if not isinstance(row, Mapping):
                raise ConfigurationError(
                    "pricing", f"the row for {name!r} must be a dict", '{"my-model": {"input": 3e-6, "output": 1.2e-5}}'
                )
            self._prices[name.lower()] = _price(name, row)
        self._names = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, Price | None] = {}

    def lookup(self, model: str) -> Price | None:
        if model in self._cache:
            return self._cache[model]
        price = self._prices.get(model.lower())
        if price is None:
            name = normalise_model_id(model)
            price = self._prices.get(name)
            if price is None:  # "gpt-4o-mini-audio" is not "gpt-4o-mini"; "claude-sonnet-4-0" is "claude-sonnet-4"
                for known in self._names:
                    if name.startswith(known + "-") and name[len(known) + 1 :].replace("-", "").isdigit():
                        price = self._prices[known]
                        break
        if len(self._cache) < 4096:
            self._cache[model] = price
        return price


def cost_of(usage: Usage, price: Price) -> Usage:
    """``usage`` with input / output / total cost in USD from ``price``.

    Cached input is billed at ``cached_input``, cache writes at ``cache_write`` (each falling back
    to ``input``), reasoning at ``reasoning`` (falling back to ``output``).
    """
    inputs = usage.input_tokens or 0
    cached = usage.cache_read_tokens or 0
    written = usage.cache_write_tokens or 0
    fresh = max(0, inputs - cached - written)
    input_cost = (
        fresh * price.input
        + cached * (price.cached_input if price.cached_input is not None else price.input)
        + written * (price.cache_write if price.cache_write is not None else price.input)
    )
    outputs = usage.output_tokens or 0
    reasoning = (usage.reasoning_tokens or 0) if price.reasoning is not None else 0
    output_cost = (outputs - reasoning) * price.output + reasoning * (price.reasoning or 0.0)
    return replace(usage, cost_input=input_cost, cost_output=output_cost, cost_total=input_cost + output_cost)
