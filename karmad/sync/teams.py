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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from karmad import codes, deviceid, gitremote, protocol
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
    is_project_key,
    new_team,
    project_key,
)
from karmad.sync import teamstore, views
from karmad.sync.identity import IdentityService
from karmad.sync.model import LocalTeam, Role
from karmad.sync.plane import ControlPlane


def _domain(reason: str, detail: str, field: str = "") -> DomainError:
    return DomainError(reason, detail, field=field)


def new_team_id() -> str:
    return base64.b32encode(os.urandom(16)).decode().rstrip("=").lower()


@dataclass
class TeamService(ControlPlane):
    """Everything a member does to its teams; the RPC handlers only delegate here."""

    identity: IdentityService

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
        self.identity.current()
        device = self.identity.device()
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
        local = LocalTeam.joining(
            invite.team_id,
            invite.team_name,
            (invite.leader_device, invite.leader_tag),
            now,
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
            subscriptions=[views.subscription_info(t, s) for t in chosen for s in t.subscriptions]
        )

    def accept(self, ref: str, project: str, direction: Direction) -> protocol.SubscriptionInfo:
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
        return views.subscription_info(self.resolve(team.team_id), updated)

    # ------------------------------------------------------------------ views

    def info(self, team: LocalTeam) -> protocol.TeamInfo:
        return views.team_info(
            team, self.port.device_id(), self.reconciler.peer_states(), self.port.connected
        )

    def _project_info(self, team: LocalTeam, key: str) -> protocol.ProjectInfo:
        info = views.project_info(team, key)
        if info is None:
            raise _domain("not_found", f"no project {key}")
        return info
