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

MAX_REQUEST_DEPTH: Final = 32
"""Deepest nesting of arrays and objects in a request line, a batch's own array
included. Every method's params fit in a few levels; deeper lines are refused before
anything else looks at them, so no value deep enough to exhaust a recursive encoder or
walker ever enters the daemon."""

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
    TOO_MANY_CLIENTS = -32002
    MESSAGE_TOO_DEEP = -32003
    BATCH_TOO_LARGE = -32004
    RESPONSE_TOO_LARGE = -32005
    IDLE_TIMEOUT = -32006

    NOT_FOUND = 1000
    ALREADY_EXISTS = 1001
    INVALID_TRANSITION = 1002
    NOT_LEADER = 1003
    NOT_INITIALISED = 1004
    INVALID_ARGUMENT = 1005
    CONFLICT = 1006
    UNSUPPORTED = 1007
    WRONG_MODE = 1008

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
    ErrorCode.TOO_MANY_CLIENTS: ErrorInfo("too_many_clients", "Too many clients"),
    ErrorCode.MESSAGE_TOO_DEEP: ErrorInfo("message_too_deep", "Message nested too deeply"),
    ErrorCode.BATCH_TOO_LARGE: ErrorInfo("batch_too_large", "Batch too large"),
    ErrorCode.RESPONSE_TOO_LARGE: ErrorInfo("response_too_large", "Response too large"),
    ErrorCode.IDLE_TIMEOUT: ErrorInfo("idle_timeout", "Connection closed after being idle"),
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
    ErrorCode.WRONG_MODE: ErrorInfo(
        "wrong_mode", "Not available in this mode (an ordinary karmad, or a keeper)"
    ),
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


# --------------------------------------------------------------------------- team values

CodeKind = Literal["member", "invite", "keeper", "serve"]
RoleName = Literal["leader", "member"]
PhaseName = Literal["joining", "member", "leaving", "removed", "dissolved", "gone"]
TeamStateName = Literal["active", "dissolved"]
MemberStateName = Literal["added", "active", "removed"]
ProjectStateName = Literal["shared", "unshared"]
SubscriptionStateName = Literal["offered", "accepted", "paused", "declined"]
DirectionName = Literal["send", "receive", "both"]
EventKindName = Literal[
    "team.created",
    "team.joined",
    "team.left",
    "team.dissolved",
    "team.cleaned_up",
    "member.added",
    "member.activated",
    "member.removed",
    "project.shared",
    "project.unshared",
    "subscription.changed",
    "offer.accepted",
    "offer.rejected",
    "offer.dismissed",
    "state.rejected",
    "folder.overridden",
    "session.packaged",
    "session.received",
    "session.rejected",
    "keeper.added",
    "keeper.removed",
]
SyncState = Literal["starting", "idle", "degraded", "waiting", "not-initialised", "error"]
"""The reconciler: `degraded` while some actions fail (retried with backoff), `waiting`
while Syncthing is unavailable."""

# --------------------------------------------------------------------------- identity, pairing


class InitParams(Params):
    user: str
    """User name: 2-32 of lowercase letters, digits, `_` and `-`."""
    machine: str | None = None
    """Machine tag; derived from the hostname when omitted, and stable once set."""


class IdentityInfo(Result):
    initialised: bool
    user_id: str | None = None
    machine_tag: str | None = None
    member_tag: str | None = None
    device_id: str | None = None
    """This machine's Syncthing device ID: the member's identity (null while unknown)."""


class PairCode(Result):
    code: str
    member_tag: str
    device_id: str
    addresses: list[str]


class DecodeParams(Params):
    code: str


class DecodedCode(Result):
    kind: CodeKind
    """`member` (a pairing code) or `invite`."""
    member_tag: str
    device_id: str
    addresses: list[str] = msgspec.field(default_factory=list)
    team_id: str | None = None
    team_name: str | None = None


# --------------------------------------------------------------------------- teams


class TeamRef(Params):
    team: str
    """Team id, a unique prefix of it, or the team's name."""


class CreateTeamParams(Params):
    name: str


class MemberInfo(Result):
    member_tag: str
    user_id: str
    device_id: str
    state: MemberStateName
    is_leader: bool = False
    is_me: bool = False
    connected: bool | None = None
    subscriptions: dict[str, str] = msgspec.field(default_factory=dict)
    """project key -> `state/direction` as that member published it."""


class ProjectInfo(Result):
    key: str
    identity: str
    label: str
    state: ProjectStateName
    include_todos: bool = False
    include_plans: bool = False
    subscription: SubscriptionStateName | None = None
    """This member's stance (none until the project is offered to it)."""
    direction: DirectionName | None = None
    local_paths: list[str] = msgspec.field(default_factory=list)
    """Checkouts of this project on this machine."""
    changed: bool = True
    """False when the request asked for what already was: nothing was done, and a repeat
    is not an error (set by the methods that change things)."""


class TeamInfo(Result):
    team_id: str
    name: str
    role: RoleName
    phase: PhaseName
    """This member's phase in the team (a team `gone` is not listed)."""
    state: TeamStateName | Literal["unknown"]
    """As the leader says (`unknown` until its roster arrived)."""
    leader_tag: str
    leader_device: str
    members: list[MemberInfo] = msgspec.field(default_factory=list)
    projects: list[ProjectInfo] = msgspec.field(default_factory=list)
    own_folder: str | None = None
    changed: bool = True
    """False when the request asked for what already was: nothing was done, and a repeat
    is not an error (set by the methods that change things)."""


