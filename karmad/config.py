"""The optional TOML configuration: its sections, keys, defaults and ranges.

Every key has a default, so a missing file means "defaults". Unknown keys are refused
with the key's location, because a silently ignored typo in a security setting (say, a
redaction pattern) is worse than a daemon that will not start.

These are only the types, so that any module can take its section without importing
what checks it: reading the file, and the checks that span keys or need another
package's rules (prices, redaction patterns, Syncthing addresses), are in
`karmad.config_load`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from karmad.sync.model import Policy

KIB: Final = 1 << 10
MIB: Final = 1 << 20
GIB: Final = 1 << 30
HOUR: Final = 3600.0
DAY: Final = 24 * HOUR

# Every number has a range: a value outside it would make karmad refuse all work (a
# limit of -1 bytes), spin (a zero interval) or never act (a timeout of 10**18 s).
Timeout = Annotated[float, Meta(gt=0, le=HOUR)]
"""Seconds to wait for something that normally takes a fraction of a second."""
Interval = Annotated[float, Meta(gt=0, le=DAY)]
Rate = Annotated[float, Meta(ge=0, le=1_000_000)]
"""US dollars per million tokens."""
ShortText = Annotated[str, Meta(max_length=4096)]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class DaemonConfig(_Section):
    """Logging (docs/operations.md); `--log-level`, `--log-format` and `--log-file`
    override these."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe messages logged."""
    log_format: Literal["auto", "console", "json", "journal"] = "auto"
    """`auto`: journal lines under systemd, a console on a TTY, JSON lines otherwise."""
    log_file: bool = False
    """Write `karmad.log` in the log directory instead of stderr (launchd uses this)."""
    log_max_bytes: Annotated[int, Meta(ge=4 * KIB, le=GIB)] = 10 * MIB
    """The log file is rotated when it reaches this size..."""
    log_backups: Annotated[int, Meta(ge=1, le=100)] = 5
    """...and this many rotated files are kept."""


class RpcConfig(_Section):
    """Limits of the control socket; docs/protocol.md lists them with their errors."""

    max_message_bytes: Annotated[int, Meta(ge=4 * KIB, le=256 * MIB)] = MIB
    """Longest request line; a longer one is answered `message_too_large` and closed."""
    max_batch_items: Annotated[int, Meta(ge=1, le=100_000)] = 100
    """Most requests in one batch; a longer batch is answered `batch_too_large`."""
    max_response_bytes: Annotated[int, Meta(ge=64 * KIB, le=1024 * MIB)] = 32 * MIB
    """Most bytes of results in one answer (a batch's answers together)."""
    client_buffer: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    """Notifications queued per subscribed client before it is dropped as too slow."""
    max_clients: Annotated[int, Meta(ge=1, le=10_000)] = 256
    """Connections served at once; more are answered `too_many_clients`."""
    max_clients_per_process: Annotated[int, Meta(ge=1, le=10_000)] = 64
    """Connections one client process (by its pid) may hold, so none can take them all."""
    idle_timeout_s: Annotated[float, Meta(ge=1, le=7 * 86_400)] = 300.0
    """A connection without a request for this long, and no event subscription, is closed."""


class SyncthingConfig(_Section):
    """How karmad reaches Syncthing; see docs/syncthing.md."""

    mode: Literal["managed", "external", "off"] = "managed"
    """`managed`: karmad runs its own Syncthing; `external`: attach to the user's own;
    `off`: no sharing (sessions are still indexed)."""
    binary: ShortText = ""
    """managed: the Syncthing executable; empty searches PATH."""
    profile: Literal["internet", "lan-only", "loopback"] = "internet"
    """managed: `internet` keeps Syncthing's discovery, relays and NAT traversal; `lan-only`
    and `loopback` turn them off and listen on explicit addresses only. external: what
    `karmactl doctor` expects of that Syncthing's discovery and relays."""
    listen_addresses: Annotated[list[ShortText], Meta(max_length=64)] = msgspec.field(
        default_factory=list
    )
    """managed: explicit sync listen addresses (`tcp://host:port`); empty follows the profile."""
    gui_address: ShortText = "auto"
    """managed: where Syncthing's REST API listens. `auto` is a Unix socket beside karmad's
    own (or 127.0.0.1 on a free port when that path is too long); otherwise a loopback
    `host:port` or an absolute socket path."""
    address: ShortText = ""
    """external: Syncthing's GUI/REST address; empty reads it from its config.xml."""
    api_key: ShortText = ""
    """external: the REST API key; empty reads it from its config.xml."""
    home: ShortText = ""
    """external: the Syncthing home holding config.xml; empty tries the default homes.
    Its cert.pem and key.pem sign what this member publishes (needed with only
    `address` and `api_key`, else this member cannot sign)."""
    connect_timeout_s: Timeout = 5.0
    """How long connecting to Syncthing's REST API may take."""
    request_timeout_s: Timeout = 30.0
    """How long one REST request may take."""
    scan_timeout_s: Interval = 600.0
    """A scan request returns only once Syncthing has scanned, which can take long."""
    start_timeout_s: Timeout = 60.0
    """managed: how long a starting Syncthing may take to answer before it is restarted."""
    stop_timeout_s: Timeout = 10.0
    """managed: grace period after SIGTERM before the process group is killed."""
    restart_delay_s: Timeout = 1.0
    """Delay before restarting (managed) or reattaching to (external) a Syncthing that
    went away; doubled after each short run..."""
    restart_delay_max_s: Interval = 60.0
    """...up to this."""
    event_poll_s: Annotated[int, Meta(ge=1, le=300)] = 30
    """Long-poll duration of the event stream (the HTTP read timeout is above it)."""


