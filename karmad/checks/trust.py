"""Can this member sign what it publishes?

Members sign their state files and manifests with their Syncthing device key, and a
team with a keeper accepts nothing unsigned from its members (docs/keeper.md, 2.3). A
member that cannot sign still works in teams without a keeper, so this is a warning
that says why, not a failure.
"""

from __future__ import annotations

from karmad import deviceid
from karmad.doctor import Doctor, ok, warn
from karmad.protocol import DoctorCheck
from karmad.services import Services

NAME = "trust.key"

FIX = (
    "teams with a keeper need every member to sign with its Syncthing device key; in "
    "external mode set syncthing.home to the home of the Syncthing karmad is attached to "
    "(the directory with its cert.pem and key.pem), readable by karmad's user"
)


def register(doctor: Doctor, svc: Services) -> None:
    syncthing = svc.syncthing

    async def key() -> list[DoctorCheck]:
        if not syncthing.live:
            # Nothing shared (mode off) or Syncthing not there: syncthing.reachable says
            # so, once; without its device ID there is nothing to check the key against.
            return []
        found = syncthing.keys.current()
        if found is None:
            return [warn(NAME, f"this member cannot sign: {syncthing.keys.problem}", FIX)]
        return [
            ok(
                NAME,
                f"this member signs with the key of device {deviceid.short(found.device_id)} "
                f"({found.algorithm})",
            )
        ]

    doctor.register("trust", key)
