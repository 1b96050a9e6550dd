"""The team control plane's application service: teams, members, shared projects and
subscriptions, as the RPC handlers (`karmad.api`) use them.

Every change validates, changes our records in one store transaction, records the audit
event, wakes the reconciler and returns; the reconciler makes Syncthing follow. Nothing
here talks to Syncthing: what is needed of it (our device ID, connection states, pending
offers) comes from the Syncthing subsystem's snapshot through the reconciler's port.
The rules themselves are the domain's (`karmad.domain`); answers are built by
`karmad.sync.views`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from karmad import codes, deviceid, projectref, protocol
from karmad.domain import (
    DEPARTING,
    Direction,
    DomainError,
    EventKind,
    Phase,
    ProjectState,
    Subscription,
    SubscriptionState,
    SyncEvent,
    Team,
    new_team,
    project_key,
    validate_team_name,
)
from karmad.sync import keeperstore, teamstore, views
from karmad.sync.identity import IdentityService
from karmad.sync.model import LocalTeam, Role, TeamKeeper
from karmad.sync.plane import ControlPlane


def _domain(reason: str, detail: str, field: str = "") -> DomainError:
    return DomainError(reason, detail, field=field)


def _still_shared(team: LocalTeam, key: str) -> bool:
    """Whether a project is (as far as we know) still shared: an unshared one is no longer
    offered to anyone, whatever our stance on it was."""
    project = team.record.project(key) if team.record else None
    return project is None or project.state is ProjectState.SHARED


def new_team_id() -> str:
    return base64.b32encode(os.urandom(16)).decode().rstrip("=").lower()


@dataclass
class TeamService(ControlPlane):
    """Everything a member does to its teams; the RPC handlers only delegate here."""

    identity: IdentityService
    indexed_projects: Callable[[], Iterable[str]] = field(default=lambda: ())
    """Identities of the projects this machine's index has sessions of."""

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

    def list_teams(self) -> protocol.TeamList:
        return protocol.TeamList(teams=[self.info(t) for t in teamstore.teams(self.store)])

    def get(self, ref: str) -> protocol.TeamInfo:
        return self.info(self.resolve(ref))

    def activity(self, ref: str | None, limit: int, before: int | None) -> protocol.Activity:
        if not 0 < limit <= 1000:
            raise _domain("invalid_argument", "limit must be 1-1000", "limit")
        team_id = self.resolve(ref).team_id if ref else None
        rows = teamstore.events(self.store, team_id=team_id, limit=limit, before=before)
        return protocol.Activity(events=[views.event_info(n, e) for n, e in rows])

    def create(self, name: str) -> protocol.TeamInfo:
        identity = self.identity.current()
        wanted = validate_team_name(name)
        for other in teamstore.teams(self.store):
            if other.name.casefold() == wanted.casefold():
                whose = "you lead it" if other.role is Role.LEADER else f"led by {other.leader_tag}"
                raise _domain(
                    "already_exists",
                    f"you are already in a team named {other.name} ({other.team_id[:8]}, "
                    f"{whose}); choose another name",
                    "name",
                )
        device = self.identity.device()
        now = self.clock()
        record = new_team(
            new_team_id(),
            name,
            identity.member_tag,
            device,
            now,
            self.port.advertised_addresses(),
        )
        local = LocalTeam.led(record, now)
        with self.store.transaction():
            teamstore.insert_team(self.store, local, now)
            self._audit(EventKind.TEAM_CREATED, local, identity.member_tag, device, name=name)
        self.reconciler.wake()
        return self.info(self.resolve(record.team_id))

    def add_member(self, ref: str, code_text: str) -> protocol.AddedMember:
        identity = self.identity.current()
        team, record = self.leader_team(ref)
        member = codes.decode_member(code_text)
        if member.device_id == team.leader_device:
            raise _domain("invalid_argument", "that is this machine's own pairing code", "code")
        now = self.clock()
        updated = record.add_member(member.member_tag, member.device_id, now, member.addresses)
        changed = updated is not record
        if changed:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                self._audit(EventKind.MEMBER_ADDED, team, member.member_tag, member.device_id)
            self.reconciler.wake()
        keeper = keeperstore.invite_keeper(self.store, team.team_id, member.device_id)
        if keeper is not None:
            self.reconciler.wake()  # the join secret goes into the key file
        invite = codes.encode_invite(
            codes.InviteCode(
                team.team_id,
                record.name,
                identity.member_tag,
                team.leader_device,
                self.port.advertised_addresses(),
                keeper,
            )
        )
        info = self.info(self.resolve(team.team_id))
        added = next(m for m in info.members if m.device_id == member.device_id)
        return protocol.AddedMember(team=info, member=added, invite=invite, changed=changed)

    def join(self, invite_text: str) -> protocol.TeamInfo:
        self.identity.current()
        device = self.identity.device()
        invite = codes.decode_invite(invite_text)
        existing = teamstore.team(self.store, invite.team_id)
        if existing is not None and existing.phase is not Phase.GONE:
            return self.info(existing, changed=False)
        if invite.leader_device == device:
            raise _domain("invalid_argument", "this machine leads that team already", "invite")
        if existing is not None:
            raise _domain(
                "invalid_transition",
                f"this machine left {invite.team_name}, and a device that left or was removed "
                "cannot rejoin the same team: ask its leader for a new team",
                "invite",
            )
        now = self.clock()
        local = LocalTeam.joining(
            invite.team_id,
            invite.team_name,
            (invite.leader_device, invite.leader_tag),
            now,
            leader_addresses=invite.addresses,
        )
        with self.store.transaction():
            teamstore.insert_team(self.store, local, now)
            if invite.keeper is not None:
                keeperstore.put(
                    self.store,
                    TeamKeeper(
                        invite.team_id,
                        invite.keeper.device_id,
                        invite.keeper.addresses,
                        now,
                        join_secret=invite.keeper.join_secret,
                    ),
                )
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
        return self.info(self.resolve(team.team_id), changed=updated is not record)

    def leave(self, ref: str) -> protocol.TeamInfo:
        team = self.resolve(ref)
        if team.role is Role.LEADER:
            raise _domain(
                "invalid_transition", "the leader cannot leave its team; dissolve it instead"
            )
        now = self.clock()
        if team.phase in DEPARTING:
            return self.info(team, changed=False)
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
        return self.info(self.resolve(team.team_id), changed=updated is not record)

    # ------------------------------------------------------------------ projects

    def known_projects(self, team: LocalTeam | None = None) -> list[projectref.Known]:
        """What a short project name may stand for: the projects `team` shares now, or
        else those of every team and every project this machine has sessions of."""
        chosen = [team] if team is not None else teamstore.teams(self.store)
        known = [
            projectref.Known(p.identity, p.label)
            for t in chosen
            for p in (t.record.projects if t.record else ())
            if team is None or p.state is ProjectState.SHARED
        ]
        if team is None:
            known += [projectref.Known(i, projectref.label_of(i)) for i in self.indexed_projects()]
        return known

    def name_project(self, project: str, team: LocalTeam | None = None) -> projectref.Named:
        """The one rule naming a project, for every method that takes one (`projectref`)."""
        return projectref.resolve(project, self.known_projects(team))

    def project_key_of(self, team: LocalTeam, ref: str) -> str:
        return project_key(self.name_project(ref, team).identity)

    def share(self, ref: str, project: str, todos: bool, plans: bool) -> protocol.ProjectInfo:
        team, record = self.leader_team(ref)
        named = self.name_project(project)
        if named.local_folder:
            raise _domain(
                "invalid_argument",
                f"{named.identity} has no git remote: its sessions could not be matched on "
                "any other machine, and sharing it would show every teammate this path; "
                "add a remote (`git remote add origin URL`) and share that",
                "project",
            )
        identity = named.identity
        now = self.clock()
        key = project_key(identity)
        updated = record.share(identity, projectref.label_of(identity), now)
        updated = updated.set_project_options(key, todos=todos, plans=plans)
        changed = updated != record
        if changed:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                if team.subscription(key) is None:
                    teamstore.put_subscription(
                        self.store, Subscription(team.team_id, key, changed_at=now)
                    )
                self._audit(EventKind.PROJECT_SHARED, team, project=key, identity=identity)
            self.reconciler.wake()
        info = self._project_info(self.resolve(team.team_id), key)
        info.changed = changed
        return info

    def project(self, ref: str, project: str) -> protocol.ProjectInfo:
        team = self.resolve(ref)
        key = self.project_key_of(team, project)
        return self._project_info(team, key)

    def unshare(self, ref: str, project: str) -> protocol.ProjectInfo:
        team, record = self.leader_team(ref)
        key = self.project_key_of(team, project)
        updated = record.unshare(key, self.clock())
        if updated is not record:
            with self.store.transaction():
                teamstore.set_record(self.store, team.team_id, updated)
                self._audit(EventKind.PROJECT_UNSHARED, team, project=key)
            self.reconciler.wake()
        info = self._project_info(self.resolve(team.team_id), key)
        info.changed = updated is not record
        return info

    def projects(self, ref: str | None) -> protocol.ProjectList:
        chosen = [self.resolve(ref)] if ref else teamstore.teams(self.store)
        result, ids = [], []
        for team in chosen:
            for p in team.record.projects if team.record else ():
                result.append(self._project_info(team, p.key))
                ids.append(team.team_id)
        return protocol.ProjectList(projects=result, team_ids=ids)

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

    def subscriptions(self, ref: str | None) -> protocol.SubscriptionList:
        chosen = [self.resolve(ref)] if ref else teamstore.teams(self.store)
        return protocol.SubscriptionList(
            subscriptions=[
                views.subscription_info(t, s)
                for t in chosen
                for s in t.subscriptions
                if _still_shared(t, s.project_key)
            ]
        )

    def accept(self, ref: str, project: str, direction: Direction) -> protocol.SubscriptionInfo:
        team, sub = self._subscription(ref, project)
        if sub.state is SubscriptionState.ACCEPTED and sub.direction is not direction:
            shared = team.record.project(sub.project_key) if team.record else None
            name = shared.identity if shared else sub.project_key
            raise _domain(
                "invalid_transition",
                f"{name} is already accepted in {team.name} ({sub.direction.value}); to "
                f"{direction.value} instead, change the direction: "
                f"karmactl sub direction {team.name} {name} -d {direction.value}",
                "direction",
            )
        return self._change(ref, project, lambda s, now: s.accept(direction, now))

    def pause(self, ref: str, project: str) -> protocol.SubscriptionInfo:
        return self._change(ref, project, lambda s, now: s.to(SubscriptionState.PAUSED, now))

    def resume(self, ref: str, project: str) -> protocol.SubscriptionInfo:
        return self._change(ref, project, lambda s, now: s.resume(now))

    def decline(self, ref: str, project: str, *, purge: bool) -> protocol.SubscriptionInfo:
        def decline(s: Subscription, now: datetime) -> Subscription:
            return s.to(SubscriptionState.DECLINED, now)

        return self._change(ref, project, decline, purge=purge)

    def reopen(self, ref: str, project: str) -> protocol.SubscriptionInfo:
        return self._change(ref, project, lambda s, now: s.to(SubscriptionState.OFFERED, now))

    def set_direction(
        self, ref: str, project: str, direction: Direction
    ) -> protocol.SubscriptionInfo:
        return self._change(ref, project, lambda s, now: s.with_direction(direction, now))

    def _change(
        self,
        ref: str,
        project: str,
        how: Callable[[Subscription, datetime], Subscription],
        purge: bool = False,
    ) -> protocol.SubscriptionInfo:
        team, sub = self._subscription(ref, project)
        updated = how(sub, self.clock())
        changed = updated != sub
        if changed or team.subscription(sub.project_key) is None:
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
            self.reconciler.wake()
        if purge:
            # Asked again on a declined project: what was received is deleted all the same.
            self.reconciler.request_purge(team.team_id, sub.project_key)
            self.reconciler.wake()
        info = views.subscription_info(self.resolve(team.team_id), updated)
        info.changed = changed
        return info

    # ------------------------------------------------------------------ views

    def info(self, team: LocalTeam, *, changed: bool = True) -> protocol.TeamInfo:
        info = views.team_info(
            team, self.port.device_id(), self.reconciler.peer_states(), self.port.connected
        )
        info.changed = changed
        return info

    def _project_info(self, team: LocalTeam, key: str) -> protocol.ProjectInfo:
        info = views.project_info(team, key)
        if info is None:
            raise _domain("not_found", f"no project {key}")
        return info
