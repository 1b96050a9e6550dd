"""Every price rule: rates, cache-write durations, the long-context tier, model names,
`<synthetic>`, unknown models, fast mode, overrides and the version they produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from karmad import config_load
from karmad.config import ModelPriceOverride, PriceRates, PricesConfig
from karmad.index import pricing
from karmad.index.pricing import Priced
from karmad.index.usage import split_cache_writes

M = 1_000_000


@pytest.fixture(scope="module")
def table() -> pricing.PriceTable:
    return pricing.load_table()


def test_table_is_versioned_and_complete(table: pricing.PriceTable) -> None:
    assert table.version
    assert table.currency == "USD"
    assert table.threshold == 200_000
    for name, price in table.models.items():
        for rates in (price.base, price.long_context, price.fast):
            if rates is None:
                continue
            assert rates.input > 0 and rates.output > rates.input, name
            # The API's multipliers: 5-minute write 1.25x, 1-hour write 2x, read 0.1x;
            # Claude 3 Haiku's published cache prices ($0.30, $0.03) are the exception.
            if name == "claude-3-haiku":
                continue
            assert rates.cache_write_5m == pytest.approx(rates.input * 1.25), name
            assert rates.cache_write_1h == pytest.approx(rates.input * 2), name
            assert rates.cache_read == pytest.approx(rates.input * 0.1), name


@pytest.mark.parametrize(
    ("model", "per_million"),
    [
        ("claude-opus-4-5-20251101", (5, 25, 6.25, 10, 0.5)),
        ("claude-opus-4-1-20250805", (15, 75, 18.75, 30, 1.5)),
        ("claude-opus-4-20250514", (15, 75, 18.75, 30, 1.5)),
        ("claude-sonnet-4-5-20250929", (3, 15, 3.75, 6, 0.3)),
        ("claude-sonnet-4-20250514", (3, 15, 3.75, 6, 0.3)),
        ("claude-3-7-sonnet-20250219", (3, 15, 3.75, 6, 0.3)),
        ("claude-haiku-4-5-20251001", (1, 5, 1.25, 2, 0.1)),
        ("claude-3-5-haiku-20241022", (0.8, 4, 1, 1.6, 0.08)),
        ("claude-3-haiku-20240307", (0.25, 1.25, 0.3, 0.5, 0.03)),
    ],
)
def test_each_token_kind_has_its_rate(
    table: pricing.PriceTable, model: str, per_million: tuple[float, ...]
) -> None:
    kinds = [(M, 0, 0, 0, 0), (0, M, 0, 0, 0), (0, 0, M, 0, 0), (0, 0, 0, M, 0), (0, 0, 0, 0, M)]
    # A million tokens of each kind alone, below the long-context threshold per request:
    # spread over requests of 100k.
    for tokens, expected in zip(kinds, per_million, strict=True):
        i, o, w5, w1, r = (t // 10 for t in tokens)
        cost, how = table.cost(model, i, o, w5, w1, r)
        assert how is Priced.PRICED
        assert cost * 10 == pytest.approx(expected)


@pytest.mark.parametrize(
    "spelling",
    [
        "claude-sonnet-4-20250514",
        "claude-sonnet-4",
        "claude-sonnet-4-0",
        "CLAUDE-SONNET-4-20250514",
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "claude-sonnet-4@20250514",
        "claude-sonnet-4-20250514[1m]",
    ],
)
def test_model_names_are_normalised_not_guessed(table: pricing.PriceTable, spelling: str) -> None:
    price = table.lookup(spelling)
    assert price is not None and price.name == "claude-sonnet-4"


@pytest.mark.parametrize(
    "unknown", ["claude-sonnet-9", "claude-sonnet", "gpt-4o", "claude-opus-4-5-preview", ""]
)
def test_unknown_models_are_unpriced(table: pricing.PriceTable, unknown: str) -> None:
    assert table.lookup(unknown) is None
    assert table.cost(unknown, 1000, 1000, 0, 0, 0) == (0.0, Priced.UNPRICED)


def test_synthetic_costs_nothing_and_says_so(table: pricing.PriceTable) -> None:
    assert table.cost("<synthetic>", 5000, 5000, 10, 10, 10) == (0.0, Priced.SYNTHETIC)


def test_long_context_tier_applies_to_the_whole_request(table: pricing.PriceTable) -> None:
    model = "claude-sonnet-4-5-20250929"
    at_threshold, _ = table.cost(model, 100_000, 1000, 50_000, 0, 50_000)
    assert at_threshold == pytest.approx(
        (100_000 * 3 + 1000 * 15 + 50_000 * 3.75 + 50_000 * 0.3) / M
    )
    above, _ = table.cost(model, 100_000, 1000, 50_000, 0, 50_001)
    expected = (100_000 * 6 + 1000 * 22.5 + 50_000 * 7.5 + 50_001 * 0.6) / M
    assert above == pytest.approx(expected)
    one_hour, _ = table.cost(model, 0, 0, 0, 300_000, 0)
    assert one_hour == pytest.approx(300_000 * 12 / M)
    # Output alone never crosses the threshold: it is not input.
    assert table.cost(model, 10, 300_000, 0, 0, 0)[0] == pytest.approx((10 * 3 + 300_000 * 15) / M)


def test_models_without_a_long_context_tier_stay_at_base_rates(table: pricing.PriceTable) -> None:
    cost, _ = table.cost("claude-opus-4-5-20251101", 300_000, 0, 0, 0, 0)
    assert cost == pytest.approx(300_000 * 5 / M)


def test_fast_mode_is_unpriced_unless_configured(table: pricing.PriceTable) -> None:
    assert table.cost("claude-opus-4-6", 1000, 1000, 0, 0, 0, "fast") == (0.0, Priced.UNPRICED)
    configured = pricing.load_table(
        PricesConfig(
            models={
                "claude-opus-4-6": ModelPriceOverride(
                    fast=PriceRates(
                        input=30, output=150, cache_write_5m=37.5, cache_write_1h=60, cache_read=3
                    )
                )
            }
        )
    )
    cost, how = configured.cost("claude-opus-4-6", 1000, 1000, 0, 0, 0, "fast")
    assert how is Priced.PRICED and cost == pytest.approx((1000 * 30 + 1000 * 150) / M)


@pytest.mark.parametrize(
    ("total", "five", "hour", "split", "expected"),
    [
        (1000, 0, 0, False, (1000, 0)),  # before the 1-hour cache: all 5-minute
        (1000, 400, 600, True, (400, 600)),
        (1000, 1000, 0, True, (1000, 0)),
        (1000, 0, 5000, True, (0, 1000)),  # the reported total is the authority
        (0, 300, 200, True, (300, 200)),
        (0, 0, 0, False, (0, 0)),
    ],
)
def test_cache_writes_split_by_duration(
    total: int, five: int, hour: int, split: bool, expected: tuple[int, int]
) -> None:
    assert split_cache_writes(total, five, hour, split) == expected


def test_one_hour_writes_cost_more(table: pricing.PriceTable) -> None:
    five, _ = table.cost("claude-opus-4-5", 0, 0, 10_000, 0, 0)
    hour, _ = table.cost("claude-opus-4-5", 0, 0, 0, 10_000, 0)
    assert hour == pytest.approx(five * 1.6)


def test_overrides_change_rates_and_the_version(table: pricing.PriceTable) -> None:
    custom = pricing.load_table(
        PricesConfig(models={"claude-sonnet-4": ModelPriceOverride(input=2.0)})
    )
    assert custom.version.startswith(table.version + "+local.")
    # Partial override: only input changes, for the dated spelling and the aliases too.
    for spelling in ("claude-sonnet-4-20250514", "claude-sonnet-4-0"):
        price = custom.lookup(spelling)
        assert price is not None
        assert price.base.input == 2.0 and price.base.output == 15.0
    same = pricing.load_table(
        PricesConfig(models={"claude-sonnet-4": ModelPriceOverride(input=2.0)})
    )
    assert same.version == custom.version
    other = pricing.load_table(
        PricesConfig(models={"claude-sonnet-4": ModelPriceOverride(input=2.5)})
    )
    assert other.version != custom.version


def test_overrides_can_add_a_model_with_every_rate() -> None:
    added = pricing.load_table(
        PricesConfig(
            models={
                "acme-model": ModelPriceOverride(
                    input=1, output=2, cache_write_5m=1.25, cache_write_1h=2, cache_read=0.1
                )
            }
        )
    )
    assert added.cost("acme-model", M, 0, 0, 0, 0) == (1.0, Priced.PRICED)
    with pytest.raises(pricing.PriceTableError, match="missing: output"):
        pricing.load_table(PricesConfig(models={"acme-model": ModelPriceOverride(input=1)}))
    with pytest.raises(pricing.PriceTableError, match="negative"):
        pricing.load_table(PricesConfig(models={"claude-sonnet-4": ModelPriceOverride(input=-1)}))


def test_config_file_overrides_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[prices.models."claude-opus-4-5"]\noutput = 20.0\n')
    loaded = config_load.load(path)
    assert loaded.prices.models["claude-opus-4-5"].output == 20.0
    path.write_text('[prices.models."new-model"]\ninput = 1.0\n')
    with pytest.raises(config_load.ConfigError, match="new-model"):
        config_load.load(path)
    path.write_text('[prices.models."claude-opus-4-5"]\noutptu = 20.0\n')
    with pytest.raises(config_load.ConfigError, match="outptu"):
        config_load.load(path)
