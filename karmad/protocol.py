"""The control-interface contract shared by karmad and every client.

Everything a client needs to talk to the daemon lives here and nowhere else: the method
names with their typed params and results, the notifications, and the error table.
`karmactl` imports this module and nothing else of `karmad`, so it must only import the
standard library and msgspec. `docs/protocol.md` is generated from it; where the socket
is found is documented there (and resolved by `karmad.paths`, and by each client).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal

import msgspec

PROTOCOL_VERSION: Final = 1
"""Bumped on any incompatible change; additions (methods, optional fields) keep it."""

MAX_MESSAGE_BYTES: Final = 1 << 20
"""Default longest request line the daemon accepts, newline excluded."""

# --------------------------------------------------------------------------- errors


class ErrorCode(enum.IntEnum):
    """Every error code the daemon can answer with.

    Negative codes are JSON-RPC's own (-32768..-32000 is reserved by the specification;
    -32099..-32000 is the implementation-defined server-error range). Application codes
    are positive and grouped by subsystem so they can never collide with the reserved
    range.
    """

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    MESSAGE_TOO_LARGE = -32000
    SHUTTING_DOWN = -32001

    NOT_FOUND = 1000
    ALREADY_EXISTS = 1001
    INVALID_TRANSITION = 1002
    NOT_LEADER = 1003
    NOT_INITIALISED = 1004
    INVALID_ARGUMENT = 1005
    CONFLICT = 1006
    UNSUPPORTED = 1007

    STORE_UNAVAILABLE = 1100
    STORE_FULL = 1101

    SYNCTHING_UNAVAILABLE = 1200
    SYNCTHING_REJECTED = 1201
    SYNCTHING_AUTH_FAILED = 1202
    SYNCTHING_NOT_INSTALLED = 1203

    INVALID_CODE = 1300
    NOT_A_MEMBER = 1301


class ErrorInfo(msgspec.Struct, frozen=True):
    reason: str
    message: str


ERRORS: Final[Mapping[ErrorCode, ErrorInfo]] = {
    ErrorCode.PARSE_ERROR: ErrorInfo("parse_error", "Parse error"),
    ErrorCode.INVALID_REQUEST: ErrorInfo("invalid_request", "Invalid request"),
    ErrorCode.METHOD_NOT_FOUND: ErrorInfo("method_not_found", "Method not found"),
    ErrorCode.INVALID_PARAMS: ErrorInfo("invalid_params", "Invalid params"),
    ErrorCode.INTERNAL_ERROR: ErrorInfo("internal_error", "Internal error"),
    ErrorCode.MESSAGE_TOO_LARGE: ErrorInfo("message_too_large", "Message too large"),
    ErrorCode.SHUTTING_DOWN: ErrorInfo("shutting_down", "The daemon is shutting down"),
    ErrorCode.NOT_FOUND: ErrorInfo("not_found", "Not found"),
    ErrorCode.ALREADY_EXISTS: ErrorInfo("already_exists", "Already exists"),
    ErrorCode.INVALID_TRANSITION: ErrorInfo("invalid_transition", "Invalid state transition"),
    ErrorCode.NOT_LEADER: ErrorInfo("not_leader", "Only the team leader can do this"),
    ErrorCode.NOT_INITIALISED: ErrorInfo(
        "not_initialised", "This member has no identity yet: run `karmactl init --user NAME`"
    ),
    ErrorCode.INVALID_ARGUMENT: ErrorInfo("invalid_argument", "Invalid argument"),
    ErrorCode.CONFLICT: ErrorInfo("conflict", "Conflicts with the current state"),
    ErrorCode.UNSUPPORTED: ErrorInfo("unsupported", "Not supported here"),
    ErrorCode.STORE_UNAVAILABLE: ErrorInfo("store_unavailable", "The store cannot be used"),
    ErrorCode.STORE_FULL: ErrorInfo("store_full", "The disk holding the store is full"),
    ErrorCode.SYNCTHING_UNAVAILABLE: ErrorInfo(
        "syncthing_unavailable", "Syncthing is not reachable"
    ),
    ErrorCode.SYNCTHING_REJECTED: ErrorInfo("syncthing_rejected", "Syncthing rejected a change"),
    ErrorCode.SYNCTHING_AUTH_FAILED: ErrorInfo(
        "syncthing_auth_failed", "Syncthing refused karmad's API key"
    ),
    ErrorCode.SYNCTHING_NOT_INSTALLED: ErrorInfo(
        "syncthing_not_installed", "No Syncthing binary was found"
    ),
    ErrorCode.INVALID_CODE: ErrorInfo("invalid_code", "Invalid pairing or invite code"),
    ErrorCode.NOT_A_MEMBER: ErrorInfo("not_a_member", "Not a member of that team"),
}


class ErrorData(msgspec.Struct, omit_defaults=True, frozen=True):
    """The `data` member of every error the daemon sends.

    `reason` is the stable, machine-readable part; `detail` is for people and may change.
    """

    reason: str
    detail: str = ""
    field: str = ""


# --------------------------------------------------------------------------- base types


class Params(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every params struct: unknown fields are refused so typos surface."""


