"""The device's own key, and other devices' public keys, as Syncthing made them.

A Syncthing device ID is the SHA-256 of the device's certificate (DER). So a reader that
knows a member's device ID (from the roster) and is handed a certificate can check that
it is that member's, and use its public key; the member signs with the private key
beside it (`key.pem` in the Syncthing home). No new identity, nothing to exchange.

Syncthing has generated three kinds of device keys, and keeps an existing key forever:
RSA 3072 before v0.12.5, ECDSA P-384 up to 1.x (measured: 1.19.2 and 1.29.5), Ed25519
from 2.0; a user may also install a P-256 or P-521 key. All of them sign here, each with
one fixed algorithm, so there is nothing to negotiate and nothing to downgrade.

With `wrap`, this is the only code that calls `cryptography`: its exceptions become
`IdentityError` (our own key cannot be used) or `BadSignature` (someone else's signature
is not good) here, and nowhere else sees them.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from karmad import deviceid


class TrustError(Exception):
    """Something about keys or signatures; the message says what, for logs and audit."""


class IdentityError(TrustError):
    """Our own device key or certificate is missing, unreadable, or not a pair."""


class BadSignature(TrustError):
    """A signature, or the certificate offered with it, that must not be believed."""


ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"
ECDSA_P384 = "ecdsa-p384-sha384"
ECDSA_P521 = "ecdsa-p521-sha512"
RSA_PSS = "rsa-pss-sha256"

_CURVES: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": (ECDSA_P256, hashes.SHA256),
    "secp384r1": (ECDSA_P384, hashes.SHA384),
    "secp521r1": (ECDSA_P521, hashes.SHA512),
}
"""The curves Go's TLS stack (and so Syncthing) accepts for certificates."""

MIN_RSA_BITS = 2048

_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def device_id_of(certificate_der: bytes) -> str:
    """The Syncthing device ID a certificate stands for."""
    return deviceid.from_bytes(hashlib.sha256(certificate_der).digest())


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def _algorithm(key: _PrivateKey | _PublicKey) -> str:
    """The one signature algorithm used with this kind of key; ValueError if none."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        known = _CURVES.get(key.curve.name)
        if known is None:
            raise ValueError(f"ECDSA curve {key.curve.name} is not one Syncthing can use")
        return known[0]
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS} needed)")
    return RSA_PSS


def _ecdsa(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> ec.ECDSA:
    return ec.ECDSA(_CURVES[key.curve.name][1]())


@dataclass(frozen=True, slots=True, eq=False)
class DeviceKey:
    """This device's signing key and the certificate that makes it its device ID."""

    device_id: str
    certificate: bytes
    """DER; readers hash it to check it is `device_id`'s."""
    algorithm: str
    _key: _PrivateKey

    def sign(self, message: bytes) -> bytes:
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, _ecdsa(key))
        return key.sign(message, _pss(), hashes.SHA256())

    def __repr__(self) -> str:
        # Never print key material, even by accident in a log line or a test failure.
        return f"DeviceKey({self.device_id}, {self.algorithm})"


def load_device_key(cert_file: Path, key_file: Path) -> DeviceKey:
    """Read Syncthing's `cert.pem` and `key.pem` (blocking: small file reads)."""
    try:
        cert_pem = cert_file.read_bytes()
        key_pem = key_file.read_bytes()
    except OSError as exc:
        raise IdentityError(
            f"cannot read the device identity: {exc.strerror or exc}: {exc.filename or cert_file}"
        ) from None
    return device_key_from_pem(cert_pem, key_pem)


def device_key_from_pem(cert_pem: bytes, key_pem: bytes) -> DeviceKey:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise IdentityError("the device certificate is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise IdentityError("the device key is protected by a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise IdentityError("the device key is not a PEM private key karmad can read") from None
    if not isinstance(
        key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    ):
        raise IdentityError(
            f"the device key is of a kind Syncthing does not use ({type(key).__name__})"
        )
    try:
        algorithm = _algorithm(key)
    except ValueError as exc:
        raise IdentityError(f"the device key cannot sign: {exc}") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise IdentityError("the device key does not belong to the device certificate")
    der = cert.public_bytes(serialization.Encoding.DER)
    return DeviceKey(device_id_of(der), der, algorithm, key)


@functools.lru_cache(maxsize=1024)
def _public_key(certificate_der: bytes) -> tuple[str, _PublicKey]:
    """(device ID, public key) of a certificate; cached, since one member's certificate
    comes with every file it signs. Raises BadSignature for anything unusable."""
    try:
        cert = x509.load_der_x509_certificate(certificate_der)
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        raise BadSignature("the certificate offered with the signature is malformed") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise BadSignature("the certificate's key is of a kind Syncthing does not use")
    try:
        _algorithm(key)
    except ValueError as exc:
        raise BadSignature(f"the certificate's key cannot be used: {exc}") from None
    return device_id_of(certificate_der), key


def verify(certificate_der: bytes, device_id: str, message: bytes, signature: bytes) -> None:
    """Check that `device_id`'s key signed `message`; raises BadSignature otherwise.

    The certificate is believed only because its hash is `device_id`: its validity
    dates, issuer and self-signature mean nothing here, as in Syncthing itself.
    """
    # The hash first: a certificate that is not the owner's never reaches the parser,
    # whatever a forger put in it.
    owner = device_id_of(certificate_der)
    if owner != device_id:
        raise BadSignature(f"signed by {deviceid.short(owner)}, not by the owner")
    _, key = _public_key(certificate_der)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, _ecdsa(key))
        else:
            key.verify(signature, message, _pss(), hashes.SHA256())
    except InvalidSignature:
        raise BadSignature("the signature does not match the signed content") from None
    except ValueError:
        raise BadSignature("the signature is malformed") from None