class TeamList(Result):
    teams: list[TeamInfo]


class AddMemberParams(Params):
    team: str
    code: str
    """The new member's pairing code (`karmactl pair code` on their machine)."""


class AddedMember(Result):
    team: TeamInfo
    member: MemberInfo
    invite: str
    """Give this to the new member: `karmactl team join INVITE` is their consent."""
    changed: bool = True
    """False when the device was in the roster already (its invite is given again)."""


class JoinParams(Params):
    invite: str


class RemoveMemberParams(Params):
    team: str
    member: str
    """Member tag or device ID."""


class ActivityParams(Params):
    team: str | None = None
    limit: int = 50
    before: int | None = None


class SyncEventInfo(Result):
    id: int
    time: datetime
    kind: EventKindName
    team_id: str | None = None
    member_tag: str | None = None
    device_id: str | None = None
    project_key: str | None = None
    detail: dict[str, str] = msgspec.field(default_factory=dict)


class Activity(Result):
    events: list[SyncEventInfo]


# ---------------------------------------------------------------- projects, subscriptions


class ShareParams(Params):
    team: str
    project: str
    """A git remote in any form (ssh, scp-style, https), a local checkout path, or a short
    form (`owner/repo`) of exactly one project this machine knows; a folder without a git
    remote is refused."""
    todos: bool = False
    plans: bool = False


class UnshareParams(Params):
    team: str
    project: str
    """Project key, identity, remote, checkout path, or a short form naming exactly one of
    the team's projects (several: refused, with the candidates)."""


class ProjectListParams(Params):
    team: str | None = None


class ProjectList(Result):
    projects: list[ProjectInfo]
    team_ids: list[str] = msgspec.field(default_factory=list)
    """The team of each project, in the same order."""


class SubscriptionRef(Params):
    team: str
    project: str


class AcceptParams(Params):
    team: str
    project: str
    direction: DirectionName = "both"


class DeclineParams(Params):
    team: str
    project: str
    purge: bool = False
    """Also delete what was already received for this project."""


class SubscriptionInfo(Result):
    team_id: str
    team_name: str
    project_key: str
    project_identity: str
    state: SubscriptionStateName
    direction: DirectionName
    changed_at: datetime | None = None
    changed: bool = True
    """False when the request asked for what already was: nothing was done, and a repeat
    is not an error (set by the methods that change things)."""


class SubscriptionList(Result):
    subscriptions: list[SubscriptionInfo]


class SubscriptionListParams(Params):
    team: str | None = None


# --------------------------------------------------------------------------- pending offers


class PendingAcceptParams(Params):
    device: str | None = None
    """Accept a pending device as a team leader (consent to join what it offers)."""
    folder: str | None = None
    """Accept a pending folder offer that did not match the expected state."""


class PendingDismissParams(Params):
    device: str | None = None
    folder: str | None = None


# --------------------------------------------------------------------------- reconciler


class SyncFailure(Result):
    action: str
    target: str
    error: str
    attempts: int
    next_retry_s: float


class DeviceCompletion(Result):
    member: str
    device: str
    completion: float | None = None
    """Percent of our team folder that device has (all projects in it), as Syncthing says."""


class ReceivedFrom(Result):
    member: str
    sessions: int


class ProjectFlow(Result):
    """One shared project in one team, as far as sessions go."""

    team_id: str
    team_name: str
    key: str
    identity: str
    subscription: str = ""
    """This member's stance: `state/direction`."""
    sessions_local: int = 0
    sessions_packaged: int = 0
    sent: list[DeviceCompletion] = msgspec.field(default_factory=list)
    received: list[ReceivedFrom] = msgspec.field(default_factory=list)


class SyncStatus(Result):
    state: SyncState
    cycles: int
    last_cycle_at: datetime | None = None
    last_cycle_ms: float | None = None
    last_actions: int = 0
    failures: list[SyncFailure] = msgspec.field(default_factory=list)
    teams: int = 0
    folders: int = 0
    devices: int = 0
    projects: list[ProjectFlow] = msgspec.field(default_factory=list)


_method("identity.init", InitParams, IdentityInfo, "Sets this member's user name.", mutating=True)
_method("identity.get", NoParams, IdentityInfo, "Who this member is: user, machine, device ID.")
_method("pair.code", NoParams, PairCode, "This member's pairing code, for a team leader.")
_method("pair.decode", DecodeParams, DecodedCode, "Checks a pairing or invite code and shows it.")
_method(
    "team.create", CreateTeamParams, TeamInfo, "Creates a team led by this member.", mutating=True
)
_method("team.list", NoParams, TeamList, "The teams this member belongs to.")
_method("team.get", TeamRef, TeamInfo, "One team: roster, projects, subscriptions.")
_method(
    "team.addMember",
    AddMemberParams,
    AddedMember,
    "Leader: adds a member by pairing code; returns the invite code.",
    mutating=True,
)
_method("team.join", JoinParams, TeamInfo, "Joins a team with an invite code.", mutating=True)
_method(
    "team.removeMember", RemoveMemberParams, TeamInfo, "Leader: removes a member.", mutating=True
)
_method("team.leave", TeamRef, TeamInfo, "Leaves a team.", mutating=True)
_method("team.dissolve", TeamRef, TeamInfo, "Leader: dissolves the team.", mutating=True)
_method("team.activity", ActivityParams, Activity, "The team's audit trail, newest first.")
_method("project.share", ShareParams, ProjectInfo, "Leader: shares a project.", mutating=True)
_method("project.unshare", UnshareParams, ProjectInfo, "Leader: stops sharing.", mutating=True)
_method("project.list", ProjectListParams, ProjectList, "Projects shared with the teams.")
_method("project.get", UnshareParams, ProjectInfo, "One of a team's projects, named as anywhere.")
_method("subscription.list", SubscriptionListParams, SubscriptionList, "This member's stances.")
_method(
    "subscription.accept",
    AcceptParams,
    SubscriptionInfo,
    "Accepts a shared project, sending, receiving or both.",
    mutating=True,
)
_method("subscription.pause", SubscriptionRef, SubscriptionInfo, "Pauses.", mutating=True)
_method("subscription.resume", SubscriptionRef, SubscriptionInfo, "Resumes.", mutating=True)
_method("subscription.decline", DeclineParams, SubscriptionInfo, "Declines.", mutating=True)
_method("subscription.reopen", SubscriptionRef, SubscriptionInfo, "Offers again.", mutating=True)
_method(
    "subscription.setDirection",
    AcceptParams,
    SubscriptionInfo,
    "Changes send/receive/both while accepted.",
    mutating=True,
)
_method(
    "pending.accept",
    PendingAcceptParams,
    Ok,
    "Accepts an offer that did not match the expected state.",
    mutating=True,
)
_method("pending.dismiss", PendingDismissParams, Ok, "Dismisses an offer.", mutating=True)
_method("sync.status", NoParams, SyncStatus, "The reconciler: last cycle, failures.")


