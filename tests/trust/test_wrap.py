"""Sealed team secrets open only for their member, scope and epoch."""

from __future__ import annotations

import base64
import os

import msgspec
import pytest

from karmad.trust.wrap import (
    CannotOpen,
    Sealed,
    SealingKey,
    new_join_secret,
    open_sealed,
    seal_for_join,
    seal_for_key,
)

SCOPE = "karma-aaaaaaaaaaaaaaaaaaaaaaaaaa"
BOB = "BOB"
CAROL = "CAROL"
SECRET = os.urandom(32)


def test_a_join_sealed_secret_opens_with_the_invite_codes_secret() -> None:
    join = new_join_secret()
    sealed = seal_for_join(join, SECRET, scope=SCOPE, device=CAROL, epoch=3)
    assert open_sealed(sealed, scope=SCOPE, device=CAROL, join_secret=join) == SECRET
    with pytest.raises(CannotOpen):
        open_sealed(sealed, scope=SCOPE, device=CAROL, join_secret=new_join_secret())
    with pytest.raises(CannotOpen, match="join secret"):
        open_sealed(sealed, scope=SCOPE, device=CAROL)


def test_a_key_sealed_secret_opens_only_with_the_members_key() -> None:
    bob = SealingKey.generate()
    sealed = seal_for_key(bob.public_bytes(), SECRET, scope=SCOPE, device=BOB, epoch=1)
    assert open_sealed(sealed, scope=SCOPE, device=BOB, key=bob) == SECRET
    restored = SealingKey.from_bytes(bob.private_bytes())
    assert open_sealed(sealed, scope=SCOPE, device=BOB, key=restored) == SECRET
    with pytest.raises(CannotOpen):
        open_sealed(sealed, scope=SCOPE, device=BOB, key=SealingKey.generate())
    assert repr(bob) == "SealingKey(…)"


@pytest.mark.parametrize("scheme", ["join", "key"])
def test_a_sealed_secret_cannot_be_moved_to_another_member_scope_or_epoch(scheme: str) -> None:
    join, key = new_join_secret(), SealingKey.generate()

    def make(device: str) -> Sealed:
        if scheme == "join":
            return seal_for_join(join, SECRET, scope=SCOPE, device=device, epoch=2)
        return seal_for_key(key.public_bytes(), SECRET, scope=SCOPE, device=device, epoch=2)

    sealed = make(BOB)
    opener = {"join_secret": join, "key": key}
    with pytest.raises(CannotOpen, match="another device"):
        open_sealed(sealed, scope=SCOPE, device=CAROL, **opener)  # type: ignore[arg-type]
    relabelled = msgspec.structs.replace(sealed, device=CAROL)
    with pytest.raises(CannotOpen):
        open_sealed(relabelled, scope=SCOPE, device=CAROL, **opener)  # type: ignore[arg-type]
    with pytest.raises(CannotOpen):
        open_sealed(sealed, scope="karma-other", device=BOB, **opener)  # type: ignore[arg-type]
    older = msgspec.structs.replace(sealed, epoch=1)
    with pytest.raises(CannotOpen):
        open_sealed(older, scope=SCOPE, device=BOB, **opener)  # type: ignore[arg-type]
    box = bytearray(base64.b64decode(sealed.box))
    box[0] ^= 1
    altered = msgspec.structs.replace(sealed, box=base64.b64encode(bytes(box)).decode())
    with pytest.raises(CannotOpen, match="does not open"):
        open_sealed(altered, scope=SCOPE, device=BOB, **opener)  # type: ignore[arg-type]


def test_malformed_sealed_secrets_are_refused() -> None:
    join = new_join_secret()
    sealed = seal_for_join(join, SECRET, scope=SCOPE, device=BOB, epoch=1)
    for broken in (
        msgspec.structs.replace(sealed, nonce="!!"),
        msgspec.structs.replace(sealed, nonce="AAAA"),
        msgspec.structs.replace(sealed, box="%%"),
    ):
        with pytest.raises(CannotOpen):
            open_sealed(broken, scope=SCOPE, device=BOB, join_secret=join)
