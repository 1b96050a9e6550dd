"""The codec seam: whatever msgspec version is installed, callers see one error tree."""

from __future__ import annotations

import msgspec
import pytest

from karmad import codec


class _Shape(msgspec.Struct):
    text: str = ""


@pytest.mark.parametrize(
    "decode",
    [
        codec.decode_any,
        lambda data: codec.decode_json(data, _Shape),
        codec.Decoder(_Shape).decode,
        codec.Decoder(_Shape).decode_lines,
    ],
    ids=["any", "typed", "decoder", "lines"],
)
def test_invalid_utf8_is_its_own_repairable_error(decode: object) -> None:
    # msgspec <= 0.22 raised UnicodeDecodeError here, 0.23 a DecodeError of its own.
    with pytest.raises(codec.InvalidUtf8, match="invalid UTF-8"):
        decode(b'{"text": "a\xffb"}\n')  # type: ignore[operator]


def test_other_malformed_json_is_not_taken_for_invalid_utf8() -> None:
    with pytest.raises(codec.MalformedData) as info:
        codec.decode_any(b'{"text": "\\ud83d cut"}')
    assert not isinstance(info.value, codec.InvalidUtf8)
    with pytest.raises(codec.MalformedData) as info:
        codec.decode_any(b'{"text": ')
    assert not isinstance(info.value, codec.InvalidUtf8)
