"""The team secret behind every keeper password, and when it must change.

Syncthing encrypts a folder for an untrusted device with a password that every trusted
device of the folder must know, identically (the key is scrypt(password, folder ID)).
In a team every member may read every member's folder, so one secret per team is enough:
each folder's password is derived from it, and members store one value, not N.

Whoever held a secret can read what is encrypted with it for as long as it is in use; a
removed member keeps what it knew. So the first removal of a device that held the
current secret starts a new *epoch* with a fresh secret, given only to the devices still
entitled; a member who merely joins is given the current one (it may read the team's
past anyway). Standard library only: pure decisions, testable without any I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from karmad.domain import MemberState, Team

SECRET_BYTES = 32
_SALT = b"karma-keeper-v1"


@dataclass(frozen=True, slots=True)
class Epoch:
    number: int
    """1 for a team's first secret; +1 at every rotation."""
    secret: bytes
    holders: frozenset[str]
    """Devices this secret has been given to (or may have fetched): never shrinks."""

    def __repr__(self) -> str:
        # The secret decrypts the team's folders on the keeper: never in a log line.
        return f"Epoch({self.number}, holders={len(self.holders)})"


def readers(team: Team) -> frozenset[str]:
    """Devices entitled to read the team's folders: every member the leader's roster
    lists and has not removed, the leader included, whether or not it has joined yet
    (a member joining while the leader is away must be able to read through the
    keeper, or it could not catch up until the leader returns)."""
    return frozenset(m.device_id for m in team.members if m.state is not MemberState.REMOVED)


def needs_rotation(epoch: Epoch, team: Team) -> bool:
    """A device that held this secret is no longer entitled: everything written from
    now on needs a secret it does not have."""
    return not epoch.holders <= readers(team)


def advance(epoch: Epoch | None, team: Team, fresh_secret: bytes) -> Epoch:
    """The epoch to use for `team` now: a new one after a removal (using `fresh_secret`,
    SECRET_BYTES of randomness the caller drew), else the current one extended to any
    newly added member. Pure; `fresh_secret` is unused when nothing rotates."""
    if len(fresh_secret) != SECRET_BYTES:
        raise ValueError(f"a team secret has {SECRET_BYTES} bytes")
    current = readers(team)
    if epoch is None:
        return Epoch(1, fresh_secret, current)
    if needs_rotation(epoch, team):
        if hmac.compare_digest(fresh_secret, epoch.secret):
            raise ValueError("a rotation needs a fresh secret")
        return Epoch(epoch.number + 1, fresh_secret, current)
    if current <= epoch.holders:
        return epoch
    return Epoch(epoch.number, epoch.secret, epoch.holders | current)


def _hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) for at most one hash-length of output."""
    if length > hashlib.sha256().digest_size:
        raise ValueError("one block of HKDF output at most")
    prk = hmac.new(_SALT, secret, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def folder_password(epoch: Epoch, folder_id: str) -> str:
    """The Syncthing encryption password of one team folder in this epoch.

    Distinct per folder and per epoch; 52 base32 characters (256 bits), so Syncthing's
    scrypt never has to make up for a weak password.
    """
    info = b"folder-password\0%d\0%s" % (epoch.number, folder_id.encode())
    return base64.b32encode(_hkdf(epoch.secret, info)).decode().rstrip("=").lower()
