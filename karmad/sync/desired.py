"""What Syncthing should look like, derived from our records: a pure function.

Per team: our own team folder (sendonly) shared with exactly the devices entitled to it,
one receiveonly inbox per teammate shared with that teammate alone, inbox ignore patterns
admitting the `state` file and only the projects we accepted to receive, and the content
of our own `state` file. Devices are the union of what the folders need.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from karmad.domain import (
    DEPARTING,
    Member,
    MemberState,
    Phase,
    Team,
    TeamState,
    folder_id,
    is_folder_id,
)
from karmad.sync import keeping, statefile
from karmad.sync.ingest import delivery_pending
from karmad.sync.model import (
    DIAL_LATER,
    Desired,
    DesiredFolder,
    DesiredState,
    DeviceConfig,
    FolderType,
    Inbox,
    KeeperFiles,
    LocalTeam,
    Me,
    Offer,
    Outbox,
    PeerState,
    PendingFolder,
    Policy,
    Role,
    TeamKeeper,
    TrustedLeader,
)

OWN_IGNORES: tuple[str, ...] = (f"{statefile.TEMP_PREFIX}*",)
"""Our own folders never send half-written files (temp names are renamed when complete)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def inbox_ignores(project_keys: frozenset[str]) -> tuple[str, ...]:
    """Admit `state` and the accepted projects; ignore everything else the owner sends.

    Syncthing applies the first matching pattern, so the includes come first and the
    final `*` excludes the rest. Ignore patterns are per device and never synced.
    """
    includes = [f"!/{statefile.STATE_NAME}"]
    includes += [f"!/projects/{key}" for key in sorted(project_keys)]
    return (*includes, "*")


