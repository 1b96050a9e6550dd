"""The one seam where msgspec's exceptions become karmad's.

Every decode of untrusted bytes (RPC params, config, transcripts, peers' state files,
Syncthing payloads) goes through here, so callers handle a single `InvalidData` that
says what was wrong and where, whatever msgspec raised.

Nesting is bounded two ways. msgspec has no depth option: it recurses through the
interpreter's recursion limit and raises `RecursionError` where that runs out, which
depends on how deep the caller's own stack already is. That error is translated here
like any other (`TooDeep`), so no input can crash a reader. But a value that just fits
(~900 deep) would fail again wherever it is encoded or walked later, so readers of
untyped values give an explicit `max_depth`, checked on the bytes they decoded.
Typed decoding needs no check: a value cannot nest deeper than its type, and the
unknown fields msgspec skips are covered by the translation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class InvalidData(ValueError):
    """Bytes or objects that do not match the expected shape."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(message)


class MalformedData(InvalidData):
    """Not JSON (or TOML) at all: a syntax error, truncation or invalid UTF-8.

    Distinguished from a mere shape mismatch so that tolerant readers (transcripts)
    can still use well-formed data whose shape they did not expect.
    """


class InvalidUtf8(MalformedData):
    """Well-formed JSON but for bytes that are not UTF-8: repairable by a tolerant reader.

    msgspec up to 0.22 let the codec's `UnicodeDecodeError` through (with the byte
    position); from 0.23 it raises its own `DecodeError("Invalid UTF-8 encoded string")`
    without one. Both become this class, so no reader depends on either spelling.
    """


class TooDeep(MalformedData):
    """Arrays and objects nested deeper than the reader allows (or than the interpreter
    can follow): not repairable, and never partly usable."""


_MSGSPEC_INVALID_UTF8 = "Invalid UTF-8 encoded string"

# ---------------------------------------------------------------- depth of JSON text

_KEEP_STRUCTURE = (
    bytes.maketrans(b"{}", b"[]"),
    bytes(b for b in range(256) if b not in b'[]{}"'),
)
"""Brackets (objects counted as arrays) and quotes: all the nesting of JSON text."""


@functools.cache
def _nested_at_most(limit: int) -> re.Pattern[bytes]:
    """Balanced brackets at most `limit` deep. Possessive repeats never backtrack, so a
    match is one linear pass in C however hostile the input."""
    level = b""
    for _ in range(limit):
        level = rb"(?:\[" + level + rb"\])*+"
    return re.compile(level)


