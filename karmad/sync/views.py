"""What clients see of teams, projects, subscriptions and the audit trail.

Pure functions from the control plane's values to the protocol's result types, so the
team service and the reconciler answer with the same shapes and never build them twice.
"""

from __future__ import annotations

from collections.abc import Callable

from karmad import protocol
from karmad.domain import Subscription, SyncEvent, folder_id
from karmad.sync.model import LocalTeam, PeerState
from karmad.sync.statefile import WireSubscription


def _stances(subs: list[Subscription] | list[WireSubscription]) -> dict[str, str]:
    return {s.project_key: f"{s.state.value}/{s.direction.value}" for s in subs}


def project_info(team: LocalTeam, key: str) -> protocol.ProjectInfo | None:
    """A project of the team's record with this member's stance on it; None if unknown."""
    project = team.record.project(key) if team.record else None
    if project is None:
        return None
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


def subscription_info(team: LocalTeam, sub: Subscription) -> protocol.SubscriptionInfo:
    project = team.record.project(sub.project_key) if team.record else None
    return protocol.SubscriptionInfo(
        team_id=team.team_id,
        team_name=team.name,
        project_key=sub.project_key,
        project_identity=project.identity if project else "",
        state=sub.state.value,
        direction=sub.direction.value,
        changed_at=sub.changed_at,
    )


def team_info(
    team: LocalTeam,
    me: str | None,
    peers: dict[str, PeerState],
    connected: Callable[[str], bool | None],
) -> protocol.TeamInfo:
    """`me`: our device ID (None while unknown); `peers`: teammates' validated state
    files by folder (their stances); `connected`: whether a device is connected now."""
    record = team.record
    members = []
    for m in record.members if record else ():
        if m.device_id == me:
            subs = _stances(list(team.subscriptions))
        else:
            peer = peers.get(folder_id(team.team_id, m.device_id))
            subs = _stances(peer.state.subscriptions) if peer and peer.state else {}
        members.append(
            protocol.MemberInfo(
                member_tag=m.member_tag,
                user_id=m.user_id,
                device_id=m.device_id,
                state=m.state.value,
                is_leader=m.device_id == team.leader_device,
                is_me=m.device_id == me,
                connected=None if m.device_id == me else connected(m.device_id),
                subscriptions=subs,
            )
        )
    projects = [project_info(team, p.key) for p in record.projects] if record else []
    return protocol.TeamInfo(
        team_id=team.team_id,
        name=team.name,
        role=team.role.value,
        phase=team.phase.value,
        state=record.state.value if record else "unknown",
        leader_tag=team.leader_tag,
        leader_device=team.leader_device,
        members=members,
        projects=[p for p in projects if p is not None],
        own_folder=folder_id(team.team_id, me) if me else None,
    )


def event_info(number: int, event: SyncEvent) -> protocol.SyncEventInfo:
    return protocol.SyncEventInfo(
        id=number,
        time=event.time,
        kind=event.kind.value,
        team_id=event.team_id,
        member_tag=event.member_tag,
        device_id=event.device_id,
        project_key=event.project_key,
        detail=event.detail,
    )
