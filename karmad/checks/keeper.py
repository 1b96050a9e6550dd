"""Each team's keeper as this member sees it: does it hold the epoch, is K reachable?"""

from __future__ import annotations

from karmad import protocol
from karmad.doctor import Doctor, ok, warn
from karmad.protocol import DoctorCheck
from karmad.services import Services

NAME = "keeper.teams"


def findings(status: protocol.KeeperStatus) -> list[DoctorCheck]:
    if not status.teams:
        return [ok(NAME, "no team of this machine has a keeper")]
    checks: list[DoctorCheck] = []
    for team in status.teams:
        who = f"{team.team_name}'s keeper {team.keeper_device[:7]}"
        if team.epoch is None:
            checks.append(
                warn(
                    NAME,
                    f"{who}: this machine holds no key for it yet"
                    + (f" ({team.problem})" if team.problem else ""),
                    "the key arrives with the leader's key file, from the leader or the keeper; "
                    "if it never does, ask the leader to run `karmactl keeper status`",
                )
            )
        elif team.current_epoch is not None and team.epoch < team.current_epoch:
            checks.append(
                warn(
                    NAME,
                    f"{who}: the team moved to key {team.current_epoch}, this machine holds "
                    f"{team.epoch}" + (f" ({team.problem})" if team.problem else ""),
                    "a member removed from the team gets no new key; if this machine is still "
                    "a member, the leader's next key file seals it",
                )
            )
        elif not team.listed:
            checks.append(
                warn(
                    NAME,
                    f"{who} dropped this machine's connection: only its key file is "
                    "exchanged until this machine holds the team's current key",
                )
            )
        elif not team.connected:
            checks.append(
                warn(
                    NAME,
                    f"{who} is not connected: teammates' sessions arrive only while they "
                    "are online themselves",
                    "check that the keeper runs (`karmactl keeper status` on it) and that "
                    "its address is reachable",
                )
            )
        else:
            checks.append(ok(NAME, f"{who}: connected, key {team.epoch}"))
    return checks


def register(doctor: Doctor, svc: Services) -> None:
    async def teams() -> list[DoctorCheck]:
        # On the event loop: the store's connection belongs to it.
        return findings(svc.keepers.status(svc.clock()))

    doctor.register(NAME, teams)
