"""Identity, pairing, teams, projects, subscriptions, pending offers, sync status.

Every handler validates, changes desired state in one store transaction, records the
audit event, wakes the reconciler and returns. None of them talks to Syncthing: what
they need of it (our device ID, connection states, pending offers) comes from the
Syncthing subsystem's in-memory snapshot through the reconciler's port.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from karmad import codes, deviceid, gitremote, protocol, state_guard
from karmad.domain import (
    DEPARTING,
    Direction,
    DomainError,
    EventKind,
    Phase,
    Subscription,
    SubscriptionState,
    SyncEvent,
    Team,
    folder_id,
    is_project_key,
    machine_tag_from_hostname,
    new_team,
    project_key,
    validate_machine_tag,
    validate_user_id,
)
from karmad.errors import KarmadError
from karmad.flow import shared
from karmad.protocol import ErrorCode
from karmad.rpc.call import Call
from karmad.rpc.router import Router
from karmad.services import Services
from karmad.store import Store
from karmad.sync import teamstore
from karmad.sync.model import LocalTeam, Role, TrustedLeader
from karmad.sync.port import SyncthingPort
from karmad.sync.reconciler import Reconciler


def _domain(reason: str, detail: str, field: str = "") -> DomainError:
    return DomainError(reason, detail, field=field)


def new_team_id() -> str:
    return base64.b32encode(os.urandom(16)).decode().rstrip("=").lower()


class TeamService:
    """The logic behind the handlers, kept apart so it reads without RPC plumbing."""

    def __init__(
        self,
        store: Store,
        port: SyncthingPort,
        reconciler: Reconciler,
        clock: Callable[[], datetime],
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        self.store = store
        self.port = port
        self.reconciler = reconciler
        self.clock = clock
        self.hostname = hostname

    # ------------------------------------------------------------------ identity

    def identity(self) -> teamstore.Identity:
        identity = teamstore.get_identity(self.store)
        if identity is None:
            raise KarmadError(ErrorCode.NOT_INITIALISED)
        return identity

    def device(self) -> str:
        device = self.port.device_id()
        if device is None:
            raise KarmadError(
                ErrorCode.SYNCTHING_UNAVAILABLE,
                "this machine's device ID is not known yet: Syncthing has not started "
                "(see `karmactl syncthing status`)",
            )
        return device

    def identity_info(self) -> protocol.IdentityInfo:
        identity = teamstore.get_identity(self.store)
        if identity is None:
            return protocol.IdentityInfo(initialised=False, device_id=self.port.device_id())
        return protocol.IdentityInfo(
            initialised=True,
            user_id=identity.user_id,
            machine_tag=identity.machine_tag,
            member_tag=identity.member_tag,
            device_id=self.port.device_id(),
        )

    def init(self, user: str, machine: str | None) -> protocol.IdentityInfo:
        validate_user_id(user)
        current = teamstore.get_identity(self.store)
        if current is not None:
            if machine is not None and machine != current.machine_tag:
                raise _domain(
                    "conflict",
                    f"the machine tag is {current.machine_tag} and stays stable once set",
                    "machine",
                )
            if user != current.user_id and teamstore.teams(self.store):
                raise _domain(
                    "conflict",
                    f"this member is {current.member_tag} and belongs to teams; leave them "
                    "before changing the user name",
                    "user",
                )
            tag = current.machine_tag
        else:
            tag = (
                validate_machine_tag(machine)
                if machine
                else machine_tag_from_hostname(self.hostname())
            )
        created = current.created_at if current is not None else self.clock()
        identity = teamstore.Identity(user, tag, created)
        teamstore.set_identity(self.store, identity)
        state_guard.remember_quietly(self.store.path, identity.member_tag, created)
        self.reconciler.wake()
        return self.identity_info()

    def pair_code(self) -> protocol.PairCode:
        identity = self.identity()
        device = self.device()
        addresses = self.port.advertised_addresses()
        code = codes.encode_member(codes.MemberCode(identity.member_tag, device, addresses))
        return protocol.PairCode(
            code=code, member_tag=identity.member_tag, device_id=device, addresses=list(addresses)
        )

    @staticmethod
    def decode(text: str) -> protocol.DecodedCode:
        compact = "".join(c for c in text if c.isalnum()).upper()
        if compact.startswith(codes.INVITE_PREFIX):
            invite = codes.decode_invite(text)
            return protocol.DecodedCode(
                kind="invite",
                member_tag=invite.leader_tag,
                device_id=invite.leader_device,
                addresses=list(invite.addresses),
                team_id=invite.team_id,
                team_name=invite.team_name,
            )
        member = codes.decode_member(text)
        return protocol.DecodedCode(
            kind="member",
            member_tag=member.member_tag,
            device_id=member.device_id,
            addresses=list(member.addresses),
        )

    # ------------------------------------------------------------------ teams

    def resolve(self, ref: str) -> LocalTeam:
        teams = teamstore.teams(self.store)
        exact = [t for t in teams if t.team_id == ref]
        if exact:
            return exact[0]
        named = [t for t in teams if t.name == ref]
        prefixed = [t for t in teams if len(ref) >= 4 and t.team_id.startswith(ref.lower())]
        matches = named or prefixed
        if not matches:
            raise _domain("not_found", f"no team {ref!r} (see `karmactl team ls`)", "team")
        if len(matches) > 1:
            ids = ", ".join(f"{t.name} ({t.team_id[:8]})" for t in matches)
            raise _domain("conflict", f"{ref!r} names several teams: {ids}; use the id", "team")
        return matches[0]

    def leader_team(self, ref: str) -> tuple[LocalTeam, Team]:
        team = self.resolve(ref)
        if team.role is not Role.LEADER or team.record is None:
            raise _domain("not_leader", f"only {team.leader_tag} (the leader) can do this")
        return team, team.record

    def _audit(
        self,
        kind: EventKind,
        team: LocalTeam | None,
        member_tag: str | None = None,
        device_id: str | None = None,
        project: str | None = None,
        **detail: str,
    ) -> None:
        event = SyncEvent(
            kind,
            self.clock(),
            team.team_id if team else None,
            member_tag,
            device_id,
            project,
            dict(detail),
        )
        teamstore.append_event(self.store, event)

    def create(self, name: str) -> protocol.TeamInfo:
        identity = self.identity()
        device = self.device()
        now = self.clock()
        record = new_team(
            new_team_id(),
            name,
            identity.member_tag,
            device,
            now,
            self.port.advertised_addresses(),
        )
        local = LocalTeam(
            team_id=record.team_id,
            name=record.name,
            role=Role.LEADER,
            phase=Phase.MEMBER,
            leader_device=device,
            leader_tag=identity.member_tag,
            phase_since=now,
            record=record,
        )
        with self.store.transaction():
            teamstore.insert_team(self.store, local, now)
            self._audit(EventKind.TEAM_CREATED, local, identity.member_tag, device, name=name)
        self.reconciler.wake()
        return self.info(self.resolve(record.team_id))

    def add_member(self, ref: str, code_text: str) -> protocol.AddedMember:
        identity = self.identity()
        team, record = self.leader_team(ref)
        member = codes.decode_member(code_text)
        if member.device_id == team.leader_device:
            raise _domain("invalid_argument", "that is this machine's own pairing code", "code")
        now = self.clock()
        updated = record.add_member(member.member_tag, member.device_id, now, member.addresses)
        if updated is not record:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                self._audit(EventKind.MEMBER_ADDED, team, member.member_tag, member.device_id)
            self.reconciler.wake()
        invite = codes.encode_invite(
            codes.InviteCode(
                team.team_id,
                record.name,
                identity.member_tag,
                team.leader_device,
                self.port.advertised_addresses(),
            )
        )
        info = self.info(self.resolve(team.team_id))
        added = next(m for m in info.members if m.device_id == member.device_id)
        return protocol.AddedMember(team=info, member=added, invite=invite)

    def join(self, invite_text: str) -> protocol.TeamInfo:
        self.identity()
        device = self.device()
        invite = codes.decode_invite(invite_text)
        if invite.leader_device == device:
            raise _domain("invalid_argument", "this machine leads that team already", "invite")
        existing = teamstore.team(self.store, invite.team_id)
        if existing is not None and existing.phase is not Phase.GONE:
            return self.info(existing)
        if existing is not None:
            raise _domain(
                "invalid_transition", f"this machine already left {invite.team_name}", "invite"
            )
        now = self.clock()
        local = LocalTeam(
            team_id=invite.team_id,
            name=invite.team_name,
            role=Role.MEMBER,
            phase=Phase.JOINING,
            leader_device=invite.leader_device,
            leader_tag=invite.leader_tag,
            phase_since=now,
            leader_addresses=invite.addresses,
        )
        with self.store.transaction():
            teamstore.insert_team(self.store, local, now)
            self._audit(
                EventKind.OFFER_ACCEPTED,
                local,
                invite.leader_tag,
                invite.leader_device,
                via="invite code",
            )
        self.reconciler.wake()
        return self.info(self.resolve(invite.team_id))

    def remove_member(self, ref: str, member_ref: str) -> protocol.TeamInfo:
        team, record = self.leader_team(ref)
        member = record.member_by_tag(member_ref) or record.member(member_ref)
        if member is None and deviceid.is_valid(member_ref):
            member = record.member(deviceid.parse(member_ref))
        if member is None:
            raise _domain("not_found", f"no member {member_ref!r} in {team.name}", "member")
        updated = record.remove_member(member.device_id, self.clock())
        if updated is not record:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                self._audit(EventKind.MEMBER_REMOVED, team, member.member_tag, member.device_id)
            self.reconciler.wake()
        return self.info(self.resolve(team.team_id))

    def leave(self, ref: str) -> protocol.TeamInfo:
        team = self.resolve(ref)
        if team.role is Role.LEADER:
            raise _domain(
                "invalid_transition", "the leader cannot leave its team; dissolve it instead"
            )
        now = self.clock()
        if team.phase in DEPARTING:
            return self.info(team)
        target = Phase.GONE if team.phase is Phase.JOINING else Phase.LEAVING
        with self.store.transaction():
            teamstore.set_phase(self.store, team.team_id, target, now)
            self._audit(EventKind.TEAM_LEFT, team)
        self.reconciler.wake()
        return self.info(teamstore.team(self.store, team.team_id) or team)

    def dissolve(self, ref: str) -> protocol.TeamInfo:
        team, record = self.leader_team(ref)
        now = self.clock()
        updated = record.dissolve(now)
        if updated is not record:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                teamstore.set_phase(self.store, team.team_id, Phase.DISSOLVED, now)
                self._audit(EventKind.TEAM_DISSOLVED, team)
            self.reconciler.wake()
        return self.info(self.resolve(team.team_id))

    # ------------------------------------------------------------------ projects

    @staticmethod
    def identity_of(project: str) -> tuple[str, str]:
        """(identity, label) for a remote in any spelling or a local checkout path."""
        text = project.strip()
        if not text:
            raise _domain("invalid_argument", "no project given", "project")
        looks_like_path = text.startswith(("/", "~", ".")) or os.path.isdir(
            os.path.expanduser(text)
        )
        if looks_like_path:
            path = Path(os.path.expanduser(text)).resolve()
            if not path.is_dir():
                raise _domain("invalid_argument", f"{path} is not a directory", "project")
            found = gitremote.identify(str(path))
            identity = found.identity
        else:
            remote = gitremote.normalise_remote(text)
            if remote is None and "/" in text and ":" not in text:
                remote = gitremote.normalise_remote(f"https://{text}")
            if remote is None:
                raise _domain(
                    "invalid_argument",
                    f"{text!r} is neither a git remote nor a checkout directory",
                    "project",
                )
            identity = remote
        label = "/".join(identity.rstrip("/").split("/")[-2:])
        return identity, label

    def project_key_of(self, team: LocalTeam, ref: str) -> str:
        if is_project_key(ref):
            return ref
        record = team.record
        if record is not None:
            for p in record.projects:
                if ref in (p.identity, p.label):
                    return p.key
        identity, _ = self.identity_of(ref)
        return project_key(identity)

    def share(self, ref: str, project: str, todos: bool, plans: bool) -> protocol.ProjectInfo:
        team, record = self.leader_team(ref)
        identity, label = self.identity_of(project)
        now = self.clock()
        updated = record.share(identity, label, now)
        key = project_key(identity)
        updated = updated.set_project_options(key, todos=todos, plans=plans)
        if updated != record:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                if team.subscription(key) is None:
                    teamstore.put_subscription(
                        self.store, Subscription(team.team_id, key, changed_at=now)
                    )
                self._audit(EventKind.PROJECT_SHARED, team, project=key, identity=identity)
            self.reconciler.wake()
        return self._project_info(self.resolve(team.team_id), key)

    def unshare(self, ref: str, project: str) -> protocol.ProjectInfo:
        team, record = self.leader_team(ref)
        key = self.project_key_of(team, project)
        updated = record.unshare(key, self.clock())
        if updated is not record:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                self._audit(EventKind.PROJECT_UNSHARED, team, project=key)
            self.reconciler.wake()
        return self._project_info(self.resolve(team.team_id), key)

    # ------------------------------------------------------------------ subscriptions

    def _subscription(self, ref: str, project: str) -> tuple[LocalTeam, Subscription]:
        team = self.resolve(ref)
        key = self.project_key_of(team, project)
        record = team.record
        if record is None or record.project(key) is None:
            raise _domain("not_found", f"{project!r} is not shared with {team.name}", "project")
        if team.phase is not Phase.MEMBER:
            raise _domain("invalid_transition", f"this member is {team.phase.value} in {team.name}")
        existing = team.subscription(key) or Subscription(
            team.team_id, key, changed_at=self.clock()
        )
        return team, existing

    def change(
        self,
        ref: str,
        project: str,
        how: Callable[[Subscription, datetime], Subscription],
        purge: bool = False,
    ) -> protocol.SubscriptionInfo:
        team, sub = self._subscription(ref, project)
        updated = how(sub, self.clock())
        if updated != sub or team.subscription(sub.project_key) is None:
            with self.store.transaction():
                teamstore.put_subscription(self.store, updated)
                self._audit(
                    EventKind.SUBSCRIPTION_CHANGED,
                    team,
                    project=sub.project_key,
                    to=updated.state.value,
                    direction=updated.direction.value,
                    **{"from": sub.state.value},
                )
            if purge:
                self.reconciler.request_purge(team.team_id, sub.project_key)
            self.reconciler.wake()
        return self._subscription_info(self.resolve(team.team_id), updated)

    # ------------------------------------------------------------------ pending

    def pending_accept(self, device: str | None, folder: str | None) -> None:
        if (device is None) == (folder is None):
            raise _domain("invalid_argument", "give exactly one of device or folder")
        self.identity()
        now = self.clock()
        if folder is not None:
            offers = [o for o in self.port.pending_folders() if o.folder_id == folder]
            if not offers:
                raise _domain("not_found", f"no pending offer of folder {folder!r}", "folder")
            device = offers[0].offered_by
        assert device is not None
        try:
            device = deviceid.parse(device)
        except ValueError as exc:
            raise _domain("invalid_argument", str(exc), "device") from None
        # The name a device gives itself is its owner's choice and proves nothing: the
        # leader is known by what our own records say, else by its device ID alone.
        known = self.known_devices().get(device)
        name = known[0] if known is not None else f"device.{device[:7].lower()}"
        with self.store.transaction():
            teamstore.trust_leader(self.store, TrustedLeader(device, name, now))
            self._audit(EventKind.OFFER_ACCEPTED, None, name, device, via="pending.accept")
        self.reconciler.wake()

    def known_devices(self) -> dict[str, tuple[str, str]]:
        """Device ID -> (member tag, where our own records say so), for devices that ask
        to connect: an invite entered here, a team roster, or a leader accepted before."""
        known: dict[str, tuple[str, str]] = {}
        for leader in teamstore.trusted_leaders(self.store):
            known[leader.device_id] = (leader.member_tag, "accepted as a leader")
        for team in teamstore.teams(self.store):
            for m in team.record.members if team.record else ():
                known[m.device_id] = (m.member_tag, f"member of {team.name}")
            known[team.leader_device] = (team.leader_tag, f"leader of {team.name}")
        return known

    def pending_dismiss(self, device: str | None, folder: str | None) -> None:
        if (device is None) == (folder is None):
            raise _domain("invalid_argument", "give exactly one of device or folder")
        if device is not None:
            try:
                device = deviceid.parse(device)
            except ValueError as exc:
                raise _domain("invalid_argument", str(exc), "device") from None
            if device not in {d.device_id for d in self.port.pending_devices()}:
                raise _domain("not_found", f"no pending device {device}", "device")
            self.reconciler.request_dismiss(device=device)
        else:
            offers = [o for o in self.port.pending_folders() if o.folder_id == folder]
            if not offers:
                raise _domain("not_found", f"no pending offer of folder {folder!r}", "folder")
            for offer in offers:
                self.reconciler.request_dismiss(folder=offer.folder_id, device=offer.offered_by)
        teamstore.append_event(
            self.store,
            SyncEvent(
                EventKind.OFFER_DISMISSED,
                self.clock(),
                device_id=device,
                detail={"folder": folder or ""},
            ),
        )

    # ------------------------------------------------------------------ views

    def _project_info(self, team: LocalTeam, key: str) -> protocol.ProjectInfo:
        record = team.record
        project = record.project(key) if record else None
        if project is None:
            raise _domain("not_found", f"no project {key}")
        sub = team.subscription(key)
        return protocol.ProjectInfo(
            key=key,
            identity=project.identity,
            label=project.label,
            state=project.state.value,
            include_todos=project.include_todos,
            include_plans=project.include_plans,
            subscription=sub.state.value if sub else None,
            direction=sub.direction.value if sub else None,
        )

    def _subscription_info(self, team: LocalTeam, sub: Subscription) -> protocol.SubscriptionInfo:
        record = team.record
        project = record.project(sub.project_key) if record else None
        return protocol.SubscriptionInfo(
            team_id=team.team_id,
            team_name=team.name,
            project_key=sub.project_key,
            project_identity=project.identity if project else "",
            state=sub.state.value,
            direction=sub.direction.value,
            changed_at=sub.changed_at,
        )

    def info(self, team: LocalTeam) -> protocol.TeamInfo:
        record = team.record
        me = self.port.device_id()
        peers = self.reconciler.peer_states()
        members = []
        if record is not None:
            for m in record.members:
                subs: dict[str, str] = {}
                if m.device_id == me:
                    subs = {
                        s.project_key: f"{s.state.value}/{s.direction.value}"
                        for s in team.subscriptions
                    }
                else:
                    peer = peers.get(folder_id(team.team_id, m.device_id))
                    if peer is not None and peer.state is not None:
                        subs = {
                            s.project_key: f"{s.state.value}/{s.direction.value}"
                            for s in peer.state.subscriptions
                        }
                members.append(
                    protocol.MemberInfo(
                        member_tag=m.member_tag,
                        user_id=m.user_id,
                        device_id=m.device_id,
                        state=m.state.value,
                        is_leader=m.device_id == team.leader_device,
                        is_me=m.device_id == me,
                        connected=None if m.device_id == me else self.port.connected(m.device_id),
                        subscriptions=subs,
                    )
                )
        projects = [self._project_info(team, p.key) for p in record.projects] if record else []
        return protocol.TeamInfo(
            team_id=team.team_id,
            name=team.name,
            role=team.role.value,
            phase=team.phase.value,
            state=record.state.value if record else "unknown",
            leader_tag=team.leader_tag,
            leader_device=team.leader_device,
            members=members,
            projects=projects,
            own_folder=folder_id(team.team_id, me) if me else None,
        )


def register(router: Router, svc: Services) -> None:
    teams = svc.teams

    @router.method("identity.init")
    def init(params: protocol.InitParams, call: Call) -> protocol.IdentityInfo:
        return teams.init(params.user, params.machine)

    @router.method("identity.get")
    def whoami(params: protocol.NoParams, call: Call) -> protocol.IdentityInfo:
        return teams.identity_info()

    @router.method("pair.code")
    def pair_code(params: protocol.NoParams, call: Call) -> protocol.PairCode:
        return teams.pair_code()

    @router.method("pair.decode")
    def pair_decode(params: protocol.DecodeParams, call: Call) -> protocol.DecodedCode:
        return teams.decode(params.code)

    @router.method("team.create")
    def create(params: protocol.CreateTeamParams, call: Call) -> protocol.TeamInfo:
        return teams.create(params.name)

    @router.method("team.list")
    def list_(params: protocol.NoParams, call: Call) -> protocol.TeamList:
        return protocol.TeamList(teams=[teams.info(t) for t in teamstore.teams(teams.store)])

    @router.method("team.get")
    def get(params: protocol.TeamRef, call: Call) -> protocol.TeamInfo:
        return teams.info(teams.resolve(params.team))

    @router.method("team.addMember")
    def add(params: protocol.AddMemberParams, call: Call) -> protocol.AddedMember:
        return teams.add_member(params.team, params.code)

    @router.method("team.join")
    def join(params: protocol.JoinParams, call: Call) -> protocol.TeamInfo:
        return teams.join(params.invite)

    @router.method("team.removeMember")
    def remove(params: protocol.RemoveMemberParams, call: Call) -> protocol.TeamInfo:
        return teams.remove_member(params.team, params.member)

    @router.method("team.leave")
    def leave(params: protocol.TeamRef, call: Call) -> protocol.TeamInfo:
        return teams.leave(params.team)

    @router.method("team.dissolve")
    def dissolve(params: protocol.TeamRef, call: Call) -> protocol.TeamInfo:
        return teams.dissolve(params.team)

    @router.method("team.activity")
    def activity(params: protocol.ActivityParams, call: Call) -> protocol.Activity:
        if not 0 < params.limit <= 1000:
            raise _domain("invalid_argument", "limit must be 1-1000", "limit")
        team_id = teams.resolve(params.team).team_id if params.team else None
        rows = teamstore.events(
            teams.store, team_id=team_id, limit=params.limit, before=params.before
        )
        return protocol.Activity(
            events=[
                protocol.SyncEventInfo(
                    id=n,
                    time=e.time,
                    kind=e.kind.value,
                    team_id=e.team_id,
                    member_tag=e.member_tag,
                    device_id=e.device_id,
                    project_key=e.project_key,
                    detail=e.detail,
                )
                for n, e in rows
            ]
        )

    @router.method("project.share")
    def share(params: protocol.ShareParams, call: Call) -> protocol.ProjectInfo:
        return teams.share(params.team, params.project, params.todos, params.plans)

    @router.method("project.unshare")
    def unshare(params: protocol.UnshareParams, call: Call) -> protocol.ProjectInfo:
        return teams.unshare(params.team, params.project)

    @router.method("project.list")
    def projects(params: protocol.ProjectListParams, call: Call) -> protocol.ProjectList:
        chosen = [teams.resolve(params.team)] if params.team else teamstore.teams(teams.store)
        result, ids = [], []
        for team in chosen:
            if team.record is None:
                continue
            for p in team.record.projects:
                result.append(teams._project_info(team, p.key))
                ids.append(team.team_id)
        return protocol.ProjectList(projects=result, team_ids=ids)

    @router.method("subscription.list")
    def subscriptions(
        params: protocol.SubscriptionListParams, call: Call
    ) -> protocol.SubscriptionList:
        chosen = [teams.resolve(params.team)] if params.team else teamstore.teams(teams.store)
        return protocol.SubscriptionList(
            subscriptions=[teams._subscription_info(t, s) for t in chosen for s in t.subscriptions]
        )

    def direction(value: str) -> Direction:
        try:
            return Direction(value)
        except ValueError:
            raise _domain(
                "invalid_argument", "direction is send, receive or both", "direction"
            ) from None

    @router.method("subscription.accept")
    def accept(params: protocol.AcceptParams, call: Call) -> protocol.SubscriptionInfo:
        d = direction(params.direction)
        return teams.change(params.team, params.project, lambda s, now: s.accept(d, now))

    @router.method("subscription.pause")
    def pause(params: protocol.SubscriptionRef, call: Call) -> protocol.SubscriptionInfo:
        return teams.change(
            params.team, params.project, lambda s, now: s.to(SubscriptionState.PAUSED, now)
        )

    @router.method("subscription.resume")
    def resume(params: protocol.SubscriptionRef, call: Call) -> protocol.SubscriptionInfo:
        def how(s: Subscription, now: datetime) -> Subscription:
            if s.state is not SubscriptionState.PAUSED:
                raise _domain(
                    "invalid_transition", f"only a paused subscription resumes ({s.state.value})"
                )
            return s.to(SubscriptionState.ACCEPTED, now)

        return teams.change(params.team, params.project, how)

    @router.method("subscription.decline")
    def decline(params: protocol.DeclineParams, call: Call) -> protocol.SubscriptionInfo:
        return teams.change(
            params.team,
            params.project,
            lambda s, now: s.to(SubscriptionState.DECLINED, now),
            purge=params.purge,
        )

    @router.method("subscription.reopen")
    def reopen(params: protocol.SubscriptionRef, call: Call) -> protocol.SubscriptionInfo:
        return teams.change(
            params.team, params.project, lambda s, now: s.to(SubscriptionState.OFFERED, now)
        )

    @router.method("subscription.setDirection")
    def set_direction(params: protocol.AcceptParams, call: Call) -> protocol.SubscriptionInfo:
        d = direction(params.direction)
        return teams.change(params.team, params.project, lambda s, now: s.with_direction(d, now))

    @router.method("pending.accept")
    def pending_accept(params: protocol.PendingAcceptParams, call: Call) -> protocol.Ok:
        teams.pending_accept(params.device, params.folder)
        return protocol.Ok()

    @router.method("pending.dismiss")
    def pending_dismiss(params: protocol.PendingDismissParams, call: Call) -> protocol.Ok:
        teams.pending_dismiss(params.device, params.folder)
        return protocol.Ok()

    @router.method("sync.status")
    def sync_status(params: protocol.NoParams, call: Call) -> protocol.SyncStatus:
        r = teams.reconciler
        last = r.status.last
        want = r.status.desired
        now = teams.clock()
        return protocol.SyncStatus(
            state=r.status.state,
            cycles=r.status.cycles,
            last_cycle_at=last.started_at if last else None,
            last_cycle_ms=round(last.duration_ms, 2) if last else None,
            last_actions=last.actions if last else 0,
            failures=[
                protocol.SyncFailure(
                    action=f.action,
                    target=f.key,
                    error=f.error,
                    attempts=f.attempts,
                    next_retry_s=wait,
                )
                for f, wait in r.executor.failure_summaries(now)
            ],
            teams=r.status.teams,
            folders=len(want.folders) if want else 0,
            devices=len(want.devices) if want else 0,
            projects=shared.project_flows(
                teamstore.teams(svc.store),
                teams.port.device_id(),
                svc.store,
                svc.index.store,
                completion,
            ),
        )

    def completion(folder: str, device: str) -> float | None:
        snap = svc.syncthing.stream.snapshot
        state = snap.folders.get(folder) if snap is not None else None
        found = state.completion.get(device) if state is not None else None
        return None if found is None else round(found.completion, 1)
