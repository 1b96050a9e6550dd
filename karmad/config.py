"""The optional TOML configuration.

Every key has a default, so a missing file means "defaults". Unknown keys are refused
with the key's location, because a silently ignored typo in a security setting (say, a
redaction pattern) is worse than a daemon that will not start.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from karmad import codec
from karmad.sync.model import Policy


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
    """Limits of the control socket; docs/protocol.md lists them with their errors."""

    max_message_bytes: int = 1 << 20
    """Longest request line; a longer one is answered `message_too_large` and closed."""
    max_batch_items: int = 100
    """Most requests in one batch; a longer batch is answered `batch_too_large`."""
    max_response_bytes: int = 32 << 20
    """Most bytes of results in one answer (a batch's answers together)."""
    client_buffer: int = 1000
    """Notifications queued per subscribed client before it is dropped as too slow."""
    max_clients: int = 256
    """Connections served at once."""
    max_clients_per_process: int = 64
    """Connections one client process (by its pid) may hold, so none can take them all."""
    idle_timeout_s: float = 300.0
    """A connection without a request for this long, and no event subscription, is closed."""


class SyncthingConfig(_Section):
    """How karmad reaches Syncthing; see docs/syncthing.md."""

    mode: Literal["managed", "external", "off"] = "managed"
    """`managed`: karmad runs its own Syncthing; `external`: attach to the user's own;
    `off`: no sharing (sessions are still indexed)."""
    binary: str = ""
    """managed: the Syncthing executable; empty searches PATH."""
    profile: Literal["internet", "lan-only", "loopback"] = "internet"
    """managed: `internet` keeps Syncthing's discovery, relays and NAT traversal; `lan-only`
    and `loopback` turn them off and listen on explicit addresses only. external: what
    `karmactl doctor` expects of that Syncthing's discovery and relays."""
    listen_addresses: list[str] = msgspec.field(default_factory=list)
    """managed: explicit sync listen addresses (`tcp://host:port`); empty follows the profile."""
    gui_address: str = "auto"
    """managed: where Syncthing's REST API listens. `auto` is a Unix socket beside karmad's
    own (or 127.0.0.1 on a free port when that path is too long); otherwise a loopback
    `host:port` or an absolute socket path."""
    address: str = ""
    """external: Syncthing's GUI/REST address; empty reads it from its config.xml."""
    api_key: str = ""
    """external: the REST API key; empty reads it from its config.xml."""
    home: str = ""
    """external: the Syncthing home holding config.xml; empty tries the default homes."""
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 30.0
    scan_timeout_s: float = 600.0
    """A scan request returns only once Syncthing has scanned, which can take long."""
    start_timeout_s: float = 60.0
    """managed: how long a starting Syncthing may take to answer before it is restarted."""
    stop_timeout_s: float = 10.0
    """managed: grace period after SIGTERM before the process group is killed."""
    restart_delay_s: float = 1.0
    restart_delay_max_s: float = 60.0
    event_poll_s: int = 30
    """Long-poll duration of the event stream (the HTTP read timeout is above it)."""


class TeamsConfig(_Section):
    """Timings of the team control plane; see docs/teams.md."""

    removal_grace_s: float = 14 * 24 * 3600
    """How long a removal or dissolution stays deliverable to a member that is offline."""
    ack_linger_s: float = 30.0
    """How long the leader keeps an acknowledged device so it also sees the answer."""
    sweep_interval_s: float = 60.0
    """The safety sweep: a reconcile cycle even when nothing seems to have changed."""

    def policy(self) -> Policy:
        return Policy(
            removal_grace=timedelta(seconds=self.removal_grace_s),
            ack_linger=timedelta(seconds=self.ack_linger_s),
        )


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
    max_received_file_bytes: int = 1 << 30
    """A file received from a teammate larger than this is refused, not indexed."""
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


class DoctorConfig(_Section):
    """Thresholds of `karmactl doctor`'s daemon-side checks."""

    min_free_mb: int = 500
    """Free space below this on the state directory's disk is a failure..."""
    warn_free_mb: int = 2048
    """...and below this a warning: outboxes and inboxes grow with every session."""
    check_timeout_s: float = 15.0
    """A check that takes longer is reported as failed (a hung Syncthing, a slow disk)."""
    peer_unseen_days: float = 7.0
    """A configured peer not seen for longer is a warning: its sessions are not moving."""
    team_phase_warn_hours: float = 24.0
    """A team still joining, leaving, removed or dissolved after this long is a warning:
    those phases end once the other side answers, which normally takes seconds."""


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
    syncthing: SyncthingConfig = msgspec.field(default_factory=SyncthingConfig)
    teams: TeamsConfig = msgspec.field(default_factory=TeamsConfig)
    index: IndexConfig = msgspec.field(default_factory=IndexConfig)
    prices: PricesConfig = msgspec.field(default_factory=PricesConfig)
    doctor: DoctorConfig = msgspec.field(default_factory=DoctorConfig)
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
    _validate_rpc(config.rpc, path)
    if config.daemon.log_max_bytes < 4096:
        raise ConfigError(f"{path}: daemon.log_max_bytes must be at least 4096")
    if config.daemon.log_backups < 1:
        raise ConfigError(f"{path}: daemon.log_backups must be at least 1")
    if config.doctor.min_free_mb < 0:
        raise ConfigError(f"{path}: doctor.min_free_mb must not be negative")
    if config.doctor.warn_free_mb < config.doctor.min_free_mb:
        raise ConfigError(f"{path}: doctor.warn_free_mb must be at least doctor.min_free_mb")
    for name in ("check_timeout_s", "peer_unseen_days", "team_phase_warn_hours"):
        if not getattr(config.doctor, name) > 0:
            raise ConfigError(f"{path}: doctor.{name} must be positive")
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
    _validate_syncthing(config.syncthing, path)
    for name in ("removal_grace_s", "ack_linger_s", "sweep_interval_s"):
        if not getattr(config.teams, name) > 0:
            raise ConfigError(f"{path}: teams.{name} must be greater than 0")
    _validate_redaction(config.redaction, path)


_RPC_RANGES: dict[str, tuple[float, float]] = {
    "max_message_bytes": (4096, 1 << 30),
    "max_batch_items": (1, 100_000),
    "max_response_bytes": (65536, 1 << 30),
    "client_buffer": (1, 1_000_000),
    "max_clients": (1, 100_000),
    "max_clients_per_process": (1, 100_000),
    "idle_timeout_s": (1, 7 * 86_400),
}


def _validate_rpc(rpc: RpcConfig, path: Path) -> None:
    for name, (low, high) in _RPC_RANGES.items():
        value = getattr(rpc, name)
        if not value >= low:  # NaN included
            raise ConfigError(f"{path}: rpc.{name} must be at least {low}")
        if not value <= high:
            raise ConfigError(f"{path}: rpc.{name} must be at most {high}")


def _validate_syncthing(st: SyncthingConfig, path: Path) -> None:
    # Imported here: the address rules belong to the Syncthing package, and most of the
    # config never needs them.
    from karmad.syncthing import addresses

    positive = (
        "connect_timeout_s",
        "request_timeout_s",
        "scan_timeout_s",
        "start_timeout_s",
        "stop_timeout_s",
        "restart_delay_s",
        "restart_delay_max_s",
    )
    for name in positive:
        if not getattr(st, name) > 0:
            raise ConfigError(f"{path}: syncthing.{name} must be greater than 0")
    if st.restart_delay_max_s < st.restart_delay_s:
        raise ConfigError(f"{path}: syncthing.restart_delay_max_s is below restart_delay_s")
    if not 1 <= st.event_poll_s <= 300:
        raise ConfigError(f"{path}: syncthing.event_poll_s must be between 1 and 300")
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
    # Imported here: the price table is only needed when overrides exist.
    from karmad.index import pricing

    try:
        pricing.load_table(prices)
    except pricing.PriceTableError as exc:
        raise ConfigError(f"{path}: {exc}") from None


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
