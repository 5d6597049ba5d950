"""Client-side cost: the user's overrides, then genai-prices (pydantic's maintained LLM price data,
with providers, cache read / write prices and model-id matching).

A provider-reported cost always wins; a model neither knows gets no cost, never a guess.

Override or extend the table::

    slc.configure(dsn=..., pricing={"my-finetune": {"input": 3e-6, "output": 12e-6}})

Each row is USD per token: ``input``, ``output`` and, where the provider prices them apart,
``cached_input``, ``cache_write`` and ``reasoning``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from sentry_llm_callbacks.base.threads import start_daemon
from sentry_llm_callbacks.config.pricing import Price, parse_pricing
from sentry_llm_callbacks.core.usage import Usage

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


#: ``gen_ai.provider.name`` values to genai-prices' provider ids (where they differ or exist).
_GENAI_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "openrouter": "openrouter",
    "cohere": "cohere",
    "together": "together",
    "fireworks": "fireworks",
    "perplexity": "perplexity",
}
_PER_MTOK = 1e-6
_PER_KCOUNT = 1e-3
#: genai-prices' price keys that the flat arithmetic of :func:`cost_of` reproduces.
_FLAT_FIELDS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cached_input",
    "cache_write_mtok": "cache_write",
    "requests_kcount": "per_request",
}
#: Price keys for counts this package never reports (so they add nothing to a call's cost).
_UNCOUNTED = ("audio_mtok", "searches_kcount", "image_mtok", "video_mtok")
#: The most the first priced generation of a process waits for the price data to load.
LOAD_WAIT_SECONDS = 2.0


class _LibraryData:
    """Loads genai-prices' data (about 0.8 s: the import and its data snapshot) on a background
    thread, once per process, so that no traced call pays for it; a lookup made before it is
    ready waits for it, bounded by :data:`LOAD_WAIT_SECONDS`."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
            start_daemon(self._load, "sentry-llm-callbacks-prices")

    def _load(self) -> None:
        try:
            from genai_prices import data_snapshot

            data_snapshot.get_snapshot().find_provider_model("gpt-4o", None, "openai", None)
        except Exception:
            pass  # a broken price package costs the cost attributes, nothing else
        finally:
            self._ready.set()

    def wait(self) -> bool:
        self.start()
        return self._ready.wait(LOAD_WAIT_SECONDS)

    def after_fork(self) -> None:
        if not self._ready.is_set():  # the loading thread did not survive the fork
            self._ready = threading.Event()
            self._started = False
            self._lock = threading.Lock()


_library = _LibraryData()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_library.after_fork)


def library_price(model: str, provider: str | None = None) -> Price | None:
    """Today's price of ``model`` from genai-prices (pydantic's maintained price data), or None
    when it does not know the model. Tiered prices (by prompt size) keep the library's own
    calculation; flat ones become a :class:`Price` so that pricing a call costs microseconds."""
    from datetime import datetime, timezone  # here, with the price data, not with the package
    from decimal import Decimal

    from genai_prices import data_snapshot

    provider_id = _GENAI_PROVIDERS.get(provider or "")
    if provider and provider_id is None and provider in ("ollama",):
        return None  # local models cost nothing we could know
    try:
        found_provider, found = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
        prices = found.get_prices(datetime.now(tz=timezone.utc))
    except LookupError:
        return None
    source = f"genai-prices {found_provider.id}/{found.id}"
    flat: dict[str, float] = {}
    for key, value in vars(prices).items():
        if value is None or key.startswith("_"):
            continue
        ours = _FLAT_FIELDS.get(key)
        if ours is None and not key.endswith(_UNCOUNTED):
            return Price(input=0.0, output=0.0, library=prices, source=source)  # a price we do not model
        if ours is None:
            continue  # audio tokens, searches: counts we never report, so they cost nothing here
        if not isinstance(value, (Decimal, int, float)):
            return Price(input=0.0, output=0.0, library=prices, source=source)  # tiered by prompt size
        flat[ours] = float(value) * (_PER_KCOUNT if ours == "per_request" else _PER_MTOK)
    if "input" not in flat and "output" not in flat:
        return None
    flat.setdefault("input", 0.0)
    flat.setdefault("output", 0.0)
    return Price(**flat, source=source)


class PriceTable:
    """The user's overrides (``configure(pricing=...)``) on top of genai-prices; lookups cached."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        """``overrides``: the rows of ``configure(pricing=...)``, parsed (:func:`parse_pricing`) or not."""
        self._overrides = parse_pricing(overrides)  # by lower-cased model id
        self._cache: dict[tuple[str, str | None], Price | None] = {}
        self._lock = threading.Lock()
        _library.start()

    def lookup(self, model: str, provider: str | None = None) -> Price | None:
        key = (model, provider)
        try:
            return self._cache[key]
        except KeyError:
            pass
        price = self._overrides.get(model.lower()) or self._overrides.get(normalise_model_id(model))
        if price is None:
            if not _library.wait():
                return None  # not loaded yet: this call goes without a cost, later ones will not
            try:
                price = library_price(model, provider)
                if price is None and "/" in model:  # "openai/gpt-4o" from a router that did not say so
                    price = library_price(model.rpartition("/")[2])
            except Exception:  # the price data must never break a run
                price = None
        with self._lock:
            if len(self._cache) < 4096:
                self._cache[key] = price
        return price


def cost_of(usage: Usage, price: Price) -> Usage:
    """``usage`` with input / output / total cost in USD from ``price``.

    Cached input is billed at ``cached_input``, cache writes at ``cache_write`` (each falling back
    to ``input``), reasoning at ``reasoning`` (falling back to ``output``).
    """
    if price.library is not None:
        return _library_cost(usage, price.library)
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
    total = input_cost + output_cost + price.per_request
    return usage.with_costs(input_cost, output_cost, total)


def _library_cost(usage: Usage, prices: Any) -> Usage:
    from genai_prices import Usage as LibraryUsage

    result = prices.calc_price(
        LibraryUsage(
            input_tokens=usage.input_tokens or 0,
            cache_read_tokens=usage.cache_read_tokens or 0,
            cache_write_tokens=usage.cache_write_tokens or 0,
            output_tokens=usage.output_tokens or 0,
        )
    )
    return usage.with_costs(float(result["input_price"]), float(result["output_price"]), float(result["total_price"]))
