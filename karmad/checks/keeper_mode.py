"""Keeper mode: what `karmactl doctor` says about the teams a keeper serves."""

from __future__ import annotations

from karmad.doctor import Doctor, fail, ok, warn
from karmad.keeper import servedstore
from karmad.protocol import DoctorCheck
from karmad.services import KeeperServices


def register(doctor: Doctor, svc: KeeperServices) -> None:
    async def keeper() -> list[DoctorCheck]:
        findings: list[DoctorCheck] = []
        state = svc.keeper.status
        if state.state == "error":
            health = svc.health.get("keeper")
            findings.append(
                fail(
                    "keeper.reconciler",
                    f"the keeper's reconciler failed: {health.detail if health else '?'}",
                    "look at karmad's log (`karmactl events`), then restart karmad",
                )
            )
        elif state.failures:
            findings.append(
                warn(
                    "keeper.reconciler",
                    f"{len(state.failures)} change(s) to Syncthing failing: {state.failures[0]}",
                    "look at Syncthing's state (`karmactl syncthing`); karmad retries",
                )
            )
        rows = servedstore.served(svc.store)
        if not rows:
            findings.append(
                ok("keeper.served", "serving no team yet (`karmactl keeper serve CODE`)")
            )
        for row in rows:
            name = f"keeper.served.{row.folder_id}"
            leader = row.leader_device[:7]
            if row.problem:
                findings.append(
                    warn(
                        name,
                        f"team of leader {leader}: {row.problem}; the control file applied "
                        f"before (seq {row.control_seq}) stays in effect",
                        "ask the team's leader to check its keeper (`karmactl keeper status` "
                        "there)",
                    )
                )
            elif row.control is None:
                findings.append(
                    warn(
                        name,
                        f"team of leader {leader}: no control file received yet",
                        "the leader must be online once after `karmactl keeper serve`",
                    )
                )
            else:
                findings.append(
                    ok(name, f"team of leader {leader}: control file seq {row.control_seq}")
                )
        return findings

    doctor.register("keeper", keeper)