# --------------------------------------------------------------------------- daemon.overview


class OverviewTeam(Result):
    team_id: str
    name: str
    role: str
    """`leader` or `member`."""
    state: str
    """This member's standing: `active`, `joining`, `leaving`, `removed` or `dissolved`."""
    members: int = 0
    """Active members, this one included."""
    projects: int = 0
    """Projects shared with the team now."""


class OverviewPeer(Result):
    """A teammate's device, once however many teams it shares with this one."""

    member_tag: str
    device_id: str
    teams: list[str] = msgspec.field(default_factory=list)
    """Names of the teams shared with it."""
    connected: bool | None = None
    """Null while Syncthing's view is not known."""
    last_seen: datetime | None = None


class OverviewReceived(Result):
    """The received session with the latest activity."""

    session: str
    member: str = ""
    title: str = ""
    active_at: datetime | None = None


class OverviewIndex(Result):
    state: str
    """As `index.status`: `starting`, `scanning`, `indexing text`, `idle`, `disabled`, `error`."""
    sessions: int = 0
    lag_s: float = 0.0
    detail: str = ""


class Attention(Result):
    """Something that waits for this member, said in words, with what to run."""

    kind: str
    """Stable, for scripts: `not_initialised`, `offer` (a shared project not yet accepted
    or declined), `sharer_not_accepted`, `joining`, `pending` (Syncthing offers no team
    explains), `subsystem` (a part of the daemon failing)."""
    message: str
    fix: str = ""
    team: str = ""
    project: str = ""


class Overview(DaemonStatus):
    """`daemon.status` and, at a glance, who this member is, with whom it shares, what
    arrived last, and what waits for it."""

    identity: IdentityInfo = msgspec.field(default_factory=lambda: IdentityInfo(initialised=False))
    teams: list[OverviewTeam] = msgspec.field(default_factory=list)
    peers: list[OverviewPeer] = msgspec.field(default_factory=list)
    last_received: OverviewReceived | None = None
    index: OverviewIndex | None = None
    attention: list[Attention] = msgspec.field(default_factory=list)


_method(
    "daemon.overview",
    NoParams,
    Overview,
    "Everything of `daemon.status`, plus identity, teams, peers online and last seen, the "
    "last session received, the index's state and what waits for this member.",
)


# --------------------------------------------------------------------------- syncthing.*


class SyncthingListener(Result):
    """One sync listener as Syncthing reports it (an error means peers cannot connect)."""

    address: str
    error: str = ""
    lan_addresses: list[str] = msgspec.field(default_factory=list)


class SyncthingStream(Result):
    """The event stream that keeps karmad's view of Syncthing current."""

    live: bool
    resyncs: int = 0
    """Full snapshots taken: one per connection, plus one per gap or restart detected."""
    last_resync_reason: str = ""
    """`connected`, `reconnected`, `restarted` (event ids started again) or `gap`."""
    last_resync_at: datetime | None = None
    last_event_id: int = 0
    down_reason: str = ""


class SyncthingStatus(Result):
    mode: str
    """`managed`, `external` or `off`."""
    state: str
    """managed: starting, running, restarting, failed, not-installed; external: connecting,
    running, unreachable; off."""
    stream: SyncthingStream
    detail: str = ""
    since: datetime | None = None
    version: str = ""
    long_version: str = ""
    binary: str = ""
    device_id: str = ""
    profile: str = ""
    """managed: the network profile (internet, lan-only, loopback)."""
    api_address: str = ""
    """Where karmad reaches the REST API (a socket path or a URL)."""
    home: str = ""
    listen_addresses: list[str] = msgspec.field(default_factory=list)
    listeners: list[SyncthingListener] = msgspec.field(default_factory=list)
    pid: int | None = None
    """managed: the process karmad started (its process group holds Syncthing)."""
    started_at: datetime | None = None
    restarts: int = 0


