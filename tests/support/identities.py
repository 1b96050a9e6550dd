"""Syncthing device identities for signature tests.

`syncthing_identity` asks the installed Syncthing to generate one (the real thing: the
key type and certificate layout of that version) and to print its device ID, so tests
compare karmad's view with Syncthing's own. `made_identity` builds the kinds the
installed version does not generate (Ed25519 from 2.0, RSA from before 0.12.5, the other
NIST curves a user may install) in the same certificate layout.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from karmad.syncthing import binary as binary_mod
from karmad.syncthing import home as home_mod
from karmad.syncthing.compat import child_env


@dataclass(frozen=True, slots=True)
class Identity:
    cert_file: Path
    key_file: Path
    device_id: str
    """As Syncthing itself prints it (or computed by the test for a made identity)."""
    version: str = ""


def syncthing_identity(directory: Path) -> Identity:
    """A fresh identity made by the installed Syncthing; skips the test without one."""
    path = binary_mod.locate("")
    if path is None:
        pytest.skip("Syncthing is not installed (`./dev test` installs it)")
    binary = binary_mod.probe(path)
    directory.mkdir(parents=True, exist_ok=True)
    env = child_env({**os.environ, "HOME": str(directory)})
    subprocess.run(
        [str(binary.path), *binary.compat.generate_args(directory)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=True,
    )
    device = home_mod.device_id(binary, directory, env)
    return Identity(
        directory / home_mod.CERT, directory / home_mod.KEY, device, binary.long_version
    )


KINDS = ("ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-3072")


def made_identity(kind: str) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) shaped like Syncthing's own: self-signed, CN=syncthing."""
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    digest: hashes.SHA256 | None = hashes.SHA256()
    if kind == "ed25519":
        key, digest = ed25519.Ed25519PrivateKey.generate(), None
    elif kind.startswith("ecdsa-"):
        curve = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
        key = ec.generate_private_key(curve[kind.removeprefix("ecdsa-")])
    elif kind == "rsa-3072":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValueError(kind)
    return _self_signed(key, digest), key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _self_signed(
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    digest: hashes.SHA256 | None,
) -> bytes:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Syncthing"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Automatically Generated"),
            x509.NameAttribute(NameOID.COMMON_NAME, "syncthing"),
        ]
    )
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=7300))
        .sign(key, digest)
    )
    return cert.public_bytes(serialization.Encoding.PEM)