class NoParams(Params):
    pass


class Result(msgspec.Struct, kw_only=True):
    """Base of every result struct."""


class Ok(Result):
    ok: bool = True


class MethodSpec(msgspec.Struct, frozen=True):
    name: str
    params: type[Params]
    result: type[Any]
    summary: str
    mutating: bool = False


# --------------------------------------------------------------------------- daemon.*


class Hello(Result):
    protocol: int
    version: str
    capabilities: list[str]


class SubsystemState(Result):
    """One subsystem's health as the daemon sees it right now."""

    state: str
    detail: str = ""
    since: datetime | None = None


class PathsInfo(Result):
    config_file: str
    state_dir: str
    runtime_dir: str
    socket: str
    claude_dir: str
    store: str
    index: str
    log_dir: str
    syncthing_home: str


class StoreInfo(Result):
    path: str
    schema_version: int
    latest_schema_version: int


class DaemonStatus(Result):
    version: str
    protocol: int
    pid: int
    backend: str
    started_at: datetime
    uptime_s: float
    paths: PathsInfo
    store: StoreInfo
    subsystems: dict[str, SubsystemState]
    summary: str = ""


class ShutdownParams(Params):
    pass


class SubscribeParams(Params):
    topics: list[str] = msgspec.field(default_factory=list)
    """Topic prefixes to receive (e.g. `index`, `sync.folder`); empty means everything."""
    since: int | None = None
    """Replay remembered events with a greater `seq` first (resume after reconnecting)."""


class RecentParams(Params):
    topics: list[str] = msgspec.field(default_factory=list)
    limit: int = 100


class Subscribed(Result):
    subscription: int
    topics: list[str]
    buffer: int


# --------------------------------------------------------------------------- notifications

NOTIFY_EVENT: Final = "event"
NOTIFY_OVERFLOW: Final = "events.overflow"


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """A notification pushed to clients that called `events.subscribe`."""

    seq: int
    topic: str
    time: datetime
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Overflow(msgspec.Struct, frozen=True, kw_only=True):
    """The last notification a client that fell behind receives before it is dropped."""

    subscription: int
    dropped_after: int
    buffer: int


class RecentEvents(Result):
    events: list[Event]


# --------------------------------------------------------------------------- registry

METHODS: dict[str, MethodSpec] = {}


def _method(
    name: str, params: type[Params], result: type[Any], summary: str, *, mutating: bool = False
) -> None:
    METHODS[name] = MethodSpec(name, params, result, summary, mutating)


_method("daemon.hello", NoParams, Hello, "Protocol version, daemon version and capabilities.")
_method(
    "daemon.status", NoParams, DaemonStatus, "Uptime, pid, backend, paths, store and subsystems."
)
_method(
    "daemon.shutdown",
    ShutdownParams,
    Ok,
    "Stops the daemon cleanly after answering.",
    mutating=True,
)
_method(
    "events.subscribe",
    SubscribeParams,
    Subscribed,
    "Starts pushing `event` notifications on this connection.",
)
_method("events.recent", RecentParams, RecentEvents, "The most recent events still remembered.")

CAPABILITIES: Final = ("events", "batch")

# --------------------------------------------------------------------------- doctor.*

CheckStatus = Literal["pass", "warn", "fail"]


class DoctorCheck(Result):
    """One finding of `karmactl doctor`: what was checked, how it went, how to fix it."""

    name: str
    """Dotted and stable (`store.integrity`, `syncthing.folder.<id>`), for scripts."""
    status: CheckStatus
    message: str
    fix: str = ""
    """What the user should do; empty when there is nothing to do."""


class DoctorStarted(Result):
    run: int
    """The run whose `doctor.finished` event to wait for; a run already under way is
    joined rather than started twice."""


class DoctorReport(Result):
    run: int
    started_at: datetime
    finished_at: datetime
    checks: list[DoctorCheck]


_method(
    "doctor.run",
    NoParams,
    DoctorStarted,
    "Starts the daemon-side health checks; `doctor.check` events report each finding and "
    "`doctor.finished` the end of the run.",
)
_method("doctor.report", NoParams, DoctorReport, "The findings of the last finished run.")