class DeviceInfo(Result):
    device_id: str
    name: str = ""
    addresses: list[str] = msgspec.field(default_factory=list)
    paused: bool = False
    connected: bool = False
    address: str = ""
    """The remote address of the current connection."""
    connection_type: str = ""
    client_version: str = ""
    connected_since: datetime | None = None
    last_seen: datetime | None = None
    in_bytes: int = 0
    out_bytes: int = 0
    folders: list[str] = msgspec.field(default_factory=list)
    """karmad-managed folders shared with this device."""


class DeviceList(Result):
    devices: list[DeviceInfo]


class FolderCompletionInfo(Result):
    device_id: str
    completion: float
    need_bytes: int = 0
    need_items: int = 0
    remote_state: str = ""


class FolderErrorInfo(Result):
    path: str
    error: str


class FolderInfo(Result):
    folder_id: str
    path: str
    type: str
    label: str = ""
    paused: bool = False
    devices: list[str] = msgspec.field(default_factory=list)
    state: str = ""
    """idle, scanning, scan-waiting, syncing, sync-preparing, error, ..."""
    state_since: datetime | None = None
    error: str = ""
    pull_errors: int = 0
    error_items: list[FolderErrorInfo] = msgspec.field(default_factory=list)
    global_bytes: int = 0
    global_files: int = 0
    local_bytes: int = 0
    local_files: int = 0
    need_bytes: int = 0
    need_files: int = 0
    in_sync_bytes: int = 0
    receive_only_changed_files: int = 0
    completion: list[FolderCompletionInfo] = msgspec.field(default_factory=list)
    """Per device sharing the folder, this one included."""


class FolderList(Result):
    folders: list[FolderInfo]


class PendingDeviceInfo(Result):
    device_id: str
    name: str = ""
    """What the device calls itself: its owner's choice, not verified and never adopted."""
    address: str = ""
    time: datetime | None = None
    known_as: str = ""
    """The member tag our own records give this device (an invite entered here, a team
    roster, a leader accepted before); empty when none does."""
    known_from: str = ""
    """Which record says so, e.g. `leader of core`."""


class PendingFolderOfferInfo(Result):
    device_id: str
    known_as: str = ""
    """As in `PendingDeviceInfo`: what our own records call the offering device."""
    label: str = ""
    """The offering device's text for the folder: not verified."""
    time: datetime | None = None
    receive_encrypted: bool = False
    remote_encrypted: bool = False


class PendingFolderInfo(Result):
    folder_id: str
    managed: bool
    """The ID has karmad's prefix (it may be a team folder)."""
    offered_by: list[PendingFolderOfferInfo]


class PendingList(Result):
    devices: list[PendingDeviceInfo]
    folders: list[PendingFolderInfo]


class RescanParams(Params):
    folder: str | None = None
    """A karmad-managed folder ID; omitted: every managed folder."""
    paths: list[str] = msgspec.field(default_factory=list)
    """Paths inside the folder to scan; empty: the whole folder."""


class RescanQueued(Result):
    folders: list[str]
    paths: list[str]


_method(
    "syncthing.status",
    NoParams,
    SyncthingStatus,
    "Mode, state, version, device ID, addresses and event-stream health of Syncthing.",
)
_method(
    "device.list",
    NoParams,
    DeviceList,
    "Configured devices with connection state, last seen and bytes in/out.",
)
_method(
    "folder.list",
    NoParams,
    FolderList,
    "karmad-managed folders with type, state, completion, errors and sizes.",
)
_method("pending.list", NoParams, PendingList, "Devices and folders offered and not accepted.")
_method(
    "syncthing.rescan",
    RescanParams,
    RescanQueued,
    "Queues a scan of one managed folder (or paths in it) or of all; returns at once.",
    mutating=True,
)


# ------------------------------------------------------------------------ session.* usage.* index.*

Origin = Literal["local", "remote", "all"]
SessionSort = Literal["last", "first", "cost", "tokens", "duration", "prompts"]
UsageGroup = Literal[
    "day", "week", "month", "project", "model", "session", "member", "user", "device"
]


class TokenCounts(Result):
    """De-duplicated usage: each API request counted once (see docs/index.md)."""

    requests: int = 0
    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    total: int = 0
    """input + output + both cache writes + cache reads."""
    cost: float = 0.0
    """US dollars, from the price table version given beside it."""
    unpriced_requests: int = 0
    """Requests of models the price table does not know; their cost is missing from
    `cost`, never guessed."""


class SessionListParams(Params):
    project: str | None = None
    """Identity (`host/owner/repo`), remote, checkout path, key, or a short form naming
    exactly one known project (several: refused with the candidates, `conflict`)."""
    since: datetime | None = None
    """Sessions active at or after this moment."""
    until: datetime | None = None
    """Sessions that started before this moment."""
    model: str | None = None
    """Sessions that used a model whose name contains this."""
    origin: Origin = "all"
    member: str | None = None
    """Only sessions of this member tag (`user.machine`)."""
    user: str | None = None
    """Only sessions of this user name, on any of their machines."""
    sort: SessionSort = "last"
    ascending: bool = False
    limit: int = 50
    cursor: str | None = None
    """`next_cursor` of the previous page."""
    distinct: bool = True
    """One row per session id, preferring the local copy over copies received from peers."""


class SessionSummary(Result):
    id: str
    origin: str
    """`local`, or `remote:<device>` for a session received from a peer."""
    member: str = ""
    """Whose session: a member tag (`user.machine`); this member's own for local sessions
    (empty before `identity.init`)."""
    user: str = ""
    project: str = ""
    """Normalised git remote of the checkout the session ran in, else its path."""
    project_path: str = ""
    title: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float = 0.0
    user_prompts: int = 0
    models: list[str] = msgspec.field(default_factory=list)
    tokens: TokenCounts = msgspec.field(default_factory=TokenCounts)
    price_version: str = ""
    subagents: int = 0
    bytes: int = 0
    missing: bool = False
    """Every transcript file of the session is gone from disk (kept in the index)."""


