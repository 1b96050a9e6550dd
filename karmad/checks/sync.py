"""Team sync: does this machine have an identity, does reconciliation work, is any team
stuck half-way through joining or leaving?

Everything here is read from the store and from the reconciler's last cycle (the
reconciler reports each cycle's outcome as it goes), never by running a cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from karmad import deviceid
from karmad.doctor import Doctor, duration, fail, listed, ok, warn
from karmad.domain import DEPARTING, Phase
from karmad.protocol import DoctorCheck
from karmad.services import Services
from karmad.sync import teamstore
from karmad.sync.executor import Failure
from karmad.sync.model import LocalTeam, Role
from karmad.sync.reconciler import ReconcilerState

SLOW_PHASES = frozenset({Phase.JOINING}) | DEPARTING
"""Phases that end when another machine answers; lingering in one means it does not."""


def _ago(delta: timedelta) -> str:
    return duration(delta.total_seconds())


def identity_findings(identity: teamstore.Identity | None, device: str | None) -> list[DoctorCheck]:
    name = "sync.identity"
    if identity is None:
        return [
            warn(
                name,
                "this machine has no member identity yet, so it can neither create nor join a team",
                "`karmactl init --user NAME` (your user name, the same on all your machines)",
            )
        ]
    on = f" on device {deviceid.short(device)}" if device else ""
    return [ok(name, f"this machine is {identity.member_tag}{on}")]


def reconciler_findings(
    state: ReconcilerState,
    failures: list[tuple[Failure, float]],
    now: datetime,
    *,
    syncthing_off: bool,
) -> list[DoctorCheck]:
    name = "sync.reconciler"
    if syncthing_off:
        return [ok(name, 'no team sync: Syncthing is off (syncthing.mode = "off")')]
    if failures:
        described = [
            f"{f.action} {f.key}: {f.error} (attempt {f.attempts}, next in {wait:.0f}s)"
            for f, wait in failures
        ]
        return [
            fail(
                name,
                f"{len(failures)} change(s) to Syncthing keep failing: {listed(described)}",
                "each error names the cause (a folder directory karmad cannot create, "
                "Syncthing refusing a change); fix it and karmad retries by itself "
                "(`karmactl sync status` shows the retries, karmad's log the details)",
            )
        ]
    if state.state == "not-initialised":
        return [ok(name, "nothing to reconcile until this machine has an identity")]
    if state.state == "waiting":
        return [
            warn(
                name,
                "team changes wait for Syncthing (see syncthing.reachable)",
                "once Syncthing is reachable, reconciliation resumes by itself",
            )
        ]
    last = state.last
    if last is None:
        return [ok(name, f"reconciler {state.state}, no cycle yet")]
    return [
        ok(
            name,
            f"{state.state}: {state.teams} team(s); last cycle {_ago(now - last.started_at)} "
            f"ago took {last.duration_ms:.0f} ms",
        )
    ]


def _phase_text(team: LocalTeam, age: str) -> tuple[str, str]:
    """What the team waits for, and what the user can do about it."""
    leader = team.leader_tag or deviceid.short(team.leader_device)
    if team.phase is Phase.JOINING:
        return (
            f"{team.name}: joining for {age}, still waiting for the roster of its leader {leader}",
            f"the leader's machine must be online and reachable (`karmactl devices` shows "
            f"whether {leader} connects); to give up, `karmactl team leave {team.name}`",
        )
    if team.phase is Phase.LEAVING:
        return (
            f"{team.name}: leaving for {age}, the leader {leader} has not seen it yet",
            "the leader's machine must come online once; otherwise the team is torn down "
            "when teams.removal_grace_s has passed",
        )
    if team.phase is Phase.REMOVED:
        return (
            f"{team.name}: removed by {leader} {age} ago, the acknowledgement has not "
            "reached the leader",
            "the leader's machine must come online once; otherwise the team is torn down "
            "when teams.removal_grace_s has passed",
        )
    if team.role is Role.LEADER:
        return (
            f"{team.name}: dissolved {age} ago, not every member has acknowledged",
            "the members' machines must come online once (`karmactl team show "
            f"{team.name}`); otherwise the team is torn down when teams.removal_grace_s has "
            "passed",
        )
    return (
        f"{team.name}: dissolved by {leader} {age} ago, the acknowledgement has not "
        "reached the leader",
        "the leader's machine must come online once; otherwise the team is torn down when "
        "teams.removal_grace_s has passed",
    )


def team_findings(
    teams: list[LocalTeam], now: datetime, warn_after: timedelta
) -> list[DoctorCheck]:
    name = "sync.teams"
    stuck: list[tuple[str, str]] = []
    for team in teams:
        if team.phase not in SLOW_PHASES:
            continue
        age = now - team.phase_since
        if age > warn_after:
            stuck.append(_phase_text(team, _ago(age)))
    if stuck:
        return [
            warn(
                name,
                f"{len(stuck)} team(s) stuck for more than {_ago(warn_after)}: "
                + listed([text for text, _ in stuck]),
                "; ".join(dict.fromkeys(fix for _, fix in stuck)),
            )
        ]
    active = sum(1 for t in teams if t.phase is Phase.MEMBER)
    changing = len(teams) - active
    text = f"{active} team(s)"
    if changing:
        text += f", {changing} changing membership"
    return [ok(name, text if teams else "this machine is in no team")]


def register(doctor: Doctor, svc: Services) -> None:
    syncthing_off = svc.syncthing.mode == "off"
    warn_after = timedelta(hours=svc.config.doctor.team_phase_warn_hours)

    async def identity() -> list[DoctorCheck]:
        if syncthing_off:
            return []  # sync.reconciler says that there is no team sync
        return identity_findings(teamstore.get_identity(svc.store), svc.teams.port.device_id())

    async def reconciler() -> list[DoctorCheck]:
        r = svc.teams.reconciler
        now = svc.clock()
        failures = r.executor.failure_summaries(now)
        return reconciler_findings(r.status, failures, now, syncthing_off=syncthing_off)

    async def teams() -> list[DoctorCheck]:
        if syncthing_off:
            return []
        return team_findings(teamstore.teams(svc.store), svc.clock(), warn_after)

    doctor.register("sync.identity", identity)
    doctor.register("sync.reconciler", reconciler)
    doctor.register("sync.teams", teams)
