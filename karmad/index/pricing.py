"""What a request cost, from the versioned price table in `prices.toml`.

Prices never come from the network: the table ships with karmad and carries a version,
and every cost the index stores records the version it was computed with, so a figure
can always be explained (and recomputed when the table changes). A user's overrides
(`[prices.models.*]` in the config) change the effective version, so their figures are
never mistaken for list prices.

A model that the table does not know is *unpriced*: its tokens are counted, its cost is
reported as missing, and nothing is guessed from a similar-looking name. `<synthetic>` is
Claude Code's own placeholder for messages it generated locally (API errors, interrupted
turns); those cost nothing by definition and are reported as such.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Final, TypeAlias

import msgspec

from karmad import codec
from karmad.config import ModelPriceOverride, PriceRates, PricesConfig

SYNTHETIC_MODEL: Final = "<synthetic>"
PER_TOKENS: Final = 1_000_000


class PriceTableError(Exception):
    """The shipped table or a configured override is invalid."""


class Priced(enum.IntEnum):
    """How a request's cost was determined; stored beside each usage row."""

    UNPRICED = 0
    PRICED = 1
    SYNTHETIC = 2


@dataclass(frozen=True, slots=True)
class Rates:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def cost(self, inp: int, out: int, cw5: int, cw1h: int, cr: int) -> float:
        return (
            inp * self.input
            + out * self.output
            + cw5 * self.cache_write_5m
            + cw1h * self.cache_write_1h
            + cr * self.cache_read
        ) / PER_TOKENS


@dataclass(frozen=True, slots=True)
class ModelPrice:
    name: str
    base: Rates
    long_context: Rates | None = None
    fast: Rates | None = None


class _FileRates(msgspec.Struct, forbid_unknown_fields=True):
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


class _FileModel(_FileRates, forbid_unknown_fields=True):
    aliases: list[str] = msgspec.field(default_factory=list)
    long_context: _FileRates | None = None
    fast: _FileRates | None = None


class _FileTable(msgspec.Struct, forbid_unknown_fields=True):
    version: str
    currency: str
    long_context_threshold: int
    models: dict[str, _FileModel]


_PREFIX = re.compile(r"^(?:(?:us|eu|apac|global|jp|au)\.)?(?:anthropic\.)?")
_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?)$")
_DATE = re.compile(r"-(?:\d{8}|latest)$")


def model_key(model: str) -> str:
    """The spelling of a model id the table is keyed by (see prices.toml's header)."""
    key = model.strip().lower()
    key = _PREFIX.sub("", key, count=1)
    key = key.split("[", 1)[0]
    key = key.replace("@", "-")
    return _SUFFIX.sub("", key)


def _rates(raw: _FileRates | PriceRates) -> Rates:
    values = (raw.input, raw.output, raw.cache_write_5m, raw.cache_write_1h, raw.cache_read)
    if any(v is None or v < 0 for v in values):
        raise PriceTableError("prices must be given and not negative")
    return Rates(*(float(v) for v in values if v is not None))


def _merge(base: Rates | None, override: PriceRates, what: str) -> Rates:
    fields = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
    given = {f: getattr(override, f) for f in fields if getattr(override, f) is not None}
    for name, value in given.items():
        if value < 0:
            raise PriceTableError(f"{what}.{name} must not be negative")
    if base is None:
        missing = [f for f in fields if f not in given]
        if missing:
            raise PriceTableError(
                f"{what} is not in the price table, so it needs every rate; "
                f"missing: {', '.join(missing)}"
            )
        return Rates(**{f: float(v) for f, v in given.items()})
    return replace(base, **{f: float(v) for f, v in given.items()})


_Plan: TypeAlias = tuple[Priced, Rates | None, Rates | None]
"""How a request is priced: how, at which rates (None: costs nothing), and the
long-context rates that replace them above the threshold, if the model has them."""


