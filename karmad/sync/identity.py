"""Who this member is (user, machine, device) and the codes that introduce it.

The member's identity is a user name and a machine tag kept in the state store, bound to
the Syncthing device ID; a pairing code carries them (with the addresses to dial when
discovery is off) to a team leader, who answers with an invite code.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from karmad import codes, protocol, state_guard
from karmad.domain import (
    DomainError,
    machine_tag_from_hostname,
    validate_machine_tag,
    validate_user_id,
)
from karmad.errors import KarmadError
from karmad.protocol import ErrorCode
from karmad.sync import teamstore
from karmad.sync.plane import ControlPlane


def _conflict(detail: str, field: str) -> DomainError:
    return DomainError("conflict", detail, field=field)


@dataclass
class IdentityService(ControlPlane):
    hostname: Callable[[], str] = socket.gethostname

    def current(self) -> teamstore.Identity:
        """Our identity; refused with `not_initialised` until `karmactl init`."""
        identity = teamstore.get_identity(self.store)
        if identity is None:
            raise KarmadError(ErrorCode.NOT_INITIALISED)
        return identity

    def device(self) -> str:
        device = self.port.device_id()
        if device is None:
            raise KarmadError(
                ErrorCode.SYNCTHING_UNAVAILABLE,
                "this machine's device ID is not known yet: Syncthing has not started "
                "(see `karmactl syncthing status`)",
            )
        return device

    def identity_info(self) -> protocol.IdentityInfo:
        identity = teamstore.get_identity(self.store)
        if identity is None:
            return protocol.IdentityInfo(initialised=False, device_id=self.port.device_id())
        return protocol.IdentityInfo(
            initialised=True,
            user_id=identity.user_id,
            machine_tag=identity.machine_tag,
            member_tag=identity.member_tag,
            device_id=self.port.device_id(),
        )

    def init(self, user: str, machine: str | None) -> protocol.IdentityInfo:
        validate_user_id(user)
        current = teamstore.get_identity(self.store)
        if current is not None:
            if machine is not None and machine != current.machine_tag:
                raise _conflict(
                    f"the machine tag is {current.machine_tag} and stays stable once set",
                    "machine",
                )
            if user != current.user_id and teamstore.teams(self.store):
                raise _conflict(
                    f"this member is {current.member_tag} and belongs to teams; leave them "
                    "before changing the user name",
                    "user",
                )
            tag = current.machine_tag
        else:
            tag = (
                validate_machine_tag(machine)
                if machine
                else machine_tag_from_hostname(self.hostname())
            )
        created = current.created_at if current is not None else self.clock()
        identity = teamstore.Identity(user, tag, created)
        teamstore.set_identity(self.store, identity)
        state_guard.remember_quietly(self.store.path, identity.member_tag, created)
        self.reconciler.wake()
        return self.identity_info()

    def pair_code(self) -> protocol.PairCode:
        identity = self.current()
        device = self.device()
        addresses = self.port.advertised_addresses()
        code = codes.encode_member(codes.MemberCode(identity.member_tag, device, addresses))
        return protocol.PairCode(
            code=code, member_tag=identity.member_tag, device_id=device, addresses=list(addresses)
        )

    @staticmethod
    def decode(text: str) -> protocol.DecodedCode:
        """What a pairing or invite code says, once its checksum holds."""
        compact = "".join(c for c in text if c.isalnum()).upper()
        if compact.startswith(codes.INVITE_PREFIX):
            invite = codes.decode_invite(text)
            return protocol.DecodedCode(
                kind="invite",
                member_tag=invite.leader_tag,
                device_id=invite.leader_device,
                addresses=list(invite.addresses),
                team_id=invite.team_id,
                team_name=invite.team_name,
            )
        member = codes.decode_member(text)
        return protocol.DecodedCode(
            kind="member",
            member_tag=member.member_tag,
            device_id=member.device_id,
            addresses=list(member.addresses),
        )
