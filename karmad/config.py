"""The optional TOML configuration.

Every key has a default, so a missing file means "defaults". Unknown keys are refused
with the key's location, because a silently ignored typo in a security setting (say, a
redaction pattern) is worse than a daemon that will not start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from karmad import codec


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class DaemonConfig(_Section):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "console", "json", "journal"] = "auto"
    """`auto`: journal lines under systemd, a console on a TTY, JSON lines otherwise."""


class RpcConfig(_Section):
    max_message_bytes: int = 1 << 20
    client_buffer: int = 1000
    """Notifications queued per subscribed client before it is dropped as too slow."""
    max_clients: int = 256


class IndexConfig(_Section):
    """The session index (`index.db`): what is indexed and how eagerly."""

    enabled: bool = True
    full_text: bool = True
    """Keep a full-text index of user and assistant text for `session.search`."""
    watch: bool = True
    """Follow changes as they happen; without it only start-up and `index.rebuild` scan."""
    watch_step_ms: int = 20
    """How often the file watcher looks for news: a shorter step shows appended lines
    sooner, a longer one wakes the daemon less when nothing happens."""
    watch_debounce_ms: int = 500
    """Longest time changes are gathered into one batch while writes keep coming."""
    batch_bytes: int = 32 << 20
    """New transcript bytes written per transaction during a long scan."""
    chunk_bytes: int = 4 << 20
    """Read size; bounds the memory one file costs however large it is."""
    max_line_bytes: int = 256 << 20
    """Longer lines are recorded as malformed and skipped without being held in memory."""
    parse_processes: int = -1
    """Processes that parse a large backlog while the worker thread writes what they
    parsed; -1 picks one per CPU but one (at most 4), 0 parses in the worker thread."""


class PriceRates(_Section):
    """US dollars per million tokens; a field left out keeps the table's value."""

    input: float | None = None
    output: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    cache_read: float | None = None


class ModelPriceOverride(PriceRates):
    long_context: PriceRates | None = None
    """Rates for requests above the table's long-context threshold."""
    fast: PriceRates | None = None
    """Rates for requests answered in fast mode (`usage.speed == "fast"`)."""


class PricesConfig(_Section):
    """Overrides of, and additions to, the price table shipped with karmad."""

    models: dict[str, ModelPriceOverride] = msgspec.field(default_factory=dict)


class Config(_Section):
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    rpc: RpcConfig = msgspec.field(default_factory=RpcConfig)
    index: IndexConfig = msgspec.field(default_factory=IndexConfig)
    prices: PricesConfig = msgspec.field(default_factory=PricesConfig)


class ConfigError(Exception):
    pass


def load(path: Path) -> Config:
    """Read the config file; a missing file is the all-defaults config."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        config = codec.decode_toml(data, Config)
    except codec.InvalidData as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _validate(config, path)
    return config


def _validate(config: Config, path: Path) -> None:
    if config.rpc.max_message_bytes < 4096:
        raise ConfigError(f"{path}: rpc.max_message_bytes must be at least 4096")
    if config.rpc.client_buffer < 1:
        raise ConfigError(f"{path}: rpc.client_buffer must be at least 1")
    if config.rpc.max_clients < 1:
        raise ConfigError(f"{path}: rpc.max_clients must be at least 1")
    index = config.index
    if not 1 <= index.watch_step_ms <= 10_000:
        raise ConfigError(f"{path}: index.watch_step_ms must be between 1 and 10000")
    if index.watch_debounce_ms < index.watch_step_ms:
        raise ConfigError(f"{path}: index.watch_debounce_ms must be at least watch_step_ms")
    if index.chunk_bytes < 4096:
        raise ConfigError(f"{path}: index.chunk_bytes must be at least 4096")
    if index.max_line_bytes < index.chunk_bytes:
        raise ConfigError(f"{path}: index.max_line_bytes must be at least index.chunk_bytes")
    if index.batch_bytes < index.chunk_bytes:
        raise ConfigError(f"{path}: index.batch_bytes must be at least index.chunk_bytes")
    if index.parse_processes < -1:
        raise ConfigError(f"{path}: index.parse_processes must be -1 (automatic) or more")
    _validate_prices(config.prices, path)


def _validate_prices(prices: PricesConfig, path: Path) -> None:
    # Imported here: the price table is only needed when overrides exist.
    from karmad.index import pricing

    try:
        pricing.load_table(prices)
    except pricing.PriceTableError as exc:
        raise ConfigError(f"{path}: {exc}") from None