class PriceTable:
    def __init__(
        self, version: str, currency: str, threshold: int, models: dict[str, ModelPrice]
    ) -> None:
        self.version = version
        self.currency = currency
        self.threshold = threshold
        self._models = models
        self._lookups: dict[str, ModelPrice | None] = {}
        self._plans: dict[tuple[str, str], _Plan] = {}

    @property
    def models(self) -> dict[str, ModelPrice]:
        return dict(self._models)

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of `model` by exact name (after normalising its spelling), or None."""
        try:
            return self._lookups[model]
        except KeyError:
            pass
        key = model_key(model)
        found = self._models.get(key)
        if found is None:
            found = self._models.get(_DATE.sub("", key))
        self._lookups[model] = found
        return found

    def cost(
        self, model: str, inp: int, out: int, cw5: int, cw1h: int, cr: int, speed: str = ""
    ) -> tuple[float, Priced]:
        """The cost of one request and how it was determined.

        The long-context tier applies to the whole request, as the API bills it, when its
        input (uncached, cache writes and cache reads together) exceeds the threshold.
        """
        plan = self._plans.get((model, speed))
        if plan is None:
            plan = self._plan(model, speed)
        how, rates, long_context = plan
        if rates is None:
            return 0.0, how
        if long_context is not None and inp + cw5 + cw1h + cr > self.threshold:
            rates = long_context
        return rates.cost(inp, out, cw5, cw1h, cr), how

    def _plan(self, model: str, speed: str) -> _Plan:
        """How requests of a model at a speed are priced, decided once per pair: a full
        index prices tens of thousands of requests of a handful of models."""
        plan: _Plan
        if model == SYNTHETIC_MODEL:
            plan = (Priced.SYNTHETIC, None, None)
        elif (price := self.lookup(model)) is None:
            plan = (Priced.UNPRICED, None, None)
        elif speed == "fast":
            if price.fast is None:
                plan = (Priced.UNPRICED, None, None)
            else:
                plan = (Priced.PRICED, price.fast, None)
        else:
            plan = (Priced.PRICED, price.base, price.long_context)
        self._plans[(model, speed)] = plan
        return plan


def _read_shipped() -> _FileTable:
    data = resources.files("karmad.index").joinpath("prices.toml").read_bytes()
    try:
        return codec.decode_toml(data, _FileTable)
    except codec.InvalidData as exc:
        raise PriceTableError(f"prices.toml: {exc}") from None


@cache
def _shipped() -> _FileTable:
    return _read_shipped()


def _override_digest(overrides: dict[str, ModelPriceOverride]) -> str:
    canonical = json.dumps(codec.to_builtins(overrides), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def load_table(config: PricesConfig | None = None) -> PriceTable:
    """The shipped table with the user's overrides applied."""
    table = _shipped()
    models: dict[str, ModelPrice] = {}
    for name, entry in table.models.items():
        price = ModelPrice(
            name=name,
            base=_rates(entry),
            long_context=_rates(entry.long_context) if entry.long_context else None,
            fast=_rates(entry.fast) if entry.fast else None,
        )
        for key in (name, *entry.aliases):
            models[model_key(key)] = price
    version = table.version
    overrides = config.models if config is not None else {}
    for name, override in sorted(overrides.items()):
        key = model_key(name)
        if not key:
            raise PriceTableError("prices.models: a model name must not be empty")
        what = f"prices.models.{name}"
        current = models.get(key)
        base = _merge(current.base if current else None, override, what)
        long_context = current.long_context if current else None
        if override.long_context is not None:
            long_context = _merge(long_context, override.long_context, f"{what}.long_context")
        fast = current.fast if current else None
        if override.fast is not None:
            fast = _merge(fast, override.fast, f"{what}.fast")
        updated = ModelPrice(name=key, base=base, long_context=long_context, fast=fast)
        # Aliases share the entry they were listed with; an override applies to all.
        for alias, price in list(models.items()):
            if current is not None and price is current:
                models[alias] = updated
        models[key] = updated
    if overrides:
        version = f"{version}+local.{_override_digest(overrides)}"
    return PriceTable(version, table.currency, table.long_context_threshold, models)
