"""The one seam where msgspec's exceptions become karmad's.

Every decode of untrusted bytes (RPC params, config, transcripts, peers' state files,
Syncthing payloads) goes through here, so callers handle a single `InvalidData` that
says what was wrong and where, whatever msgspec raised.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")

encode_json = msgspec.json.Encoder().encode
"""Compact JSON; msgspec already emits no whitespace, which the line protocol relies on."""


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


_MSGSPEC_INVALID_UTF8 = "Invalid UTF-8 encoded string"


def _path_of(exc: msgspec.ValidationError) -> str:
    # msgspec reports "... - at `$.params.x`"; keep the location separately for `field`.
    text = str(exc)
    marker = " - at `"
    if marker in text:
        return text.rsplit(marker, 1)[1].rstrip("`")
    return ""


def _translate(exc: msgspec.MsgspecError | UnicodeDecodeError) -> InvalidData:
    if isinstance(exc, msgspec.ValidationError):
        return InvalidData(str(exc), path=_path_of(exc))
    if isinstance(exc, UnicodeDecodeError):
        return InvalidUtf8(f"malformed: invalid UTF-8 at byte {exc.start}")
    if str(exc).startswith(_MSGSPEC_INVALID_UTF8):
        return InvalidUtf8("malformed: invalid UTF-8")
    return MalformedData(f"malformed: {exc}")


class Decoder(Generic[T]):
    """A reusable typed JSON decoder for hot paths (one per type, built once)."""

    __slots__ = ("_decoder",)

    def __init__(self, type_: type[T]) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)

    def decode(self, data: bytes | bytearray | memoryview | str) -> T:
        try:
            return self._decoder.decode(data)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            raise _translate(exc) from None

    def decode_lines(self, data: bytes | bytearray | memoryview | str) -> list[T]:
        """Every value of newline-delimited JSON in one call; blank lines are skipped.

        All or nothing: one bad line fails the whole buffer, and the caller falls back to
        line by line to find it.
        """
        try:
            return self._decoder.decode_lines(data)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            raise _translate(exc) from None


class PackDecoder(Generic[T]):
    """A typed msgpack decoder: karmad's own data passed between its processes."""

    __slots__ = ("_decoder",)

    def __init__(self, type_: type[T]) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type_)

    def decode(self, data: bytes) -> T:
        try:
            return self._decoder.decode(data)
        except msgspec.MsgspecError as exc:
            raise _translate(exc) from None


encode_pack = msgspec.msgpack.Encoder().encode


def decode_json(data: bytes | str, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=type_)
    except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
        raise _translate(exc) from None


def decode_any(data: bytes | str) -> Any:
    try:
        return msgspec.json.decode(data)
    except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
        raise _translate(exc) from None


def decode_toml(data: bytes | str, type_: type[T]) -> T:
    try:
        return msgspec.toml.decode(data, type=type_)
    except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
        raise _translate(exc) from None


def convert(obj: Any, type_: type[T], *, from_attributes: bool = False) -> T:
    try:
        return msgspec.convert(obj, type_, from_attributes=from_attributes)
    except msgspec.MsgspecError as exc:
        raise _translate(exc) from None


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
