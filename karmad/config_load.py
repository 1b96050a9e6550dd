"""Reading the config file into a `karmad.config.Config`, and refusing a bad one.

Decoding checks each key against its type and range; what a range on one key cannot
say — how keys relate, and values with a syntax owned by another package (a price
override, a redaction pattern, a Syncthing address) — is checked here, with that
package's own rules, so that a mistake stops start-up with one line naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from karmad import codec
from karmad.config import Config, PricesConfig, RedactionConfig, SyncthingConfig
from karmad.index import pricing
from karmad.redact import custom
from karmad.syncthing import addresses


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
        raise ConfigError(f"{path}: {_explain(exc)}") from None
    _validate(config, path)
    return config


_BOUND = re.compile(r"Expected `\w+`(?P<length> of length)? (?P<op>>=|<=|>|<) (?P<limit>[-+\w.]+)$")
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}


def _explain(exc: codec.InvalidData) -> str:
    """The key in TOML's spelling and, for a value out of range, the range in words:
    `index.max_received_file_bytes must be at least 65536`."""
    text = str(exc)
    if not exc.path.startswith("$."):
        return text
    key = exc.path.removeprefix("$.")
    message = text.rsplit(" - at `", 1)[0]
    bound = _BOUND.match(message)
    if bound is None:
        return f"{key}: {message}"
    limit = bound["limit"].removesuffix(".0")
    if bound["op"] == ">" and limit == "0":
        return f"{key} must be positive"
    unit = " items or characters" if bound["length"] else ""
    return f"{key} must be {_BOUND_WORDS[bound['op']]} {limit}{unit}"


def _validate(config: Config, path: Path) -> None:
    """What a range on one key cannot say: how keys relate, and values with a syntax."""
    if config.doctor.warn_free_mb < config.doctor.min_free_mb:
        raise ConfigError(f"{path}: doctor.warn_free_mb must be at least doctor.min_free_mb")
    index = config.index
    if index.watch_debounce_ms < index.watch_step_ms:
        raise ConfigError(f"{path}: index.watch_debounce_ms must be at least watch_step_ms")
    if index.max_line_bytes < index.chunk_bytes:
        raise ConfigError(f"{path}: index.max_line_bytes must be at least index.chunk_bytes")
    if index.batch_bytes < index.chunk_bytes:
        raise ConfigError(f"{path}: index.batch_bytes must be at least index.chunk_bytes")
    _validate_prices(config.prices, path)
    _validate_syncthing(config.syncthing, path)
    _validate_redaction(config.redaction, path)


def _validate_syncthing(st: SyncthingConfig, path: Path) -> None:
    if st.restart_delay_max_s < st.restart_delay_s:
        raise ConfigError(f"{path}: syncthing.restart_delay_max_s is below restart_delay_s")
    try:
        for address in st.listen_addresses:
            addresses.check_listen_address(address)
            host = urlsplit(address).hostname or ""
            if st.profile == "loopback" and not addresses.is_loopback_host(host):
                raise ValueError(f"profile loopback listens on loopback only, not {address!r}")
        if st.gui_address != "auto":
            addresses.parse_managed_gui(st.gui_address)
        if st.address:
            addresses.parse_endpoint(st.address)
        if st.api_key:
            addresses.check_api_key(st.api_key)
    except ValueError as exc:
        raise ConfigError(f"{path}: syncthing: {exc}") from None


def _validate_prices(prices: PricesConfig, path: Path) -> None:
    try:
        pricing.load_table(prices)
    except pricing.PriceTableError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _validate_redaction(section: RedactionConfig, path: Path) -> None:
    """Compile the user's rules now, so a bad pattern stops start-up, not packaging."""
    try:
        custom.check_disable(section.disable)
        custom.user_rules(
            [custom.UserPattern(p.name, p.regex, tuple(p.anchors)) for p in section.patterns],
            section.literals,
        )
    except custom.RuleError as exc:
        raise ConfigError(f"{path}: redaction: {exc}") from None