class TeamsConfig(_Section):
    """Timings of the team control plane; see docs/teams.md."""

    removal_grace_s: Annotated[float, Meta(gt=0, le=3650 * DAY)] = 14 * DAY
    """How long a removal or dissolution stays deliverable to a member that is offline."""
    ack_linger_s: Interval = 30.0
    """How long the leader keeps an acknowledged device so it also sees the answer."""
    sweep_interval_s: Interval = 60.0
    """The safety sweep: a reconcile cycle even when nothing seems to have changed."""

    def policy(self) -> Policy:
        return Policy(
            removal_grace=timedelta(seconds=self.removal_grace_s),
            ack_linger=timedelta(seconds=self.ack_linger_s),
        )


MAX_PARSE_PROCESSES: Final = 32


class IndexConfig(_Section):
    """The session index (`index.db`): what is indexed and how eagerly."""

    enabled: bool = True
    """Index local and received sessions at all; without it `sessions` and `usage` are empty."""
    full_text: bool = True
    """Keep a full-text index of user and assistant text for `session.search`."""
    watch: bool = True
    """Follow changes as they happen; without it only start-up and `index.rebuild` scan."""
    watch_step_ms: Annotated[int, Meta(ge=1, le=10_000)] = 20
    """How often the file watcher looks for news: a shorter step shows appended lines
    sooner, a longer one wakes the daemon less when nothing happens."""
    watch_debounce_ms: Annotated[int, Meta(ge=1, le=60_000)] = 500
    """Longest time changes are gathered into one batch while writes keep coming."""
    batch_bytes: Annotated[int, Meta(ge=4 * KIB, le=4 * GIB)] = 32 * MIB
    """New transcript bytes written per transaction during a long scan."""
    chunk_bytes: Annotated[int, Meta(ge=4 * KIB, le=GIB)] = 4 * MIB
    """Read size; bounds the memory one file costs however large it is."""
    max_line_bytes: Annotated[int, Meta(ge=4 * KIB, le=16 * GIB)] = 256 * MIB
    """Longer lines are recorded as malformed and skipped without being held in memory."""
    max_received_file_bytes: Annotated[int, Meta(ge=64 * KIB, le=1 << 40)] = GIB
    """A file received from a teammate larger than this is refused, not indexed."""
    parse_processes: Annotated[int, Meta(ge=-1, le=MAX_PARSE_PROCESSES)] = -1
    """Processes that parse a large backlog while the worker thread writes what they
    parsed; -1 picks one per CPU but one (at most 4), 0 parses in the worker thread.
    More than a few gain nothing: the one thread that writes is then the bottleneck."""


class PriceRates(_Section):
    """US dollars per million tokens; a field left out keeps the table's value."""

    input: Rate | None = None
    """Input tokens."""
    output: Rate | None = None
    """Output tokens."""
    cache_write_5m: Rate | None = None
    """Tokens written to the prompt cache for 5 minutes."""
    cache_write_1h: Rate | None = None
    """Tokens written to the prompt cache for 1 hour."""
    cache_read: Rate | None = None
    """Tokens read from the prompt cache."""


class ModelPriceOverride(PriceRates):
    long_context: PriceRates | None = None
    """Rates for requests above the table's long-context threshold."""
    fast: PriceRates | None = None
    """Rates for requests answered in fast mode (`usage.speed == "fast"`)."""


