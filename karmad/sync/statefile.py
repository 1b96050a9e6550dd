"""The replicated `state` file: one per (team, member), written only by its owner.

Written atomically (a temp name the folder's ignore patterns keep out of Syncthing, then
a rename) and read defensively: a size cap, a schema check, every id re-validated, and the
file accepted only if it is consistent with the folder it arrived in — so a peer can
never speak for another member, and a member can never speak for the leader.

The owner signs it with its Syncthing device key when it has one (`karmad.trust.signed`:
the JSON payload line, then a signature line). Anyone who can reach a relay in a reader's
device list (a team's keeper) can write into the folder, so a signed file is believed
only if the folder's owner signed exactly it, for this folder; and in a team that
requires signatures (docs/keeper.md 2.3) an unsigned one is not believed at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec

from karmad import atomic_file, codec, deviceid
from karmad.domain import (
    Direction,
    DomainError,
    MemberState,
    ProjectState,
    Subscription,
    SubscriptionState,
    Team,
    TeamState,
    folder_id,
    is_project_key,
    is_team_id,
    project_key,
    split_member_tag,
    validate_team_name,
)
from karmad.trust import signed
from karmad.trust.keys import BadSignature, DeviceKey

FORMAT = 1
STATE_NAME = "state"
TEMP_PREFIX = ".karma-tmp-"
SIGNED_KIND = "state"
MAX_PAYLOAD_BYTES = 1 << 20
MAX_STATE_BYTES = MAX_PAYLOAD_BYTES + signed.MAX_SIGNATURE_LINE + 2
"""The payload, its newline, and a signature line with its own (the certificate and
signature in base64 take 1-2 KB)."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Times in a state file lie between these: reconciliation adds grace periods to them
and compares them with the clock, which a time without a zone or near the end of the
calendar would make fail."""
MAX_SEQ = (1 << 63) - 1
"""The largest sequence number the store can hold (SQLite integers are 64-bit)."""

Time = Annotated[datetime, msgspec.Meta(tz=True)]
"""A time with its zone: a peer's naive time cannot be compared with ours."""


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Unknown fields are tolerated: a newer karmad may add some."""


class WireMember(_Wire):
    member_tag: str
    device_id: str
    state: MemberState
    added_at: Time
    changed_at: Time
    addresses: list[str] = msgspec.field(default_factory=list)
    ack_seen: bool = False
    """The leader has seen this member acknowledge its removal or the dissolution."""


class WireProject(_Wire):
    key: str
    identity: str
    label: str
    state: ProjectState
    shared_at: Time
    include_todos: bool = False
    include_plans: bool = False


class WireTeam(_Wire):
    team_id: str
    name: str
    leader_tag: str
    leader_device: str
    state: TeamState
    created_at: Time
    dissolved_at: Time | None = None
    members: list[WireMember] = msgspec.field(default_factory=list)
    projects: list[WireProject] = msgspec.field(default_factory=list)


class WireSubscription(_Wire):
    project_key: str
    state: SubscriptionState
    direction: Direction
    changed_at: Time | None = None


class WireKeeper(_Wire):
    """The team's keeper, in the leader's file: members add it as a device and keep the
    team's keeper folder (docs/keeper.md). Its device ID is no secret."""

    device_id: str
    addresses: list[str] = msgspec.field(default_factory=list)


class StateFile(_Wire, kw_only=True):
    format: int = FORMAT
    team_id: str
    owner_tag: str
    owner_device: str
    seq: int
    """Grows with every write by the owner; lets readers ignore a stale copy."""
    written_at: Time
    addresses: list[str] = msgspec.field(default_factory=list)
    subscriptions: list[WireSubscription] = msgspec.field(default_factory=list)
    left: bool = False
    """The owner asked to leave the team."""
    ack_removed: bool = False
    ack_dissolved: bool = False
    team: WireTeam | None = None
    """Only in the leader's file: the authoritative team record."""
    keeper: WireKeeper | None = None
    """Only in the leader's file: the team's keeper, if it has one."""
    sealing_key: str | None = None
    """The owner's X25519 public key (base64): the leader seals the team's keeper secret
    to it (`karmad.trust.wrap`)."""


class InvalidState(ValueError):
    """A state file that must not be acted on; the message says why (for the audit log)."""


# --------------------------------------------------------------------------- conversion


def team_to_wire(team: Team, acked: frozenset[str] = frozenset()) -> WireTeam:
    """The record as the leader publishes it; `acked`: members whose acknowledgement of
    their removal or of the dissolution the leader has seen."""
    wire = codec.convert(team, WireTeam, from_attributes=True)
    for member in wire.members:
        member.ack_seen = member.device_id in acked
    return wire


def team_from_wire(wire: WireTeam) -> Team:
    return codec.convert(wire, Team, from_attributes=True)


def subscriptions_to_wire(subs: list[Subscription]) -> list[WireSubscription]:
    return [
        WireSubscription(
            project_key=s.project_key, state=s.state, direction=s.direction, changed_at=s.changed_at
        )
        for s in sorted(subs, key=lambda s: s.project_key)
    ]


def subscriptions_from_wire(team_id: str, wire: list[WireSubscription]) -> list[Subscription]:
    return [Subscription(team_id, s.project_key, s.state, s.direction, s.changed_at) for s in wire]


# --------------------------------------------------------------------------- validation


def _check_device(value: str, what: str) -> None:
    try:
        canonical = deviceid.parse(value)
    except deviceid.InvalidDeviceId as exc:
        raise InvalidState(f"{what}: {exc}") from None
    if canonical != value:
        raise InvalidState(f"{what}: device id not in canonical form")