class SessionList(Result):
    sessions: list[SessionSummary]
    total: int
    next_cursor: str | None = None


class SessionGetParams(Params):
    id: str
    """A session id or an unambiguous prefix of one."""
    origin: str | None = None
    """Which copy (`local`, `remote:<device>`); default: the local one if any."""


class ModelUsage(Result):
    model: str
    tokens: TokenCounts
    priced: bool
    """The price table knows this model (`<synthetic>` costs nothing and counts as priced)."""


class SessionFile(Result):
    path: str
    kind: str
    """`main`, `subagent` or `agent` (an older subagent file beside the sessions)."""
    agent_id: str = ""
    size: int = 0
    indexed_bytes: int = 0
    text_indexed_bytes: int = 0
    lines: int = 0
    pending_bytes: int = 0
    """Bytes after the last complete line (still being written)."""
    bad_lines: int = 0
    missing: bool = False


class LineProblem(Result):
    path: str
    line: int
    offset: int
    reason: str
    sample: str = ""
    repaired: bool = False
    """The line was used after a repair; otherwise it was skipped."""


class SessionDetail(SessionSummary):
    cwd: str = ""
    cwds: list[str] = msgspec.field(default_factory=list)
    project_source: str = ""
    """`git` (identity is a remote), `path`, or `team` (given by the sender)."""
    git_remote: str = ""
    branches: list[str] = msgspec.field(default_factory=list)
    versions: list[str] = msgspec.field(default_factory=list)
    """Claude Code versions that wrote the transcript."""
    entrypoints: list[str] = msgspec.field(default_factory=list)
    summary: str = ""
    custom_title: str = ""
    first_prompt: str = ""
    record_types: dict[str, int] = msgspec.field(default_factory=dict)
    """Lines per record type (user, assistant, system, summary, progress...)."""
    system_subtypes: dict[str, int] = msgspec.field(default_factory=dict)
    tool_uses: dict[str, int] = msgspec.field(default_factory=dict)
    """Per tool name, MCP tools (`mcp__server__tool`) included."""
    mcp_servers: dict[str, int] = msgspec.field(default_factory=dict)
    tool_errors: int = 0
    subagent_types: dict[str, int] = msgspec.field(default_factory=dict)
    agents: list[str] = msgspec.field(default_factory=list)
    inline_subagents: int = 0
    sidechain_lines: int = 0
    compactions: int = 0
    api_errors: int = 0
    active_s: float = 0.0
    """Sum of the turn durations Claude Code recorded."""
    web_search_requests: int = 0
    web_fetch_requests: int = 0
    shared_requests: int = 0
    """Requests also present in another session (it was resumed or forked from one, or
    received twice); usage summaries count them once, in the earliest."""
    synthetic_requests: int = 0
    """Placeholder answers Claude Code wrote itself (model `<synthetic>`): not requests,
    so left out of `tokens` and `by_model`, and counted here."""
    by_model: list[ModelUsage] = msgspec.field(default_factory=list)
    files: list[SessionFile] = msgspec.field(default_factory=list)
    tool_result_files: int = 0
    tool_result_bytes: int = 0
    bad_lines: int = 0
    errors: list[LineProblem] = msgspec.field(default_factory=list)
    unknown_types: dict[str, int] = msgspec.field(default_factory=dict)
    unknown_fields: dict[str, int] = msgspec.field(default_factory=dict)
    redactions: dict[str, int] = msgspec.field(default_factory=dict)
    """What redaction replaced when this session was shared, per kind (never the secret):
    for a local session, in the outbox; for a received one, as its sender's manifest says."""
    packaged_to: list[str] = msgspec.field(default_factory=list)
    """Team folders this local session is packaged into."""
    file_problems: list[IndexFileProblem] = msgspec.field(default_factory=list)
    """Files of this session that could not be read or parsed: its figures leave them
    out until they are."""


class SessionMessagesParams(Params):
    id: str
    origin: str | None = None
    cursor: str | None = None
    limit: int = 100
    sidechains: bool = True
    """Include subagent turns (marked `sidechain`)."""
    max_text: int = 20_000
    """Characters kept per text block; longer ones are cut and marked `truncated`."""


class ContentBlock(Result):
    type: str
    """`text`, `thinking`, `tool_use`, `tool_result`, `image` or `other`."""
    text: str = ""
    name: str = ""
    """Tool name (tool_use)."""
    id: str = ""
    """Tool use id (tool_use, tool_result)."""
    input: Any = None
    """Tool input (tool_use), when small enough; else `text` holds its JSON, cut."""
    is_error: bool = False
    truncated: bool = False


class TranscriptEntry(Result):
    kind: str
    """`user`, `assistant` or `system`."""
    uuid: str = ""
    time: datetime | None = None
    sidechain: bool = False
    agent_id: str = ""
    model: str = ""
    message_id: str = ""
    subtype: str = ""
    meta: bool = False
    """Written by Claude Code rather than typed or answered (meta, compact summaries)."""
    blocks: list[ContentBlock] = msgspec.field(default_factory=list)
    file: str = ""
    line: int = 0


class SessionMessages(Result):
    id: str
    items: list[TranscriptEntry]
    total: int
    next_cursor: str | None = None


