"""Signed files: only the owner's exact file, in its own folder and path, verifies."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from karmad.trust import keys, signed
from karmad.trust.keys import BadSignature, DeviceKey, TrustError
from karmad.trust.signed import NotSigned
from tests.support.identities import made_identity, syncthing_identity

FOLDER = "karma-aaaaaaaaaaaaaaaaaaaaaaaaaa"
OTHER_FOLDER = "karma-bbbbbbbbbbbbbbbbbbbbbbbbbb"
PATH = "projects/p-aaaaaaaaaaaaaaaa/manifests/s1.json"
PAYLOAD = b'{"format":1,"session_id":"s1","seq":7}'


def _key(kind: str = "ecdsa-p384") -> DeviceKey:
    return keys.device_key_from_pem(*made_identity(kind))


OWNER = _key()
MEMBER = _key("ed25519")


def _verify(data: bytes, **overrides: str) -> bytes:
    where = {"kind": "manifest", "folder": FOLDER, "path": PATH, "owner": OWNER.device_id}
    where.update(overrides)
    return signed.verify_file(data, **where)


def _sign(key: DeviceKey = OWNER, payload: bytes = PAYLOAD) -> bytes:
    return signed.sign(key, payload, kind="manifest", folder=FOLDER, path=PATH)


def test_the_owners_file_verifies_and_stays_readable() -> None:
    data = _sign()
    assert data.startswith(PAYLOAD + b"\n")
    assert _verify(data) == PAYLOAD
    line = json.loads(data.splitlines()[1])
    assert line["signer"] == OWNER.device_id


@pytest.mark.syncthing
def test_a_file_signed_with_a_real_syncthing_key_verifies(tmp_path: Path) -> None:
    identity = syncthing_identity(tmp_path / "st")
    key = keys.load_device_key(identity.cert_file, identity.key_file)
    data = signed.sign(key, PAYLOAD, kind="state", folder=FOLDER, path="state")
    owner = identity.device_id
    assert signed.verify_file(data, kind="state", folder=FOLDER, path="state", owner=owner)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("folder", OTHER_FOLDER),
        ("path", "projects/p-aaaaaaaaaaaaaaaa/manifests/s2.json"),
        ("kind", "state"),
    ],
)
def test_a_genuine_file_moved_elsewhere_does_not_verify(where: str, value: str) -> None:
    with pytest.raises(BadSignature, match="does not match"):
        _verify(_sign(), **{where: value})


def test_a_member_cannot_sign_for_the_owner() -> None:
    """A teammate who can write into the owner's folder through a keeper (it knows the
    folder password) still cannot produce the owner's signature."""
    own = _sign(MEMBER, b'{"forged":true}')
    with pytest.raises(BadSignature, match="another device"):
        _verify(own)
    # Claiming to be the owner while offering its own certificate:
    payload, line = own.splitlines()
    claim = json.loads(line)
    claim["signer"] = OWNER.device_id
    forged = payload + b"\n" + json.dumps(claim).encode() + b"\n"
    with pytest.raises(BadSignature, match="not by the owner"):
        _verify(forged)
    # Splicing the owner's certificate onto its own signature:
    claim["cert"] = base64.b64encode(OWNER.certificate).decode()
    forged = payload + b"\n" + json.dumps(claim).encode() + b"\n"
    with pytest.raises(BadSignature, match="does not match"):
        _verify(forged)


def test_an_unsigned_file_is_told_apart() -> None:
    with pytest.raises(NotSigned):
        _verify(PAYLOAD + b"\n")


@pytest.mark.parametrize(
    "data",
    [
        PAYLOAD,  # no final newline
        PAYLOAD + b"\n" + PAYLOAD + b"\n" + b"{}\n",  # three lines
        PAYLOAD + b"\nnot json\n",
        PAYLOAD + b'\n{"signed":1,"signer":"x","cert":"!!","sig":"AA=="}\n',
        PAYLOAD + b'\n{"signed":2,"signer":"x","cert":"","sig":""}\n',
        PAYLOAD + b'\n{"signed":1}\n',
        PAYLOAD + b"\n" + b"x" * (signed.MAX_SIGNATURE_LINE + 1) + b"\n",
    ],
)
def test_malformed_files_are_refused_without_crashing(data: bytes) -> None:
    with pytest.raises(BadSignature):
        _verify(data)


def test_a_payload_is_one_line() -> None:
    with pytest.raises(ValueError, match="single line"):
        _sign(payload=b"{}\n{}")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_no_single_byte_change_yields_a_different_payload(data: st.DataObject) -> None:
    """Whatever byte of a signed file changes, the reader either refuses the file or
    gets exactly the owner's payload (a change inside base64 padding bits can be
    harmless); it never gets anything the owner did not sign. (Ed25519 here: its
    signatures are deterministic, so every example draws the same way.)"""
    payload = data.draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b))
    original = _sign(MEMBER, payload.replace(b"\r", b" "))
    expected = original.split(b"\n", 1)[0]
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda v: v != original[position]))
    mutated = original[:position] + bytes([replacement]) + original[position + 1 :]
    try:
        got = _verify(mutated, owner=MEMBER.device_id)
    except TrustError:
        return
    assert got == expected
