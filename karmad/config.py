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
    log_file: bool = False
    """Write `karmad.log` in the log directory instead of stderr (launchd uses this)."""
    log_max_bytes: int = 10 << 20
    """The log file is rotated when it reaches this size..."""
    log_backups: int = 5
    """...and this many rotated files are kept."""


class RpcConfig(_Section):
    max_message_bytes: int = 1 << 20
    client_buffer: int = 1000
    """Notifications queued per subscribed client before it is dropped as too slow."""
    max_clients: int = 256


class DoctorConfig(_Section):
    """Thresholds of `karmactl doctor`'s daemon-side checks."""

    min_free_mb: int = 500
    """Free space below this on the state directory's disk is a failure..."""
    warn_free_mb: int = 2048
    """...and below this a warning: outboxes and inboxes grow with every session."""
    check_timeout_s: float = 15.0
    """A check that takes longer is reported as failed (a hung Syncthing, a slow disk)."""


class Config(_Section):
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    rpc: RpcConfig = msgspec.field(default_factory=RpcConfig)
    doctor: DoctorConfig = msgspec.field(default_factory=DoctorConfig)


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
    if config.daemon.log_max_bytes < 4096:
        raise ConfigError(f"{path}: daemon.log_max_bytes must be at least 4096")
    if config.daemon.log_backups < 1:
        raise ConfigError(f"{path}: daemon.log_backups must be at least 1")
    if config.doctor.min_free_mb < 0:
        raise ConfigError(f"{path}: doctor.min_free_mb must not be negative")
    if config.doctor.warn_free_mb < config.doctor.min_free_mb:
        raise ConfigError(f"{path}: doctor.warn_free_mb must be at least doctor.min_free_mb")
    if config.doctor.check_timeout_s <= 0:
        raise ConfigError(f"{path}: doctor.check_timeout_s must be positive")