class SessionSearchParams(Params):
    text: str
    """Words to find (all of them); `"a phrase"` in quotes matches it exactly."""
    limit: int = 20
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    origin: Origin = "all"
    member: str | None = None
    """Only sessions of this member tag (`user.machine`)."""
    user: str | None = None
    """Only sessions of this user name, on any of their machines."""
    session: str | None = None
    """Only within this session (id or prefix)."""


class SearchHit(Result):
    session: str
    origin: str
    member: str = ""
    """Whose session, as in `SessionSummary.member`."""
    user: str = ""
    project: str = ""
    title: str = ""
    time: datetime | None = None
    kind: str = ""
    uuid: str = ""
    snippet: str = ""
    """Matched words are wrapped in « and »."""
    rank: float = 0.0


class SearchResults(Result):
    hits: list[SearchHit]
    available: bool = True
    """False when this SQLite has no full-text search (FTS5) or it is turned off."""
    complete: bool = True
    """False while the full-text index is still being built."""


class UsageSummaryParams(Params):
    group_by: UsageGroup = "day"
    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    model: str | None = None
    origin: Origin = "all"
    member: str | None = None
    user: str | None = None
    tz: str | None = None
    """IANA time zone for day, week and month boundaries; default: the daemon's local time."""
    breakdown: bool = False
    """Also split each row by model."""


class UsageRow(Result):
    key: str
    """The day (`2026-01-31`), week (its Monday), month (`2026-01`), project, model,
    session id, member tag, user or device (a Syncthing device ID; `local` for this
    machine before Syncthing has one)."""
    tokens: TokenCounts
    models: dict[str, TokenCounts] = msgspec.field(default_factory=dict)
    label: str = ""
    """By session: the session's title."""


class UsageSummary(Result):
    group_by: str
    tz: str
    rows: list[UsageRow]
    totals: TokenCounts
    price_version: str
    currency: str = "USD"
    unpriced_models: list[str] = msgspec.field(default_factory=list)
    synthetic_requests: int = 0
    """Placeholder answers Claude Code wrote itself (model `<synthetic>`) in the same
    range: never a model or a request of `rows` and `totals`, counted here."""


class IndexRoot(Result):
    path: str
    origin: str
    member: str = ""
    user: str = ""
    sessions: int = 0
    files: int = 0
    exists: bool = True


class IndexProgress(Result):
    phase: str
    """`scan` (sessions and usage) or `text` (full-text index)."""
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    percent: float
    elapsed_s: float
    eta_s: float | None = None


class IndexScan(Result):
    started_at: datetime
    seconds: float
    files: int
    bytes: int


class IndexRejected(Result):
    """A file received from a teammate that failed validation and is not indexed."""

    path: str
    reason: str
    member: str = ""
    at: datetime | None = None


class IndexFileProblem(Result):
    """A transcript the index could not read or parse; everything else is indexed."""

    path: str
    reason: str
    session: str = ""
    """The session its name says (empty for an `agent-*.jsonl` beside the sessions)."""
    transient: bool = False
    """It may go away by itself (permissions, I/O errors): tried again at `retry_at`,
    with a growing delay; otherwise tried again when the file changes."""
    attempts: int = 1
    since: datetime | None = None
    retry_at: datetime | None = None


class IndexStatus(Result):
    state: str
    """`starting`, `scanning`, `indexing text`, `idle`, `disabled` or `error` (work
    failed: `error` says why, `detail` when it is tried again; it stays `error` until
    that work is done)."""
    detail: str = ""
    enabled: bool = True
    watching: bool = False
    full_text: bool = True
    sessions: int = 0
    files: int = 0
    bytes: int = 0
    indexed_bytes: int = 0
    text_indexed_bytes: int = 0
    pending_bytes: int = 0
    missing_files: int = 0
    bad_lines: int = 0
    lag_s: float = 0.0
    """How long the oldest change not yet indexed has been waiting."""
    progress: IndexProgress | None = None
    last_scan: IndexScan | None = None
    price_version: str = ""
    roots: list[IndexRoot] = msgspec.field(default_factory=list)
    error: str = ""
    rejected: list[IndexRejected] = msgspec.field(default_factory=list)
    """Received files refused (at most 100, newest first); each is skipped until it changes."""
    problem_files: int = 0
    """Transcripts that could not be read or parsed (the rest is indexed)."""
    problems: list[IndexFileProblem] = msgspec.field(default_factory=list)
    """The first 100 of them, by path."""


class IndexRebuildParams(Params):
    text_only: bool = False
    """Rebuild only the full-text index."""


class IndexRebuild(Result):
    job: int
    """Progress arrives as `index.progress` events; `index.done` carries this job."""


_method(
    "session.list",
    SessionListParams,
    SessionList,
    "Sessions with their aggregates; filter, sort and page with a cursor.",
)
_method(
    "session.get",
    SessionGetParams,
    SessionDetail,
    "Everything known about one session: usage per model, tools, files, errors found.",
)
_method(
    "session.messages",
    SessionMessagesParams,
    SessionMessages,
    "The conversation in order, tool calls and results included, one page at a time.",
)
_method(
    "session.search", SessionSearchParams, SearchResults, "Full-text search of prompts and answers."
)
_method(
    "usage.summary",
    UsageSummaryParams,
    UsageSummary,
    "Tokens and cost grouped by day, week, month, project, model, session or member.",
)
_method(
    "index.status",
    NoParams,
    IndexStatus,
    "What the session index holds and is doing: files, bytes, lag, errors, progress.",
)
_method(
    "index.rebuild",
    IndexRebuildParams,
    IndexRebuild,
    "Drops the index (or its full-text part) and reads every transcript again.",
    mutating=True,
)
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


