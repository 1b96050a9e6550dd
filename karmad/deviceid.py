"""Syncthing device IDs: parse, validate (check characters included), format.

A device ID is the member's identity, and IDs reach us from people (pairing codes) and
from peers (state files). Validating the Luhn check characters here means a typo or a
tampered ID is refused before it can ever become a device in Syncthing's config.
"""

from __future__ import annotations

import base64
import re

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_SEPARATORS = re.compile(r"[\s\-]")


class InvalidDeviceId(ValueError):
    pass


def _luhn32(group: str) -> str:
    """Syncthing's check character: Luhn mod 32 with the factor starting at 1."""
    factor = 1
    total = 0
    for ch in group:
        addend = factor * _VALUE[ch]
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _ALPHABET[(32 - total % 32) % 32]


def _normalise(text: str) -> str:
    # Syncthing accepts these look-alikes in typed IDs; so do we.
    cleaned = _SEPARATORS.sub("", text).upper()
    return cleaned.replace("0", "O").replace("1", "I").replace("8", "B")


def from_bytes(raw: bytes) -> str:
    """The canonical 63-character form of a 32-byte device ID."""
    if len(raw) != 32:
        raise InvalidDeviceId(f"a device ID has 32 bytes, not {len(raw)}")
    data = base64.b32encode(raw).decode().rstrip("=")
    with_checks = "".join(g + _luhn32(g) for g in (data[i : i + 13] for i in range(0, 52, 13)))
    return "-".join(with_checks[i : i + 7] for i in range(0, 56, 7))


def to_bytes(device_id: str) -> bytes:
    return base64.b32decode(_strip_checks(parse(device_id)).encode() + b"====")


def _strip_checks(canonical: str) -> str:
    compact = canonical.replace("-", "")
    return "".join(compact[i : i + 13] for i in range(0, 56, 14))


def parse(text: str) -> str:
    """Validate any spelling of a device ID and return its canonical form.

    The 52-character form without check characters (which Syncthing still accepts) is
    accepted too; its check characters are computed.
    """
    compact = _normalise(text)
    bad = sorted({c for c in compact if c not in _VALUE})
    if bad:
        raise InvalidDeviceId(
            f"a device ID uses only the characters A-Z and 2-7, not {''.join(bad)!r}"
        )
    if len(compact) == 52:
        compact = "".join(g + _luhn32(g) for g in (compact[i : i + 13] for i in range(0, 52, 13)))
    if len(compact) != 56:
        raise InvalidDeviceId(
            f"a device ID has 56 characters (plus dashes), this one has {len(compact)}"
        )
    for n in range(4):
        chunk = compact[n * 14 : n * 14 + 14]
        if _luhn32(chunk[:13]) != chunk[13]:
            raise InvalidDeviceId(
                f"check character {n + 1} of the device ID does not match (a typo?)"
            )
    return "-".join(compact[i : i + 7] for i in range(0, 56, 7))


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except InvalidDeviceId:
        return False
    return True


def short(device_id: str) -> str:
    """The first group, as Syncthing's GUI shows it."""
    return device_id[:7]