def _deeper_than(data: bytes | bytearray | memoryview | str, limit: int) -> bool:
    """Whether JSON text that decoded nests deeper than `limit`.

    Two byte counts settle ordinary input. Otherwise the brackets outside strings are
    matched against `_nested_at_most`: ~10 ms per MiB, some tens for hostile text
    (hundreds of thousands of strings), all in C with no loop over bytes in Python.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    if b"\\" in raw:  # escapes: without them, every quote left opens or closes a string
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(*_KEEP_STRUCTURE)
    if b'"' in structure:
        structure = b"".join(structure.split(b'"')[::2])  # what is outside strings
    return _nested_at_most(limit).fullmatch(structure) is None


# ---------------------------------------------------------------- translation


def _path_of(exc: msgspec.ValidationError) -> str:
    # msgspec reports "... - at `$.params.x`"; keep the location separately for `field`.
    text = str(exc)
    marker = " - at `"
    if marker in text:
        return text.rsplit(marker, 1)[1].rstrip("`")
    return ""


def _translate(exc: Exception) -> InvalidData:
    if isinstance(exc, msgspec.ValidationError):
        return InvalidData(str(exc), path=_path_of(exc))
    if isinstance(exc, RecursionError):
        return TooDeep("malformed: nested too deep to decode")
    if isinstance(exc, UnicodeDecodeError):
        return InvalidUtf8(f"malformed: invalid UTF-8 at byte {exc.start}")
    if str(exc).startswith(_MSGSPEC_INVALID_UTF8):
        return InvalidUtf8("malformed: invalid UTF-8")
    return MalformedData(f"malformed: {exc}")


_DECODE_ERRORS = (msgspec.MsgspecError, UnicodeDecodeError, RecursionError)


def _decoded(decode: Callable[[Any], T], data: Any, max_depth: int | None) -> T:
    """`decode(data)`, refusing values nested deeper than `max_depth`.

    The check runs after decoding, on text known to be well-formed JSON, so it can count
    brackets without parsing and never mistakes a syntax error for depth.
    """
    try:
        value = decode(data)
    except _DECODE_ERRORS as exc:
        raise _translate(exc) from None  # malformed, or deeper than any limit
    if max_depth is not None and _deeper_than(data, max_depth):
        raise TooDeep(f"malformed: nested more than {max_depth} deep")
    return value


class Decoder(Generic[T]):
    """A reusable typed JSON decoder for hot paths (one per type, built once).

    `max_depth` bounds values of types that do not bound themselves (`Any`); it costs a
    check of the bytes, so hot paths over typed records leave it unset.
    """

    __slots__ = ("_decoder", "_max_depth")

    def __init__(self, type_: type[T], *, max_depth: int | None = None) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)
        self._max_depth = max_depth

    def decode(self, data: bytes | bytearray | memoryview | str) -> T:
        return _decoded(self._decoder.decode, data, self._max_depth)

    def decode_lines(self, data: bytes | bytearray | memoryview | str) -> list[T]:
        """Every value of newline-delimited JSON in one call; blank lines are skipped.

        All or nothing: one bad line fails the whole buffer, and the caller falls back to
        line by line to find it.
        """
        return _decoded(self._decoder.decode_lines, data, self._max_depth)


class PackDecoder(Generic[T]):
    """A typed msgpack decoder: karmad's own data passed between its processes."""

    __slots__ = ("_decoder",)

    def __init__(self, type_: type[T]) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type_)

    def decode(self, data: bytes) -> T:
        try:
            return self._decoder.decode(data)
        except _DECODE_ERRORS as exc:
            raise _translate(exc) from None


def decode_json(data: bytes | str, type_: type[T], *, max_depth: int | None = None) -> T:
    def decode(raw: bytes | str) -> T:
        return msgspec.json.decode(raw, type=type_)

    return _decoded(decode, data, max_depth)


def decode_any(data: bytes | str, *, max_depth: int | None = None) -> Any:
    """Any JSON value; give `max_depth` for untrusted input (see the module's notes)."""
    return _decoded(msgspec.json.decode, data, max_depth)


def decode_toml(data: bytes | str, type_: type[T]) -> T:
    try:
        return msgspec.toml.decode(data, type=type_)
    except _DECODE_ERRORS as exc:
        raise _translate(exc) from None


def convert(obj: Any, type_: type[T], *, from_attributes: bool = False) -> T:
    try:
        return msgspec.convert(obj, type_, from_attributes=from_attributes)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise _translate(exc) from None


# ---------------------------------------------------------------- encoding

_ENCODE_ERRORS = (msgspec.MsgspecError, TypeError, ValueError, RecursionError)
_json_encode = msgspec.json.Encoder().encode
_pack_encode = msgspec.msgpack.Encoder().encode


def _unencodable(exc: Exception) -> InvalidData:
    if isinstance(exc, RecursionError):
        return TooDeep("cannot encode: nested too deep")
    return InvalidData(f"cannot encode: {exc}")


def encode_json(obj: Any) -> bytes:
    """Compact JSON; msgspec already emits no whitespace, which the line protocol relies on."""
    try:
        return _json_encode(obj)
    except _ENCODE_ERRORS as exc:
        raise _unencodable(exc) from None


def encode_pack(obj: Any) -> bytes:
    try:
        return _pack_encode(obj)
    except _ENCODE_ERRORS as exc:
        raise _unencodable(exc) from None


def to_builtins(obj: Any) -> Any:
    try:
        return msgspec.to_builtins(obj)
    except _ENCODE_ERRORS as exc:
        raise _unencodable(exc) from None
