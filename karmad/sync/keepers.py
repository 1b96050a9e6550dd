"""`keeper.add`, `keeper.remove` and a member's `keeper.status` (docs/keeper.md 2.10).

The leader names a team's keeper with the keeper's code; the code it gets back is what
the keeper's operator confirms with (`karmactl keeper serve`), so both sides consent, as
with a member's join. The reconciler does the rest: a password epoch, the keeper's
device, the keeper folder and its signed files, every team folder listed with K.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from karmad import codes, protocol
from karmad.domain import DomainError, EventKind, SyncEvent, TeamState
from karmad.keeper.plan import keeper_folder_id
from karmad.sync import keeperstore, teamstore
from karmad.sync.model import LocalTeam, Role, TeamKeeper
from karmad.sync.plane import ControlPlane
from karmad.sync.teams import TeamService


def _domain(reason: str, detail: str, field: str = "") -> DomainError:
    return DomainError(reason, detail, field=field)


@dataclass
class KeeperService(ControlPlane):
    teams: TeamService

    def _serve_code(self, team: LocalTeam) -> str:
        return codes.encode_serve(
            codes.ServeCode(
                team.leader_device,
                keeper_folder_id(team.team_id),
                self.port.advertised_addresses(),
            )
        )

    def _audit(self, kind: EventKind, team: LocalTeam, device: str) -> None:
        teamstore.append_event(
            self.store,
            SyncEvent(kind, self.clock(), team.team_id, None, device, None, {}),
        )

    def add(self, ref: str, code_text: str) -> protocol.KeeperAdded:
        team, record = self.teams.leader_team(ref)
        code = codes.decode_keeper(code_text)
        if record.state is not TeamState.ACTIVE:
            raise _domain("invalid_transition", f"{team.name} is dissolved", "team")
        if code.device_id == team.leader_device:
            raise _domain("invalid_argument", "that is this machine's own device", "code")
        if record.member(code.device_id) is not None:
            raise _domain(
                "invalid_argument",
                "that device is in the team's roster: a member's device is trusted, a "
                "keeper never is; give the keeper a device of its own",
                "code",
            )
        current = keeperstore.keeper(self.store, team.team_id)
        changed = True
        if current is not None and current.removed_at is None:
            if current.device_id != code.device_id:
                raise _domain(
                    "conflict",
                    f"{team.name} has a keeper already ({current.device_id[:7]}): one keeper "
                    "per team; `karmactl keeper remove` it first",
                    "team",
                )
            changed = current.addresses != code.addresses
            if changed:
                keeperstore.put(self.store, replace(current, addresses=code.addresses))
        else:
            keeper = TeamKeeper(team.team_id, code.device_id, code.addresses, self.clock())
            if current is not None:
                # A keeper removed earlier and added again: the sequence numbers go on, so
                # the keeper never takes a new file for an old one.
                keeper = replace(
                    keeper,
                    control_seq=current.control_seq,
                    keys_seq=current.keys_seq,
                    epoch=current.epoch,
                    secret=current.secret,
                    holders=current.holders,
                )
            with self.store.transaction():
                keeperstore.put(self.store, keeper)
                self._audit(EventKind.KEEPER_ADDED, team, code.device_id)
        if changed:
            self.reconciler.wake()
        return protocol.KeeperAdded(
            team_id=team.team_id,
            team_name=team.name,
            keeper_device=code.device_id,
            serve_code=self._serve_code(team),
            changed=changed,
        )

    def remove(self, ref: str) -> protocol.KeeperRemoved:
        team, _ = self.teams.leader_team(ref)
        current = keeperstore.keeper(self.store, team.team_id)
        if current is None:
            raise _domain("not_found", f"{team.name} has no keeper", "team")
        if current.removed_at is not None:
            return protocol.KeeperRemoved(
                team_id=team.team_id, keeper_device=current.device_id, changed=False
            )
        with self.store.transaction():
            keeperstore.put(self.store, replace(current, removed_at=self.clock()))
            self._audit(EventKind.KEEPER_REMOVED, team, current.device_id)
        self.reconciler.wake()
        return protocol.KeeperRemoved(team_id=team.team_id, keeper_device=current.device_id)

    def status(self, now: datetime) -> protocol.KeeperStatus:
        views: list[protocol.KeeperTeamView] = []
        stored = keeperstore.keepers(self.store)
        desired = self.reconciler.status.desired
        for team in teamstore.teams(self.store):
            k = stored.get(team.team_id)
            if k is None or k.removed_at is not None:
                continue
            folders: list[protocol.KeeperFolderView] = []
            # What this cycle decided (the folder list below is the last cycle's).
            listed = (
                k.epoch is not None
                and k.secret is not None
                and team.team_id not in self.reconciler.keepers.fallback
            )
            if desired is not None:
                for fid, folder in sorted(desired.folders.items()):
                    if folder.team_id != team.team_id or k.device_id not in folder.devices:
                        continue
                    encrypted = any(d == k.device_id for d, _ in folder.passwords)
                    held = self.port.peer_completion(fid, k.device_id)
                    folders.append(
                        protocol.KeeperFolderView(
                            folder_id=fid,
                            kind="content" if encrypted else "control",
                            owner=_owner_tag(team, folder.owner_device),
                            devices=len(folder.devices - {k.device_id}),
                            generation=k.epoch or 0 if encrypted else 0,
                            completion=None if held is None else held[0],
                            need_bytes=None if held is None else held[1],
                        )
                    )
            views.append(
                protocol.KeeperTeamView(
                    team_id=team.team_id,
                    team_name=team.name,
                    keeper_device=k.device_id,
                    role="leader" if team.role is Role.LEADER else "member",
                    epoch=k.epoch,
                    current_epoch=k.current_epoch,
                    listed=listed,
                    connected=self.port.connected(k.device_id),
                    last_seen=self.port.last_seen(k.device_id),
                    folders=folders,
                    problem=self.reconciler.keepers.problems.get(team.team_id),
                )
            )
        return protocol.KeeperStatus(mode="member", device_id=self.port.device_id(), teams=views)


def _owner_tag(team: LocalTeam, device: str) -> str | None:
    if team.record is not None:
        member = team.record.member(device)
        if member is not None:
            return member.member_tag
    return team.leader_tag if device == team.leader_device else None
