"""Prices come from genai-prices; the flat-price arithmetic we run per call (microseconds, where
the library's Decimal calculation takes about 150 us) must equal the library's, model by model."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from genai_prices import Usage as LibraryUsage
from genai_prices import data_snapshot

from sentry_llm_callbacks.core.pricing import PriceTable, cost_of, library_price
from sentry_llm_callbacks.core.usage import Usage

USAGES = [
    Usage(input_tokens=1000, output_tokens=500),
    Usage(input_tokens=12_000, output_tokens=300, cache_read_tokens=8_000),
    Usage(input_tokens=5_000, output_tokens=2_000, cache_read_tokens=1_000, cache_write_tokens=2_000),
]
FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


def _flat_models() -> list[tuple[str, str, object]]:
    """(provider id, model id, today's prices) of every model the library prices flat."""
    now = datetime.now(tz=timezone.utc)
    out = []
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            prices = model.get_prices(now)
            values = [getattr(prices, f, None) for f in FIELDS]
            if all(v is None or isinstance(v, Decimal) for v in values) and values[0] is not None:
                out.append((provider.id, model.id, prices))
    return out


def test_every_flat_priced_model_costs_what_the_library_says() -> None:
    models = _flat_models()
    assert len(models) > 200, len(models)
    checked = 0
    for provider_id, model_id, prices in models:
        ours = library_price(model_id, _ours_for(provider_id))
        if ours is None or not ours.source.endswith(f"{provider_id}/{model_id}"):
            continue  # our lookup of this id lands on another row: that row is compared in its turn
        for usage in USAGES:
            expected = prices.calc_price(  # type: ignore[attr-defined]
                LibraryUsage(
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens or 0,
                    cache_write_tokens=usage.cache_write_tokens or 0,
                )
            )
            got = cost_of(usage, ours)
            where = (provider_id, model_id, usage)
            assert got.cost_input == pytest.approx(float(expected["input_price"]), rel=1e-9, abs=1e-15), where
            assert got.cost_output == pytest.approx(float(expected["output_price"]), rel=1e-9, abs=1e-15), where
            assert got.cost_total == pytest.approx(float(expected["total_price"]), rel=1e-9, abs=1e-15), where
        checked += 1
    assert checked > 100, checked


def _ours_for(provider_id: str) -> str | None:
    from sentry_llm_callbacks.core.pricing import _GENAI_PROVIDERS

    return next((ours for ours, theirs in _GENAI_PROVIDERS.items() if theirs == provider_id), None)


def test_tiered_prices_are_priced_by_the_library() -> None:
    price = PriceTable().lookup("gemini-1.5-pro", "gcp.gemini")
    assert price is not None and price.library is not None
    small = cost_of(Usage(input_tokens=1000, output_tokens=100), price)
    large = cost_of(Usage(input_tokens=200_000, output_tokens=100), price)
    assert small.cost_input == pytest.approx(1000 * 1.25e-6)
    assert large.cost_input == pytest.approx(200_000 * 2.5e-6)  # the long-prompt tier


def test_overrides_win_and_unknown_models_get_no_cost() -> None:
    table = PriceTable({"gpt-4o-mini": {"input": 1e-6, "output": 2e-6}})
    assert table.lookup("gpt-4o-mini").input == 1e-6  # type: ignore[union-attr]
    assert table.lookup("my-private-finetune") is None
    assert table.lookup("GenericFakeChatModel") is None
