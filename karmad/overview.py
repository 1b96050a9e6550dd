"""`daemon.overview`: the member's situation at a glance, from views that already exist.

Nothing here reads the store or Syncthing itself: the handler hands over the same views
`team.list`, `pending.list`, `index.status` and `session.list` answer with, and these
functions only select and phrase. What waits for the member is said in words, each with
the command that deals with it, because a list of states does not tell a person that
nothing will arrive until the leader accepts their own project.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from karmad import protocol

STANDING = {"member": "active"}
"""The phase a joined member is in reads `active` to people."""

FAILING = ("error", "failed", "not-installed", "unreachable")
"""Subsystem states that need the member to act."""


def standing(team: protocol.TeamInfo) -> str:
    if team.state not in ("active", "unknown"):
        return team.state
    return STANDING.get(team.phase, team.phase)


def teams(infos: list[protocol.TeamInfo]) -> list[protocol.OverviewTeam]:
    return [
        protocol.OverviewTeam(
            team_id=t.team_id,
            name=t.name,
            role=t.role,
            state=standing(t),
            members=sum(1 for m in t.members if m.state == "active"),
            projects=sum(1 for p in t.projects if p.state == "shared"),
        )
        for t in infos
    ]


def peers(
    infos: list[protocol.TeamInfo], last_seen: Mapping[str, datetime | None]
) -> list[protocol.OverviewPeer]:
    """Every teammate's device once, connected ones first, then by when last seen."""
    found: dict[str, protocol.OverviewPeer] = {}
    for t in infos:
        if standing(t) not in ("active", "joining"):
            continue
        for m in t.members:
            if m.is_me or m.state == "removed":
                continue
            peer = found.get(m.device_id)
            if peer is None:
                peer = found[m.device_id] = protocol.OverviewPeer(
                    member_tag=m.member_tag,
                    device_id=m.device_id,
                    connected=m.connected,
                    last_seen=last_seen.get(m.device_id),
                )
            if t.name not in peer.teams:
                peer.teams.append(t.name)
    return sorted(
        found.values(),
        key=lambda p: (
            not p.connected,
            -(p.last_seen.timestamp() if p.last_seen else 0.0),
            p.member_tag,
        ),
    )


def _accepted(stance: str | None) -> bool:
    return bool(stance) and str(stance).split("/", 1)[0] == "accepted"


def attention(
    identity: protocol.IdentityInfo,
    infos: list[protocol.TeamInfo],
    pending: protocol.PendingList | None,
    subsystems: Mapping[str, protocol.SubsystemState],
) -> list[protocol.Attention]:
    out: list[protocol.Attention] = []
    if not identity.initialised:
        out.append(
            protocol.Attention(
                kind="not_initialised",
                message="this machine has no user name yet, so it cannot pair or join a team",
                fix="karmactl init --user NAME",
            )
        )
    for name, sub in sorted(subsystems.items()):
        if sub.state in FAILING:
            detail = f": {sub.detail}" if sub.detail else ""
            out.append(
                protocol.Attention(
                    kind="subsystem",
                    message=f"{name} is {sub.state}{detail}",
                    fix="karmactl doctor",
                )
            )
    for t in infos:
        out.extend(_team_attention(t))
    if pending is not None:
        devices = len(pending.devices)
        folders = sum(1 for f in pending.folders if not f.managed)
        parts = [
            f"{n} {what}{'s' if n > 1 else ''}"
            for n, what in ((devices, "device"), (folders, "folder"))
            if n
        ]
        if parts:
            out.append(
                protocol.Attention(
                    kind="pending",
                    message=f"Syncthing holds {' and '.join(parts)} offered by others that no "
                    "team of yours explains",
                    fix="karmactl pending",
                )
            )
    return out


def _team_attention(t: protocol.TeamInfo) -> list[protocol.Attention]:
    state = standing(t)
    if state == "joining":
        return [
            protocol.Attention(
                kind="joining",
                team=t.name,
                message=f"joining {t.name}: it completes when {t.leader_tag} (its leader) is "
                "reachable",
                fix="karmactl devices",
            )
        ]
    if state != "active":
        return []
    out: list[protocol.Attention] = []
    leader = next((m for m in t.members if m.is_leader), None)
    for p in t.projects:
        if p.state != "shared":
            continue
        if leader is not None and leader.is_me and not _accepted(p.subscription):
            out.append(
                protocol.Attention(
                    kind="sharer_not_accepted",
                    team=t.name,
                    project=p.identity,
                    message=f"you shared {p.identity} with {t.name} but have not accepted it "
                    "yourself: none of your sessions of it are sent, and you receive none, "
                    "until you do",
                    fix=f"karmactl sub accept {t.name} {p.identity}",
                )
            )
            continue
        if p.subscription == "offered":
            out.append(
                protocol.Attention(
                    kind="offer",
                    team=t.name,
                    project=p.identity,
                    message=f"{t.name} shares {p.identity}; you have not accepted or declined it",
                    fix=f"karmactl sub accept {t.name} {p.identity}  (or: sub decline)",
                )
            )
        stance = leader.subscriptions.get(p.key) if leader is not None else None
        if leader is not None and not leader.is_me and stance and not _accepted(stance):
            out.append(
                protocol.Attention(
                    kind="sharer_not_accepted",
                    team=t.name,
                    project=p.identity,
                    message=f"{leader.member_tag} shared {p.identity} with {t.name} but has "
                    f"not accepted it ({stance.split('/', 1)[0]}): nothing of it travels "
                    f"between you and {leader.member_tag} until they do",
                )
            )
    return out
