"""Pairing codes (who a member is) and invite codes (which team a leader offers).

A code is one token a person copies from one terminal into another, possibly through a
chat that adds spaces, line breaks or capitals. So the text uses only base32 letters and
digits, any separators and case are ignored on input, and a checksum catches every typo
or truncation before anything acts on it. The Syncthing device ID sits in the code in its
own 56-character form, so its check characters are verified too.

    member code:  KM  <device id, 56>  base32(len tag | tag | addresses | checksum)
    invite code:  KI  <leader device, 56>  base32(team | name | leader | addresses
                                                  [| keeper] | checksum)
    keeper code:  KK  <keeper device, 56>  base32(addresses | checksum)
    serve code:   KS  <leader device, 56>  base32(keeper folder | addresses | checksum)

An invite to a team that has a keeper carries the keeper's device ID and addresses and a
join secret (docs/keeper.md 2.5): with them a member can join while the leader is away.
The invite is then a secret from the keeper's operator too.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from karmad import deviceid
from karmad.domain import (
    DomainError,
    is_folder_id,
    is_team_id,
    split_member_tag,
    validate_team_name,
)

MEMBER_PREFIX = "KM"
INVITE_PREFIX = "KI"
KEEPER_PREFIX = "KK"
SERVE_PREFIX = "KS"
JOIN_SECRET_BYTES = 16
_KINDS = {
    MEMBER_PREFIX: "a pairing",
    INVITE_PREFIX: "an invite",
    KEEPER_PREFIX: "a keeper",
    SERVE_PREFIX: "a keeper serve",
}
_DEVICE_CHARS = 56
_CHECK_BYTES = 4
_NOISE = re.compile(r"[^A-Za-z0-9]")


def _error(detail: str) -> DomainError:
    return DomainError("invalid_code", detail, field="code")


@dataclass(frozen=True, slots=True)
class MemberCode:
    member_tag: str
    device_id: str
    addresses: tuple[str, ...] = ()

    @property
    def user_id(self) -> str:
        return self.member_tag.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class InviteKeeper:
    """The team's keeper, in an invite: where to find it, and the secret that opens the
    team's key sealed for this invite."""

    device_id: str
    addresses: tuple[str, ...]
    join_secret: bytes

    def __repr__(self) -> str:
        return f"InviteKeeper({self.device_id[:7]}, {len(self.addresses)} addresses)"


@dataclass(frozen=True, slots=True)
class InviteCode:
    team_id: str
    team_name: str
    leader_tag: str
    leader_device: str
    addresses: tuple[str, ...] = ()
    keeper: InviteKeeper | None = None


@dataclass(frozen=True, slots=True)
class KeeperCode:
    """A keeper's offer to a leader: `karmactl keeper add TEAM CODE`."""

    device_id: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServeCode:
    """A leader's request to a keeper: `karmactl keeper serve CODE`."""

    leader_device: str
    folder_id: str
    addresses: tuple[str, ...] = ()


# --------------------------------------------------------------------------- encoding


def _pack_str(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"{value[:20]!r}... is too long for a code")
    return bytes([len(raw)]) + raw


def _pack_addresses(addresses: tuple[str, ...]) -> bytes:
    if len(addresses) > 16:
        raise ValueError("at most 16 addresses fit in a code")
    return bytes([len(addresses)]) + b"".join(_pack_str(a) for a in addresses)


def _checksum(head: str, body: bytes) -> bytes:
    return hashlib.sha256(head.encode() + body).digest()[:_CHECK_BYTES]


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=")


def _seal(prefix: str, device: str, body: bytes) -> str:
    compact_device = device.replace("-", "")
    head = prefix + compact_device
    return head + _b32(body + _checksum(head, body))


def encode_member(code: MemberCode) -> str:
    body = _pack_str(code.member_tag) + _pack_addresses(code.addresses)
    return _seal(MEMBER_PREFIX, deviceid.parse(code.device_id), body)


def encode_invite(code: InviteCode) -> str:
    body = (
        _pack_str(code.team_id)
        + _pack_str(code.team_name)
        + _pack_str(code.leader_tag)
        + _pack_addresses(code.addresses)
    )
    if code.keeper is not None:
        if len(code.keeper.join_secret) != JOIN_SECRET_BYTES:
            raise ValueError(f"a join secret has {JOIN_SECRET_BYTES} bytes")
        body += (
            _pack_str(deviceid.parse(code.keeper.device_id))
            + _pack_addresses(code.keeper.addresses)
            + code.keeper.join_secret
        )
    return _seal(INVITE_PREFIX, deviceid.parse(code.leader_device), body)


def encode_keeper(code: KeeperCode) -> str:
    return _seal(KEEPER_PREFIX, deviceid.parse(code.device_id), _pack_addresses(code.addresses))


