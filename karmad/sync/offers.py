"""Offers Syncthing holds for the user: devices asking to connect, folders offered.

Karmad accepts an offer by itself only when the replicated state says it should exist;
everything else waits here for the user. Accepting a device makes it a trusted leader
(the teams it leads that list us are joined); dismissing makes Syncthing forget the
offer, at the reconciler's next cycle. A device is named by what our own records say of
it, never by the name it gives itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from karmad import deviceid
from karmad.domain import DomainError, EventKind, SyncEvent
from karmad.sync import teamstore
from karmad.sync.identity import IdentityService
from karmad.sync.model import TrustedLeader
from karmad.sync.plane import ControlPlane


def _domain(reason: str, detail: str, field: str = "") -> DomainError:
    return DomainError(reason, detail, field=field)


@dataclass
class OfferService(ControlPlane):
    identity: IdentityService

    def pending_accept(self, device: str | None, folder: str | None) -> None:
        if (device is None) == (folder is None):
            raise _domain("invalid_argument", "give exactly one of device or folder")
        self.identity.current()
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
            teamstore.append_event(
                self.store,
                SyncEvent(
                    EventKind.OFFER_ACCEPTED,
                    now,
                    None,
                    name,
                    device,
                    detail={"via": "pending.accept"},
                ),
            )
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