# ---------------------------------------------------------------- share.preview, sync.projects


class SharePreviewParams(Params):
    session: str | None = None
    """A local session id (or unambiguous prefix)."""
    project: str | None = None
    """A project: remote, checkout path, identity or key (every local session of it)."""
    max_lines: int = 200
    """Redacted lines reported in detail per file (the counts are always complete)."""


class PreviewStarted(Result):
    job: int
    """The result comes from `share.previewResult`; `share.preview.done` announces it."""


class PreviewResultParams(Params):
    job: int


class PreviewLine(Result):
    line: int
    """1-based line number in the source file."""
    kinds: dict[str, int]
    paths: list[str] = msgspec.field(default_factory=list)
    """JSON paths of the strings that change (`$` for a line redacted as text)."""


class PreviewFile(Result):
    path: str
    bytes: int
    lines: int
    dropped_lines: int = 0
    """Lines that are not JSON objects and would not be sent."""
    redactions: dict[str, int] = msgspec.field(default_factory=dict)
    redacted_lines: list[PreviewLine] = msgspec.field(default_factory=list)


class PreviewSession(Result):
    session_id: str
    project: str
    destinations: list[str]
    """Teams this session would be sent to now; empty when none (see `reason`)."""
    reason: str = ""
    files: list[PreviewFile] = msgspec.field(default_factory=list)
    redactions: dict[str, int] = msgspec.field(default_factory=dict)


class SharePreview(Result):
    state: str
    """`running`, `done` or `error`."""
    error: str = ""
    rules_version: int | str = 0
    sessions: list[PreviewSession] = msgspec.field(default_factory=list)


_method(
    "share.preview",
    SharePreviewParams,
    PreviewStarted,
    "What would be sent of a session or project, and what redaction would replace.",
)
_method("share.previewResult", PreviewResultParams, SharePreview, "The result of a preview.")


# ------------------------------------------------------------------ archive.*, session.resume


class ArchivedSession(Result):
    id: str
    project_dir: str
    """Claude Code's directory name for where the session started."""
    path: str
    """The archived main transcript."""
    bytes: int
    """All its archived files."""
    last_active: datetime | None = None


class ArchiveStatus(Result):
    enabled: bool
    state: str
    """`starting`, `sweeping`, `idle`, `disabled` or `error`."""
    path: str = ""
    """The archive directory."""
    job: int = 0
    """The last finished sweep (`archive.sweep`); 0 before the first."""
    as_of: datetime | None = None
    sessions: int = 0
    files: int = 0
    bytes: int = 0
    """Size of everything archived."""
    archive_only_bytes: int = 0
    """Disk space only the archive uses: copies (another filesystem), files gone from
    Claude Code's folder, earlier generations. Hard links to live files cost nothing."""
    linked_files: int = 0
    copied_files: int = 0
    replaced_files: int = 0
    """Earlier generations kept because their source was replaced by another file."""
    oldest_session: str = ""
    oldest_at: datetime | None = None
    """Last activity of the least recently active archived session."""
    gone: list[ArchivedSession] = msgspec.field(default_factory=list)
    """Sessions whose transcript is gone from Claude Code's folder (at most 200 listed)."""
    gone_total: int = 0
    uncovered: list[str] = msgspec.field(default_factory=list)
    """Own transcripts (relative to Claude Code's projects folder) that should be
    archived and are not (at most 200 listed)."""
    uncovered_total: int = 0
    pending: int = 0
    """Files written in the last minute and not archived yet (normal)."""
    excluded: list[str] = msgspec.field(default_factory=list)
    """Projects left out by `archive.exclude_projects`."""
    excluded_files: int = 0
    error: str = ""


class ArchiveSweep(Result):
    job: int
    """`archive.status` reports `job` >= this once the sweep is done."""


ResumeState = Literal["running", "done", "failed"]
ResumeOutcome = Literal["", "materialised", "restored", "already", "present"]


class SessionResumeParams(Params):
    id: str
    """A session id or unambiguous prefix."""
    origin: str | None = None
    """Which copy (`local`, `remote:<device>`); default: the local one, else the most
    complete received one."""
    checkout: str | None = None
    """A local checkout of the session's project; default: the checkout of that project
    this machine's own sessions ran in most recently."""


class SessionResume(Result):
    job: int
    state: ResumeState
    session_id: str
    """The id to give `claude --resume` here."""
    path: str
    """The transcript Claude Code will read."""
    checkout: str
    directory: str
    """Where to start Claude Code: the checkout, or the subdirectory the session ran in."""
    command: str
    """`cd <directory> && claude --resume <session_id>`."""
    origin_session: str
    origin: str
    member: str
    """Whose session it was (`<user>.<machine>`; empty for this member's own)."""
    outcome: ResumeOutcome = ""
    """`materialised` (written now), `restored` (an own session put back as it was),
    `already` (an earlier resume wrote it), `present` (nothing to do)."""
    bytes: int = 0
    """Bytes written (0 when nothing had to be written)."""
    files: int = 0
    message: str = ""
    error: str = ""
    reason: str = ""
    """For `failed`: the stable reason, as in error data (`already_exists`...)."""


class SessionResumeResultParams(Params):
    job: int