@dataclass
class _Builder:
    me: Me
    peers: dict[str, PeerState]
    now: datetime
    policy: Policy
    knocking: frozenset[str] = frozenset()
    """Devices trying to connect to us right now (pending): dialling them back is safe."""
    keepers: Mapping[str, TeamKeeper] = field(default_factory=dict)
    join_secrets: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)
    sealing_key: bytes | None = None
    keeper_files: dict[str, KeeperFiles] = field(default_factory=dict)
    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    folders: dict[str, DesiredFolder] = field(default_factory=dict)
    states: dict[str, DesiredState] = field(default_factory=dict)
    outboxes: list[Outbox] = field(default_factory=list)
    inboxes: list[Inbox] = field(default_factory=list)

    def addresses_of(self, team_id: str, device: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
        """A member's own published addresses win over what others recorded about it."""
        peer = self.peers.get(folder_id(team_id, device))
        if peer is not None and peer.state is not None and peer.state.addresses:
            return tuple(peer.state.addresses)
        return fallback or ("dynamic",)

    def device(
        self, device: str, name: str, addresses: tuple[str, ...], *, hold: bool = False
    ) -> None:
        """Configure `device`; `hold`: accept its connection but leave it the first dial
        (see `Policy.dial_delay`). Addresses to dial win over none, whichever team asks."""
        if device == self.me.device_id:
            return
        wanted = DIAL_LATER if hold and device not in self.knocking else addresses
        current = self.devices.get(device)
        if current is None or (current.addresses == DIAL_LATER and wanted != DIAL_LATER):
            self.devices[device] = DeviceConfig(device, name, wanted)

    def waits_for_first_dial(self, since: datetime, delay: timedelta | None = None) -> bool:
        return self.now < since + (self.policy.dial_delay if delay is None else delay)

    def own_folder(self, team: LocalTeam, devices: set[str]) -> str:
        fid = folder_id(team.team_id, self.me.device_id)
        self.folders[fid] = DesiredFolder(
            folder_id=fid,
            label=f"karma · {team.name} · {self.me.member_tag}",
            type=FolderType.SENDONLY,
            devices=frozenset(devices | {self.me.device_id}),
            ignores=OWN_IGNORES,
            team_id=team.team_id,
            owner_device=self.me.device_id,
        )
        return fid

    def inbox(
        self,
        team: LocalTeam,
        owner: str,
        owner_tag: str,
        projects: frozenset[str],
        shared: tuple[tuple[str, str], ...] = (),
    ) -> None:
        fid = folder_id(team.team_id, owner)
        self.folders[fid] = DesiredFolder(
            folder_id=fid,
            label=f"karma · {team.name} · {owner_tag}",
            type=FolderType.RECEIVEONLY,
            devices=frozenset({owner, self.me.device_id}),
            ignores=inbox_ignores(projects),
            team_id=team.team_id,
            owner_device=owner,
        )
        self.inboxes.append(Inbox(team.team_id, fid, owner, owner_tag, projects, shared))

    def state(self, team: LocalTeam, fid: str, body: statefile.StateFile) -> None:
        digest = statefile.digest(statefile.encode(body))
        self.states[fid] = DesiredState(fid, team.team_id, body, digest)


def state_body(
    me: Me,
    team: LocalTeam,
    *,
    left: bool = False,
    ack_removed: bool = False,
    ack_dissolved: bool = False,
    keeper: TeamKeeper | None = None,
    sealing_key: bytes | None = None,
) -> statefile.StateFile:
    """Our state file without `seq`/`written_at`: equal content means nothing to write."""
    wire_team = None
    wire_keeper = None
    if team.role is Role.LEADER and team.record is not None:
        wire_team = statefile.team_to_wire(team.record, frozenset(d for d, _ in team.acks))
        if keeper is not None and keeper.removed_at is None:
            wire_keeper = statefile.WireKeeper(keeper.device_id, list(keeper.addresses))
    return statefile.StateFile(
        team_id=team.team_id,
        owner_tag=me.member_tag,
        owner_device=me.device_id,
        seq=0,
        written_at=_EPOCH,
        addresses=list(me.addresses),
        subscriptions=statefile.subscriptions_to_wire(list(team.subscriptions)),
        left=left,
        ack_removed=ack_removed,
        ack_dissolved=ack_dissolved,
        team=wire_team,
        keeper=wire_keeper,
        sealing_key=None if sealing_key is None else base64.b64encode(sealing_key).decode(),
    )


def _received(team: LocalTeam, record: Team) -> frozenset[str]:
    if record.state is not TeamState.ACTIVE:
        return frozenset()
    shared = {p.key for p in record.shared_projects}
    return frozenset(
        s.project_key for s in team.subscriptions if s.receives and s.project_key in shared
    )


def _outbox(b: _Builder, team: LocalTeam, record: Team, fid: str) -> None:
    if record.state is not TeamState.ACTIVE:
        return
    shared = {p.key: p for p in record.shared_projects}
    keys = frozenset(
        s.project_key for s in team.subscriptions if s.sends and s.project_key in shared
    )
    b.outboxes.append(
        Outbox(
            team_id=team.team_id,
            folder_id=fid,
            project_keys=keys,
            include_todos=frozenset(k for k in keys if shared[k].include_todos),
            include_plans=frozenset(k for k in keys if shared[k].include_plans),
        )
    )


def _leader(b: _Builder, team: LocalTeam, now: datetime, policy: Policy) -> None:
    record = team.record
    assert record is not None
    me = b.me.device_id
    receive = _received(team, record)
    entitled: set[str] = set()
    for m in record.members:
        if m.device_id == me:
            continue
        if record.state is TeamState.DISSOLVED:
            since = record.dissolved_at or team.phase_since
            if m.state is MemberState.REMOVED or not delivery_pending(
                team, m.device_id, since, now, policy
            ):
                continue
            projects: frozenset[str] = frozenset()
        elif m.state is MemberState.REMOVED:
            if not delivery_pending(team, m.device_id, m.changed_at, now, policy):
                continue
            projects = frozenset()
        else:
            projects = receive
        entitled.add(m.device_id)
        # A member just added joins by dialling us with the invite's addresses.
        hold = m.state is MemberState.ADDED and b.waits_for_first_dial(m.changed_at)
        addresses = b.addresses_of(team.team_id, m.device_id, m.addresses)
        b.device(m.device_id, m.member_tag, addresses, hold=hold)
        visible = _shared(record) if m.state is not MemberState.REMOVED else ()
        b.inbox(team, m.device_id, m.member_tag, projects, visible)
    fid = b.own_folder(team, entitled)
    keeper = b.keepers.get(team.team_id)
    b.state(team, fid, state_body(b.me, team, keeper=keeper, sealing_key=b.sealing_key))
    _outbox(b, team, record, fid)
    if keeper is not None:
        files = keeping.leader(
            b.folders,
            me,
            record,
            keeper,
            _sealing_keys(b, team),
            b.join_secrets.get(team.team_id, {}),
        )
        b.device(keeper.device_id, keeping.KEEPER_NAME, keeper.addresses or ("dynamic",))
        keeping.neutralise(b.folders, team.team_id)
        if files is not None:
            b.keeper_files[files.folder_id] = files


def _sealing_keys(b: _Builder, team: LocalTeam) -> dict[str, bytes]:
    """Members' published sealing keys, from their own state files."""
    keys: dict[str, bytes] = {}
    for peer in b.peers.values():
        body = peer.state
        if body is None or body.team_id != team.team_id or not body.sealing_key:
            continue
        if peer.owner_device != body.owner_device:
            continue
        try:
            raw = base64.b64decode(body.sealing_key, validate=True)
        except ValueError:
            continue
        if len(raw) == 32:
            keys[body.owner_device] = raw
    return keys


def _keep_member(b: _Builder, team: LocalTeam) -> None:
    keeper = b.keepers.get(team.team_id)
    if keeper is None or keeper.removed_at is not None:
        return
    b.device(keeper.device_id, keeping.KEEPER_NAME, keeper.addresses or ("dynamic",))
    keeping.member(b.folders, b.me.device_id, team.team_id, team.leader_device, keeper)
    keeping.neutralise(b.folders, team.team_id)


def _shared(record: Team) -> tuple[tuple[str, str], ...]:
    if record.state is not TeamState.ACTIVE:
        return ()
    return tuple(sorted((p.key, p.identity) for p in record.shared_projects))


def _member(b: _Builder, team: LocalTeam) -> None:
    me = b.me.device_id
    leader_addresses = b.addresses_of(team.team_id, team.leader_device, team.leader_addresses)
    b.device(team.leader_device, team.leader_tag, leader_addresses)
    record = team.record
    if team.phase is Phase.JOINING or record is None:
        b.inbox(team, team.leader_device, team.leader_tag, frozenset())
        _keep_member(b, team)
        return
    if team.phase in DEPARTING:
        # Only the leader needs to hear from us now: the acknowledgement it waits for.
        b.inbox(team, team.leader_device, team.leader_tag, frozenset())
        fid = b.own_folder(team, {team.leader_device})
        b.state(
            team,
            fid,
            state_body(
                b.me,
                team,
                left=team.phase is Phase.LEAVING,
                ack_removed=team.phase is Phase.REMOVED,
                ack_dissolved=team.phase is Phase.DISSOLVED,
            ),
        )
        return
    receive = _received(team, record)
    entitled: set[str] = set()
    mine = record.member(me)
    for m in record.active_members:
        if m.device_id == me:
            continue
        entitled.add(m.device_id)
        addresses = b.addresses_of(team.team_id, m.device_id, m.addresses)
        hold = _second_dialler(b, m, mine, team.leader_device)
        b.device(m.device_id, m.member_tag, addresses, hold=hold)
        b.inbox(team, m.device_id, m.member_tag, receive, _shared(record))
    entitled.add(team.leader_device)
    if team.leader_device not in {m.device_id for m in record.active_members}:
        b.inbox(team, team.leader_device, team.leader_tag, receive, _shared(record))
    fid = b.own_folder(team, entitled)
    b.state(team, fid, state_body(b.me, team, sealing_key=b.sealing_key))
    _outbox(b, team, record, fid)
    _keep_member(b, team)


def _second_dialler(b: _Builder, peer: Member, mine: Member | None, leader: str) -> bool:
    """Between two members, the newer one leaves the first dial to the older one; our
    leader we always dial.

    A member learns of the others from the first roster it receives, while they learn of
    it only once the leader has seen it join and published a roster saying so: the older
    member is the one that learns of the pair last, so when it dials, the newer one has
    long had the device and its folders in place. Dialled the other way, the first dial
    is refused (the older member does not know the newer one yet), and the redial that
    follows can cross the older member's own dial. Newer means activated later (a member
    not yet active is the newest); the same roster gives both sides the same answer.
    """
    if peer.device_id == leader or not _newer(mine, peer):
        return False
    since = peer.changed_at if mine is None else max(peer.changed_at, mine.changed_at)
    return b.waits_for_first_dial(since, b.policy.pair_dial_delay)


def _newer(mine: Member | None, peer: Member) -> bool:
    if mine is None:
        return True

    def seniority(m: Member) -> tuple[bool, datetime, str]:
        return (m.state is not MemberState.ACTIVE, m.changed_at, m.device_id)

    return seniority(mine) > seniority(peer)


def desired(
    me: Me,
    teams: tuple[LocalTeam, ...],
    peers: dict[str, PeerState],
    trusted: tuple[TrustedLeader, ...],
    pending_folders: tuple[PendingFolder, ...],
    now: datetime,
    policy: Policy,
    managed_devices: frozenset[str] = frozenset(),
    present_folders: frozenset[str] = frozenset(),
    knocking: frozenset[str] = frozenset(),
    dismissed: frozenset[Offer] = frozenset(),
    purges: frozenset[tuple[str, str]] = frozenset(),
    keepers: Mapping[str, TeamKeeper] | None = None,
    join_secrets: Mapping[str, Mapping[str, bytes]] | None = None,
    sealing_key: bytes | None = None,
) -> Desired:
    """The whole managed configuration as a function of our records. Pure.

    `present_folders` are the `karma-` folders Syncthing has now; those no team needs are
    reported as removable (and likewise managed devices) so the planner can tear down.
    `knocking` are the devices Syncthing reports as pending (they are dialling us).
    `dismissed` and `purges` are what the user asked for since (see `Desired`).
    `keepers` are the teams' keepers (docs/keeper.md): the leader's with an epoch
    advanced for the current roster, `join_secrets` the leader's per invited device;
    `sealing_key` is our public key, published in every state file.
    """
    b = _Builder(
        me,
        peers,
        now,
        policy,
        knocking,
        keepers=keepers or {},
        join_secrets=join_secrets or {},
        sealing_key=sealing_key,
    )
    for team in sorted(teams, key=lambda t: t.team_id):
        if team.phase is Phase.GONE:
            continue
        if team.role is Role.LEADER and team.record is not None:
            _leader(b, team, now, policy)
        elif team.role is Role.MEMBER:
            _member(b, team)
    known_teams = {t.team_id for t in teams}
    for leader in trusted:
        b.device(leader.device_id, leader.member_tag, ("dynamic",))
        for offer in pending_folders:
            if offer.offered_by != leader.device_id or offer.folder_id in b.folders:
                continue
            if not is_folder_id(offer.folder_id):
                continue  # not a team folder: left pending for the user, never created
            _provisional(b, leader, offer.folder_id, known_teams)
        for fid, peer in peers.items():
            if peer.owner_device == leader.device_id and fid not in b.folders:
                _provisional(b, leader, fid, known_teams)
    needed_devices = set(b.devices)
    return Desired(
        devices=b.devices,
        folders=b.folders,
        states=b.states,
        outboxes=tuple(b.outboxes),
        inboxes=tuple(b.inboxes),
        removable_devices=frozenset(managed_devices - needed_devices - {me.device_id}),
        removable_folders=frozenset(present_folders - set(b.folders)),
        dismissed=dismissed,
        purges=purges,
        keeper_files=b.keeper_files,
    )


def _provisional(b: _Builder, leader: TrustedLeader, fid: str, known_teams: set[str]) -> None:
    """An offer from a leader the user accepted: receive only its `state`, to learn the team.

    If that state turns out not to list us (or is invalid), the folder stops being desired
    and is removed again; nothing but the state file is ever admitted.
    """
    peer = b.peers.get(fid)
    if peer is not None:
        if peer.error is not None or peer.state is None:
            return
        if peer.state.team_id in known_teams:
            return
        team = peer.state.team
        if team is None or not any(
            m.device_id == b.me.device_id and m.state is not MemberState.REMOVED
            for m in team.members
        ):
            return
    b.folders[fid] = DesiredFolder(
        folder_id=fid,
        label=f"karma · offered by {leader.member_tag}",
        type=FolderType.RECEIVEONLY,
        devices=frozenset({leader.device_id, b.me.device_id}),
        ignores=inbox_ignores(frozenset()),
        team_id="",
        owner_device=leader.device_id,
    )
