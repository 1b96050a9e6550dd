"""Device keys as Syncthing makes them: load, sign, verify, and refuse what is not right."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec

from karmad import deviceid
from karmad.trust import keys
from karmad.trust.keys import BadSignature, IdentityError
from tests.support.identities import KINDS, Identity, made_identity, syncthing_identity

MESSAGE = b"karma test message"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return syncthing_identity(tmp_path_factory.mktemp("st-a"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return syncthing_identity(tmp_path_factory.mktemp("st-b"))


@pytest.mark.syncthing
def test_the_device_id_of_a_syncthing_identity_is_syncthings_own(real: Identity) -> None:
    key = keys.load_device_key(real.cert_file, real.key_file)
    assert key.device_id == real.device_id
    # 1.x generates ECDSA P-384 (measured on 1.19.2 and 1.29.5); 2.x generates Ed25519.
    expected = keys.ED25519 if real.version.startswith("syncthing v2") else keys.ECDSA_P384
    assert key.algorithm == expected


@pytest.mark.syncthing
def test_a_signature_verifies_only_for_its_device_and_message(
    real: Identity, other: Identity
) -> None:
    key = keys.load_device_key(real.cert_file, real.key_file)
    intruder = keys.load_device_key(other.cert_file, other.key_file)
    signature = key.sign(MESSAGE)
    keys.verify(key.certificate, real.device_id, MESSAGE, signature)
    with pytest.raises(BadSignature, match="does not match"):
        keys.verify(key.certificate, real.device_id, MESSAGE + b"!", signature)
    # Another member's certificate cannot stand for the owner...
    with pytest.raises(BadSignature, match="not by the owner"):
        keys.verify(intruder.certificate, real.device_id, MESSAGE, intruder.sign(MESSAGE))
    # ...and the owner's certificate does not make another key's signature valid.
    with pytest.raises(BadSignature, match="does not match"):
        keys.verify(key.certificate, real.device_id, MESSAGE, intruder.sign(MESSAGE))


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_syncthing_key_signs_and_verifies(kind: str, tmp_path: Path) -> None:
    cert_pem, key_pem = made_identity(kind)
    key = keys.device_key_from_pem(cert_pem, key_pem)
    assert deviceid.parse(key.device_id) == key.device_id
    signature = key.sign(MESSAGE)
    keys.verify(key.certificate, key.device_id, MESSAGE, signature)
    with pytest.raises(BadSignature):
        keys.verify(key.certificate, key.device_id, MESSAGE[:-1], signature)
    with pytest.raises(BadSignature):
        keys.verify(key.certificate, key.device_id, MESSAGE, b"\x30\x02\x01\x01")


def test_a_key_that_is_not_the_certificates_is_refused() -> None:
    cert_pem, _ = made_identity("ecdsa-p384")
    _, key_pem = made_identity("ecdsa-p384")
    with pytest.raises(IdentityError, match="does not belong"):
        keys.device_key_from_pem(cert_pem, key_pem)


def test_unusable_identities_are_refused_with_a_reason(tmp_path: Path) -> None:
    cert_pem, key_pem = made_identity("ed25519")
    with pytest.raises(IdentityError, match="cannot read"):
        keys.load_device_key(tmp_path / "cert.pem", tmp_path / "key.pem")
    with pytest.raises(IdentityError, match="not a PEM certificate"):
        keys.device_key_from_pem(b"garbage", key_pem)
    with pytest.raises(IdentityError, match="not a PEM private key"):
        keys.device_key_from_pem(cert_pem, b"garbage")
    private = serialization.load_pem_private_key(key_pem, None)
    locked = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(IdentityError, match="passphrase"):
        keys.device_key_from_pem(cert_pem, locked)
    dsa_key = dsa.generate_private_key(2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(IdentityError, match="kind Syncthing does not use"):
        keys.device_key_from_pem(cert_pem, dsa_key)
    koblitz = ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(IdentityError, match="secp256k1"):
        keys.device_key_from_pem(cert_pem, koblitz)


def test_a_malformed_certificate_is_a_bad_signature_not_a_crash() -> None:
    garbage = b"\x30\x03\x02\x01\x01"
    with pytest.raises(BadSignature, match="malformed"):
        keys.verify(garbage, keys.device_id_of(garbage), MESSAGE, b"sig")


def test_a_certificate_with_an_impossible_version_is_a_bad_signature() -> None:
    """The parser raises its own exception for an unknown X.509 version; a forger
    choosing the bytes must get a refusal, never an exception out of the reader."""
    der = keys.device_key_from_pem(*made_identity("ed25519")).certificate
    v3 = b"\xa0\x03\x02\x01\x02"
    assert v3 in der
    odd = der.replace(v3, b"\xa0\x03\x02\x01\x06", 1)
    with pytest.raises(BadSignature, match="malformed"):
        keys.verify(odd, keys.device_id_of(odd), MESSAGE, b"sig")


def test_a_certificate_that_is_not_the_owners_is_refused_before_it_is_read() -> None:
    owner = keys.device_key_from_pem(*made_identity("ed25519"))
    odd = b"\xa0\x03\x02\x01\x06 anything at all"
    with pytest.raises(BadSignature, match="not by the owner"):
        keys.verify(odd, owner.device_id, MESSAGE, b"sig")


def test_key_material_never_appears_in_repr() -> None:
    cert_pem, key_pem = made_identity("ecdsa-p384")
    key = keys.device_key_from_pem(cert_pem, key_pem)
    private = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    secret = f"{private.private_numbers().private_value:x}"
    assert secret not in repr(key)
    assert key.device_id in repr(key)
