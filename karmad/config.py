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


class RedactionPattern(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    """The kind in the placeholder: `[REDACTED:<name>]`."""
    regex: str
    """Python regex, matched against each string value; a `secret` group, when present,
    is the part replaced."""
    anchors: list[str] = msgspec.field(default_factory=list)
    """Literal strings every match contains; needed only when the regex does not start
    with at least 3 literal characters."""


class RedactionConfig(_Section):
    disable: list[str] = msgspec.field(default_factory=list)
    """Built-in kinds not to redact."""
    literals: list[str] = msgspec.field(default_factory=list)
    """Exact strings always redacted, as `[REDACTED:literal]`."""
    patterns: list[RedactionPattern] = msgspec.field(default_factory=list)


class Config(_Section):
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    rpc: RpcConfig = msgspec.field(default_factory=RpcConfig)
    redaction: RedactionConfig = msgspec.field(default_factory=RedactionConfig)


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
    _validate_redaction(config.redaction, path)


def _validate_redaction(section: RedactionConfig, path: Path) -> None:
    """Compile the user's rules now, so a bad pattern stops start-up, not packaging."""
    from karmad.redact import custom

    try:
        custom.check_disable(section.disable)
        custom.user_rules(
            [custom.UserPattern(p.name, p.regex, tuple(p.anchors)) for p in section.patterns],
            section.literals,
        )
    except custom.RuleError as exc:
        raise ConfigError(f"{path}: redaction: {exc}") from None