def _check_tag(value: str, what: str) -> None:
    try:
        split_member_tag(value)
    except DomainError as exc:
        raise InvalidState(f"{what}: {exc}") from None


def validate(
    state: StateFile, *, folder: str, owner_device: str, leader_device: str | None = None
) -> StateFile:
    """Accept a decoded file only if it is what the owner of `folder` may say.

    `owner_device` is who we already believe owns the folder and `leader_device` who we
    believe leads its team (both from our own records, never from the file); the file
    must agree, its folder id must be the derived one, and only the leader may publish
    a team record.
    """
    if state.format != FORMAT:
        raise InvalidState(f"unsupported state format {state.format}")
    if not is_team_id(state.team_id):
        raise InvalidState("malformed team id")
    _check_device(state.owner_device, "owner")
    _check_tag(state.owner_tag, "owner")
    if state.owner_device != owner_device:
        raise InvalidState("written for another device than the folder's owner")
    if folder_id(state.team_id, state.owner_device) != folder:
        raise InvalidState("team and owner do not match the folder it arrived in")
    if state.seq < 0:
        raise InvalidState("negative sequence number")
    if state.seq > MAX_SEQ:
        raise InvalidState("sequence number too large")
    for moment in _times(state):
        if not EARLIEST <= moment < LATEST:
            raise InvalidState(f"a time out of range ({EARLIEST.year}-{LATEST.year})")
    for sub in state.subscriptions:
        if not is_project_key(sub.project_key):
            raise InvalidState("malformed project key in subscriptions")
    team = state.team
    if team is None:
        return state
    if team.team_id != state.team_id:
        raise InvalidState("team record of another team")
    if team.leader_device != state.owner_device or (
        leader_device is not None and state.owner_device != leader_device
    ):
        # Only the leader publishes a team record; anyone else claiming one is refused.
        raise InvalidState("team record published by a device that is not its leader")
    _check_device(team.leader_device, "leader")
    _check_tag(team.leader_tag, "leader")
    try:
        validate_team_name(team.name)
    except DomainError as exc:
        raise InvalidState(str(exc)) from None
    seen: set[str] = set()
    for member in team.members:
        _check_device(member.device_id, "member")
        _check_tag(member.member_tag, "member")
        if member.device_id in seen:
            raise InvalidState("a device is listed twice in the roster")
        seen.add(member.device_id)
    if team.leader_device not in seen:
        raise InvalidState("the leader is missing from its own roster")
    for project in team.projects:
        if not is_project_key(project.key) or project_key(project.identity) != project.key:
            raise InvalidState("project key does not match its identity")
    return state


def _times(state: StateFile) -> Iterator[datetime]:
    yield state.written_at
    yield from (s.changed_at for s in state.subscriptions if s.changed_at is not None)
    team = state.team
    if team is None:
        return
    yield team.created_at
    if team.dissolved_at is not None:
        yield team.dissolved_at
    for member in team.members:
        yield member.added_at
        yield member.changed_at
    yield from (p.shared_at for p in team.projects)


def read(
    path: Path,
    *,
    folder: str,
    owner_device: str,
    leader_device: str | None = None,
    require_signature: bool = False,
) -> StateFile:
    """Read and validate; raises `InvalidState` (or FileNotFoundError) and never acts."""
    with path.open("rb") as f:
        data = f.read(MAX_STATE_BYTES + 1)
    return parse(
        data,
        folder=folder,
        owner_device=owner_device,
        leader_device=leader_device,
        require_signature=require_signature,
    )


def parse(
    data: bytes,
    *,
    folder: str,
    owner_device: str,
    leader_device: str | None = None,
    require_signature: bool = False,
) -> StateFile:
    """The file's bytes, checked as `read` does.

    A signed file must carry the signature of `owner_device` over exactly this payload
    in exactly this folder. An unsigned one (a karmad that cannot sign, or from before
    signatures) is accepted unless `require_signature`.
    """
    if len(data) > MAX_STATE_BYTES:
        raise InvalidState(f"larger than {MAX_STATE_BYTES} bytes")
    payload = _payload(data, folder, owner_device, require_signature)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidState(f"larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        state = codec.decode_json(payload, StateFile)
    except codec.InvalidData as exc:
        raise InvalidState(f"not a valid state file: {exc}") from None
    return validate(state, folder=folder, owner_device=owner_device, leader_device=leader_device)


def _payload(data: bytes, folder: str, owner_device: str, require_signature: bool) -> bytes:
    if signed.split(data)[1] is None:
        if require_signature:
            raise InvalidState("unsigned: this team requires state files signed by their owner")
        return data
    try:
        return signed.verify_file(
            data, kind=SIGNED_KIND, folder=folder, path=STATE_NAME, owner=owner_device
        )
    except BadSignature as exc:
        raise InvalidState(f"bad signature: {exc}") from None


def encode(state: StateFile) -> bytes:
    return codec.encode_json(state) + b"\n"


def encode_signed(state: StateFile, key: DeviceKey, folder: str) -> bytes:
    """The file as its owner publishes it in `folder`: the payload, then its signature."""
    payload = codec.encode_json(state)
    return signed.sign(key, payload, kind=SIGNED_KIND, folder=folder, path=STATE_NAME)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(directory: Path, name: str, data: bytes) -> None:
    """Write `name` so that no reader (nor Syncthing) ever sees a partial file.

    The temporary name starts with `TEMP_PREFIX`, which the owner's ignore patterns
    exclude, so a half-written state file never leaves the machine.
    """
    atomic_file.write_atomic(directory / name, data, 0o644, temp_prefix=TEMP_PREFIX)


def sweep_temp_files(directory: Path) -> int:
    """Remove temp files a crash left behind; they were never visible to anyone."""
    removed = 0
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
