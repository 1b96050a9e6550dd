"""Syncthing device IDs: parsed, check-digit verified and canonicalised.

A device ID is the identity of a member, and peers hand them to us (pending devices,
invite codes), so one typed in wrong must fail here with a clear message rather than
reach Syncthing, which would store a device nobody can ever connect as.
"""

from __future__ import annotations

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_GROUP = 13
"""The 52 base32 characters of the SHA-256 digest are checked in four groups of 13."""


class InvalidDeviceId(ValueError):
    pass


def _luhn32(chars: str) -> str:
    # Syncthing's variant: the factor starts at 1 on the leftmost character.
    factor, total = 1, 0
    for ch in chars:
        addend = factor * _VALUE[ch]
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _ALPHABET[(32 - total % 32) % 32]


def parse_device_id(text: str) -> str:
    """The canonical `XXXXXXX-XXXXXXX-...` form (8 groups of 7), or `InvalidDeviceId`.

    Accepts Syncthing's own spellings: any case, with or without dashes or spaces, and
    the old 52-character form without check characters.
    """
    raw = "".join(text.split()).replace("-", "").upper()
    # The same look-alike corrections Syncthing applies to typed IDs.
    raw = raw.translate(str.maketrans("018", "OIB"))
    if any(c not in _VALUE for c in raw):
        raise InvalidDeviceId(f"{text!r} is not a device ID: only A-Z and 2-7 may appear")
    if len(raw) == 52:
        raw = "".join(
            raw[i : i + _GROUP] + _luhn32(raw[i : i + _GROUP]) for i in range(0, 52, _GROUP)
        )
    elif len(raw) == 56:
        for i in range(0, 56, _GROUP + 1):
            group = raw[i : i + _GROUP]
            if _luhn32(group) != raw[i + _GROUP]:
                raise InvalidDeviceId(f"{text!r} is not a device ID: a check character is wrong")
    else:
        raise InvalidDeviceId(f"{text!r} is not a device ID: it has {len(raw)} characters")
    return "-".join(raw[i : i + 7] for i in range(0, 56, 7))


def is_device_id(text: str) -> bool:
    try:
        parse_device_id(text)
    except InvalidDeviceId:
        return False
    return True


def short(device_id: str) -> str:
    """The first group, as Syncthing shows devices in its logs."""
    return device_id.split("-", 1)[0]