def encode_serve(code: ServeCode) -> str:
    body = _pack_str(code.folder_id) + _pack_addresses(code.addresses)
    return _seal(SERVE_PREFIX, deviceid.parse(code.leader_device), body)


# --------------------------------------------------------------------------- decoding


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise _error("the code is incomplete (was it cut off?)")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def text(self) -> str:
        raw = self.take(self.byte())
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise _error("the code contains garbled text") from None

    def addresses(self) -> tuple[str, ...]:
        return tuple(self.text() for _ in range(self.byte()))

    def more(self) -> bool:
        return self._pos < len(self._data)

    def done(self) -> None:
        if self.more():
            raise _error("the code has unexpected extra content")


def _open(text: str, prefix: str, kind: str) -> tuple[str, _Reader]:
    compact = _NOISE.sub("", text).upper()
    if not compact:
        raise _error(f"no {kind} code given")
    for other, what in _KINDS.items():
        if other != prefix and compact.startswith(other):
            raise _error(f"this is {what} code, not {_KINDS[prefix]} code")
    if not compact.startswith(prefix):
        if prefix.startswith(compact):
            raise _error(f"the code is too short ({len(compact)} characters): it was cut off")
        raise _error(f"not a karmad {kind} code (it should start with {prefix})")
    minimum = len(prefix) + _DEVICE_CHARS + 8
    if len(compact) < minimum:
        raise _error(
            f"the code is too short ({len(compact)} characters; at least {minimum}): "
            "it was probably cut off"
        )
    # Look-alike digits (0/O, 1/I, 8/B) are read as Syncthing reads them in device IDs.
    body_text = compact[len(prefix) :].replace("0", "O").replace("1", "I").replace("8", "B")
    device_part, rest = body_text[:_DEVICE_CHARS], body_text[_DEVICE_CHARS:]
    if len(rest) % 8 in (1, 3, 6):
        # No base32 text has these lengths: characters are missing.
        raise _error("the code is incomplete (was it cut off?)")
    try:
        sealed = base64.b32decode(rest + "=" * (-len(rest) % 8))
    except ValueError:
        raise _error("the code contains characters that cannot appear in it") from None
    body, check = sealed[:-_CHECK_BYTES], sealed[-_CHECK_BYTES:]
    # The last character may carry unused bits; a typo there must not pass unnoticed.
    canonical = _b32(sealed) == rest
    if not canonical or _checksum(prefix + device_part, body) != check:
        raise _error(
            "the checksum does not match: a character was mistyped or the code is incomplete"
        )
    try:
        device = deviceid.parse(device_part)
    except deviceid.InvalidDeviceId as exc:
        raise _error(f"the device ID inside the code is invalid: {exc}") from None
    return device, _Reader(body)


def decode_member(text: str) -> MemberCode:
    device, reader = _open(text, MEMBER_PREFIX, "pairing")
    tag = reader.text()
    addresses = reader.addresses()
    reader.done()
    split_member_tag(tag)
    return MemberCode(tag, device, addresses)


def decode_invite(text: str) -> InviteCode:
    device, reader = _open(text, INVITE_PREFIX, "invite")
    team_id = reader.text()
    name = reader.text()
    leader_tag = reader.text()
    addresses = reader.addresses()
    keeper = None
    if reader.more():
        keeper_device = _device(reader.text(), "keeper")
        keeper_addresses = reader.addresses()
        keeper = InviteKeeper(keeper_device, keeper_addresses, reader.take(JOIN_SECRET_BYTES))
        if keeper_device == device:
            raise _error("the keeper inside the code is the leader itself")
    reader.done()
    split_member_tag(leader_tag)
    if not is_team_id(team_id):
        raise _error("the team id inside the code is invalid")
    return InviteCode(team_id, validate_team_name(name), leader_tag, device, addresses, keeper)


def _device(text: str, what: str) -> str:
    try:
        return deviceid.parse(text)
    except deviceid.InvalidDeviceId as exc:
        raise _error(f"the {what} device ID inside the code is invalid: {exc}") from None


def decode_keeper(text: str) -> KeeperCode:
    device, reader = _open(text, KEEPER_PREFIX, "keeper")
    addresses = reader.addresses()
    reader.done()
    return KeeperCode(device, addresses)


def decode_serve(text: str) -> ServeCode:
    device, reader = _open(text, SERVE_PREFIX, "keeper serve")
    folder = reader.text()
    addresses = reader.addresses()
    reader.done()
    if not is_folder_id(folder):
        raise _error("the folder id inside the code is invalid")
    return ServeCode(device, folder, addresses)


def grouped(code: str, size: int = 8) -> str:
    """For people who read codes aloud; decoding ignores the dashes."""
    return "-".join(code[i : i + size] for i in range(0, len(code), size))
