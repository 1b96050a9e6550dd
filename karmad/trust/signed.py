"""A replicated file signed by its owner: the payload line, then one signature line.

    {"format":1,"team_id":"…",…}                                      <- the payload
    {"signed":1,"signer":"ABCDEFG-…","cert":"MIIB…","sig":"MGQC…"}     <- the signature

The payload stays the readable JSON it was, byte for byte what was signed (nothing is
re-encoded, so there is no canonical form to get wrong). The signature covers it
together with what the file is (`kind`), the folder it lives in and its path there: a
genuine file copied into another folder, under another name or read as another kind
does not verify. The signer's certificate travels in every file, so each one can be
checked on its own (its hash must be the owner's device ID).

Whether a copy is the *latest* is the payload's business (state files and manifests
carry a sequence number that readers never let go backwards); a signature only says who
wrote it.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from karmad import codec
from karmad.trust.keys import BadSignature, DeviceKey, verify

FORMAT = 1
_DOMAIN = b"karma-signed-file-v1"
MAX_SIGNATURE_LINE = 8192
"""A certificate (RSA 4096 at most) and a signature in base64 fit comfortably."""


class NotSigned(BadSignature):
    """A file without a signature line: written by a karmad from before signatures."""


class SignatureLine(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    signed: int
    signer: str
    cert: str
    sig: str


def _message(kind: str, folder: str, path: str, payload: bytes) -> bytes:
    for what, value in (("kind", kind), ("folder", folder), ("path", path)):
        if not value or "\0" in value:
            raise ValueError(f"a signed file's {what} must be non-empty text without NUL")
    return b"\0".join((_DOMAIN, kind.encode(), folder.encode(), path.encode(), payload))


def sign(key: DeviceKey, payload: bytes, *, kind: str, folder: str, path: str) -> bytes:
    """The file's bytes: `payload` (one line, no newline) and its signature line."""
    if b"\n" in payload or b"\r" in payload:
        raise ValueError("a signed payload is a single line")
    signature = key.sign(_message(kind, folder, path, payload))
    line = SignatureLine(
        signed=FORMAT,
        signer=key.device_id,
        cert=base64.b64encode(key.certificate).decode(),
        sig=base64.b64encode(signature).decode(),
    )
    return payload + b"\n" + codec.encode_json(line) + b"\n"


def split(data: bytes) -> tuple[bytes, bytes | None]:
    """(payload, signature line or None): a file of one line has no signature."""
    body = data[:-1] if data.endswith(b"\n") else data
    payload, newline, trailer = body.rpartition(b"\n")
    if not newline:
        return body, None
    return payload, trailer


def verify_file(data: bytes, *, kind: str, folder: str, path: str, owner: str) -> bytes:
    """The payload, if `owner` signed exactly this file as `kind` at `folder`/`path`.

    Raises `NotSigned` for an unsigned file and `BadSignature` for anything else that
    must not be believed (forged, altered, moved, signed by someone else, malformed).
    """
    if not data.endswith(b"\n"):
        raise BadSignature("the file is incomplete (no final newline)")
    payload, trailer = split(data)
    if trailer is None:
        raise NotSigned("the file carries no signature")
    if b"\n" in payload:
        raise BadSignature("a signed file has exactly two lines")
    if len(trailer) > MAX_SIGNATURE_LINE:
        raise BadSignature("the signature line is too long")
    try:
        line = codec.decode_json(trailer, SignatureLine)
    except codec.InvalidData as exc:
        raise BadSignature(f"malformed signature line: {exc}") from None
    if line.signed != FORMAT:
        raise BadSignature(f"unsupported signature format {line.signed}")
    if line.signer != owner:
        raise BadSignature("signed by another device than the folder's owner")
    try:
        cert = base64.b64decode(line.cert, validate=True)
        signature = base64.b64decode(line.sig, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("the signature line is not valid base64") from None
    verify(cert, owner, _message(kind, folder, path, payload), signature)
    return payload