class PricesConfig(_Section):
    """Overrides of, and additions to, the price table shipped with karmad."""

    models: Annotated[dict[ShortText, ModelPriceOverride], Meta(max_length=10_000)] = msgspec.field(
        default_factory=dict
    )
    """By model name (`claude-sonnet-4-5`), spelled as docs/index.md says; a model the
    table does not know needs every rate."""


class DoctorConfig(_Section):
    """Thresholds of `karmactl doctor`'s daemon-side checks."""

    min_free_mb: Annotated[int, Meta(ge=0, le=10**9)] = 500
    """Free space (MiB) below this on the state directory's disk is a failure..."""
    warn_free_mb: Annotated[int, Meta(ge=0, le=10**9)] = 2048
    """...and below this a warning: outboxes and inboxes grow with every session."""
    check_timeout_s: Timeout = 15.0
    """A check that takes longer is reported as failed (a hung Syncthing, a slow disk)."""
    peer_unseen_days: Annotated[float, Meta(gt=0, le=3650)] = 7.0
    """A configured peer not seen for longer is a warning: its sessions are not moving."""
    team_phase_warn_hours: Annotated[float, Meta(gt=0, le=24 * 3650)] = 24.0
    """A team still joining, leaving, removed or dissolved after this long is a warning:
    those phases end once the other side answers, which normally takes seconds."""


class ArchiveConfig(_Section):
    """karmad's archive of the member's own sessions (docs/operations.md): hard links
    (copies across filesystems) that outlive Claude Code's cleanup."""

    enabled: bool = True
    """Keep every own session (main transcript, subagents, tool results), shared or not."""
    exclude_projects: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=4096)]], Meta(max_length=1000)
    ] = msgspec.field(default_factory=list)
    """Projects never archived: a git remote in any spelling (`git@github.com:acme/app`,
    `github.com/acme/app`) or a checkout directory. Files archived before a project was
    excluded stay until removed by hand."""
    sweep_interval_s: Annotated[float, Meta(gt=0, le=86400)] = 300.0
    """A pass over every local transcript even when no change was announced (files
    written while the index was turned off, or a change it missed)."""


class RedactionPattern(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: ShortText
    """The kind in the placeholder: `[REDACTED:<name>]`."""
    regex: ShortText
    """Python regex, matched against each string value; a `secret` group, when present,
    is the part replaced."""
    anchors: Annotated[list[ShortText], Meta(max_length=100)] = msgspec.field(default_factory=list)
    """Literal strings every match contains; needed only when the regex does not start
    with at least 3 literal characters."""


class RedactionConfig(_Section):
    """Your own additions to redaction (docs/security.md)."""

    disable: Annotated[list[ShortText], Meta(max_length=100)] = msgspec.field(default_factory=list)
    """Built-in kinds not to redact."""
    literals: Annotated[list[ShortText], Meta(max_length=100_000)] = msgspec.field(
        default_factory=list
    )
    """Exact strings always redacted, as `[REDACTED:literal]` (at least 3 characters)."""
    patterns: Annotated[list[RedactionPattern], Meta(max_length=1000)] = msgspec.field(
        default_factory=list
    )
    """Regular expressions whose matches are redacted as `[REDACTED:<name>]`."""


class KeeperConfig(_Section):
    """Keeper mode (docs/keeper.md): this karmad holds teams' folders as ciphertext for
    members who are never online at the same time, and does nothing else."""

    enabled: bool = False
    """Run as a keeper: no session watcher, index, packager or teams of its own; only
    the teams whose leaders it agreed to serve (`karmactl keeper serve`)."""
    sweep_interval_s: Interval = 60.0
    """How often the keeper re-checks what it holds even when nothing changed."""


class Config(_Section):
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    rpc: RpcConfig = msgspec.field(default_factory=RpcConfig)
    syncthing: SyncthingConfig = msgspec.field(default_factory=SyncthingConfig)
    teams: TeamsConfig = msgspec.field(default_factory=TeamsConfig)
    index: IndexConfig = msgspec.field(default_factory=IndexConfig)
    prices: PricesConfig = msgspec.field(default_factory=PricesConfig)
    doctor: DoctorConfig = msgspec.field(default_factory=DoctorConfig)
    redaction: RedactionConfig = msgspec.field(default_factory=RedactionConfig)
    archive: ArchiveConfig = msgspec.field(default_factory=ArchiveConfig)
    keeper: KeeperConfig = msgspec.field(default_factory=KeeperConfig)