_method(
    "archive.status",
    NoParams,
    ArchiveStatus,
    "What the archive of own sessions holds: sessions, bytes, which are gone from Claude "
    "Code's folder, what is not covered (as of the last sweep).",
)
_method(
    "archive.sweep",
    NoParams,
    ArchiveSweep,
    "Archives whatever is not archived yet and counts again; `archive.status` shows the "
    "result once its `job` reaches the one returned.",
    mutating=True,
)
_method(
    "session.resume",
    SessionResumeParams,
    SessionResume,
    "Materialises an indexed session (own, archived, another machine's, a teammate's) as a "
    "Claude Code transcript for a local checkout; the work continues in the background "
    "(`session.resumeResult`).",
    mutating=True,
)
_method(
    "session.resumeResult",
    SessionResumeResultParams,
    SessionResume,
    "The state of a `session.resume` job.",
)


# --------------------------------------------------------------------------- keeper.*

KeeperMode = Literal["member", "keeper"]
"""`keeper`: karmad runs in keeper mode (`[keeper] enabled`) and holds teams' folders as
ciphertext for members; `member`: an ordinary karmad."""
HeldKindName = Literal["content", "control", "report"]


class KeeperCode(Result):
    """What a keeper's operator gives a team leader: `karmactl keeper add TEAM CODE`."""

    code: str
    device_id: str
    addresses: list[str]


class KeeperAddParams(Params):
    team: str
    """Team id, a unique prefix of it, or the team's name."""
    code: str
    """The keeper's code (`karmactl keeper code` on the keeper)."""


class KeeperAdded(Result):
    team_id: str
    team_name: str
    keeper_device: str
    serve_code: str
    """Give this to the keeper's operator: `karmactl keeper serve CODE` is their consent."""
    changed: bool = True
    """False when this keeper already served the team (its code is given again)."""


class KeeperRemoved(Result):
    team_id: str
    keeper_device: str
    changed: bool = True


class KeeperServeParams(Params):
    code: str
    """The code `karmactl keeper add` printed on the team leader's machine."""


class KeeperServing(Result):
    leader_device: str
    folder_id: str
    """The team's keeper folder: the only thing the keeper knows the team by."""
    changed: bool = True


class KeeperLeaveParams(Params):
    folder_id: str
    """The team's keeper folder, as `karmactl keeper status` lists it."""


class KeeperFolderView(Result):
    """One folder the keeper holds, as this machine sees it."""

    folder_id: str
    kind: HeldKindName
    owner: str | None = None
    """A member's view: whose team folder it is (member tag), for content folders."""
    devices: int = 0
    """How many member devices the keeper shares it with."""
    generation: int = 0
    """The password epoch its ciphertext is under (content folders)."""
    local_files: int | None = None
    local_bytes: int | None = None
    """On the keeper: what it holds on disk (ciphertext, so a little more than the data)."""
    completion: float | None = None
    """On a member: the keeper's completion of this folder as Syncthing reports it. It
    stays at 100 % whatever the keeper lost, so it says the keeper *claims* to hold it."""
    need_bytes: int | None = None
    state: str = ""
    error: str | None = None


class KeeperTeamView(Result):
    """A member's view of its team's keeper."""

    team_id: str
    team_name: str
    keeper_device: str
    role: RoleName
    epoch: int | None = None
    """The password epoch this member holds (None: none yet, it cannot use the keeper)."""
    current_epoch: int | None = None
    """The newest epoch the leader's key file announces."""
    listed: bool = False
    """Whether this member lists the keeper on its team folders now (False while it does
    not hold the current epoch, or while the keeper dropped its connection)."""
    connected: bool | None = None
    last_seen: datetime | None = None
    folders: list[KeeperFolderView] = msgspec.field(default_factory=list)
    problem: str | None = None


class KeeperServedView(Result):
    """On a keeper: one team it serves, known only by its leader's device and folder."""

    leader_device: str
    folder_id: str
    accepted_at: datetime
    control_seq: int | None = None
    """The sequence number of the control file applied (None: none received yet)."""
    epoch: int | None = None
    dissolved: bool = False
    devices: list[str] = msgspec.field(default_factory=list)
    folders: list[KeeperFolderView] = msgspec.field(default_factory=list)
    problem: str | None = None
    """Why the last control file was not applied (bad signature, stale, malformed)."""


class KeeperStatus(Result):
    mode: KeeperMode
    device_id: str | None = None
    teams: list[KeeperTeamView] = msgspec.field(default_factory=list)
    """Member mode: each team that has a keeper."""
    served: list[KeeperServedView] = msgspec.field(default_factory=list)
    """Keeper mode: each team this keeper serves."""


_method(
    "keeper.code",
    NoParams,
    KeeperCode,
    "Keeper mode: this keeper's code, for a team leader's `keeper.add`.",
)
_method(
    "keeper.serve",
    KeeperServeParams,
    KeeperServing,
    "Keeper mode: consent to serve the team whose leader printed this code.",
    mutating=True,
)
_method(
    "keeper.leave",
    KeeperLeaveParams,
    KeeperServing,
    "Keeper mode: stop serving a team; the keeper drops its folders (and their ciphertext) "
    "and the devices no other team it serves needs.",
    mutating=True,
)
_method(
    "keeper.add",
    KeeperAddParams,
    KeeperAdded,
    "Leader: names the team's keeper; returns the code its operator confirms with.",
    mutating=True,
)
_method(
    "keeper.remove",
    TeamRef,
    KeeperRemoved,
    "Leader: the keeper stops holding the team's folders; members drop it.",
    mutating=True,
)
_method(
    "keeper.status",
    NoParams,
    KeeperStatus,
    "Member: each team's keeper as seen from here. Keeper: the teams it serves, what it "
    "holds of each.",
)
