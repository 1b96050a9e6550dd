"""The codec seam: whatever msgspec version is installed, callers see one error tree."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import inspect as mi

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


# ------------------------------------------------------------------ nesting

DEEP = 5_000
"""Far deeper than the interpreter's recursion limit, wherever the caller's stack is."""


def nested(depth: int, inner: bytes = b"") -> bytes:
    return b"[" * depth + inner + b"]" * depth


class _Typed(msgspec.Struct):
    a: int = 0


class _Outer(msgspec.Struct):
    inner: _Typed


@pytest.mark.parametrize(
    "decode",
    [
        codec.decode_any,
        lambda data: codec.decode_any(data, max_depth=64),
        lambda data: codec.decode_json(data, _Shape),
        codec.Decoder(_Typed).decode,
        codec.Decoder(_Typed).decode_lines,
        codec.Decoder(Any).decode,
    ],
    ids=["any", "any-bounded", "typed", "decoder", "lines", "decoder-any"],
)
def test_nesting_beyond_the_interpreter_is_invalid_data(decode: Callable[[bytes], Any]) -> None:
    # msgspec follows the interpreter's recursion limit and raises RecursionError there;
    # a reader must see that as one more kind of bad data, never as a crash. (A typed
    # decoder may stop earlier, at the first value of the wrong shape.)
    with pytest.raises(codec.InvalidData):
        decode(nested(DEEP))
    with pytest.raises(codec.InvalidData):
        decode(b'{"text": "x", "a": ' + nested(DEEP, b"1") + b"}")
    with pytest.raises(codec.MalformedData):
        decode(b'{"a": 1, "skipped": ' + nested(DEEP) + b"}")  # a field msgspec skips


def test_a_too_deep_line_fails_its_buffer_and_is_found_line_by_line() -> None:
    decoder = codec.Decoder(_Typed)
    lines = [b'{"a": 1}', b'{"a": 2, "x": ' + nested(DEEP) + b"}", b'{"a": 3}']
    with pytest.raises(codec.TooDeep):
        decoder.decode_lines(b"\n".join(lines))
    results: list[int | None] = []
    for line in lines:
        try:
            results.append(decoder.decode(line).a)
        except codec.MalformedData:
            results.append(None)
    assert results == [1, None, 3]


def test_other_sources_translate_recursion_too() -> None:
    deep_list: list[Any] = []
    for _ in range(DEEP):
        deep_list = [deep_list]
    with pytest.raises(codec.TooDeep):
        codec.encode_json(deep_list)
    with pytest.raises(codec.TooDeep):
        codec.to_builtins(deep_list)
    with pytest.raises(codec.InvalidData):
        codec.encode_pack(deep_list)
    with pytest.raises(codec.MalformedData):
        codec.PackDecoder(Any).decode(b"\x91" * DEEP + b"\x90")  # msgpack: [[[...[]...]]]
    with pytest.raises(codec.MalformedData):
        codec.decode_toml(b"a = " + nested(DEEP), dict[str, Any])
    with pytest.raises(codec.InvalidData):
        codec.convert({"inner": deep_list}, _Outer)


def test_unencodable_values_are_invalid_data() -> None:
    with pytest.raises(codec.InvalidData, match="cannot encode"):
        codec.encode_json(object())
    with pytest.raises(codec.InvalidData, match="cannot encode"):
        codec.encode_json("\ud800")


@pytest.mark.parametrize("limit", [1, 2, 5, 32, 64])
def test_max_depth_is_exact(limit: int) -> None:
    assert codec.decode_any(nested(limit), max_depth=limit) is not None
    assert codec.decode_any(b'{"a": ' + nested(limit - 1, b"1") + b"}", max_depth=limit) == {
        "a": msgspec.json.decode(nested(limit - 1, b"1"))
    }
    with pytest.raises(codec.TooDeep, match=f"more than {limit} deep"):
        codec.decode_any(nested(limit + 1), max_depth=limit)
    with pytest.raises(codec.TooDeep):
        codec.decode_any(b'{"a": ' + nested(limit) + b"}", max_depth=limit)
    # Siblings do not add up, whatever mixes of arrays and objects.
    wide = b"[" + b",".join([nested(limit - 1, b"1")] * 50) + b"]"
    assert len(codec.decode_any(wide, max_depth=limit)) == 50
    mixed = b'{"k": [{"k": [1]}], "j": ' + nested(limit - 1, b"1") + b"}"
    assert codec.decode_any(mixed, max_depth=max(limit, 4))


def test_brackets_inside_strings_are_text() -> None:
    text = '[[[[{{{{ "\\" ]]]] ' * 100
    data = msgspec.json.encode({"text": text, "list": [text, [text]]})
    assert codec.decode_any(data, max_depth=3)["text"] == text
    with pytest.raises(codec.TooDeep):
        codec.decode_any(msgspec.json.encode({"list": [[[text]]]}), max_depth=3)


def test_a_syntax_error_is_not_taken_for_depth() -> None:
    # More openers than the limit and unbalanced: malformed, which is what it is.
    with pytest.raises(codec.MalformedData) as info:
        codec.decode_any(b"[" * 40 + b"1,", max_depth=8)
    assert not isinstance(info.value, codec.TooDeep)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(JSON, st.integers(1, 12), st.integers(0, 40))
def test_max_depth_agrees_with_the_decoded_value(value: Any, limit: int, wrap: int) -> None:
    for _ in range(wrap):
        value = [value] if wrap % 2 else {"k": value}
    data = msgspec.json.encode(value)
    if depth_of(value) > limit:
        with pytest.raises(codec.TooDeep):
            codec.decode_any(data, max_depth=limit)
    else:
        assert codec.decode_any(data, max_depth=limit) == value


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet='[]{}",:1\\ ', max_size=300).map(str.encode))
def test_any_bytes_decode_or_fail_with_invalid_data(data: bytes) -> None:
    for decode in (
        codec.decode_any,
        lambda d: codec.decode_any(d, max_depth=4),
        codec.Decoder(_Typed).decode_lines,
    ):
        with contextlib.suppress(codec.InvalidData):
            decode(data)


# ------------------------------------------------------------------ typed sources


def type_depth(t: mi.Type, seen: frozenset[type] = frozenset()) -> float:
    """How deep a value of this type can nest: infinite for `Any` or a recursive type.

    `msgspec.Raw` is kept as bytes (decoded later, by a type of its own), so it adds
    nothing.
    """
    if isinstance(t, mi.AnyType):
        return math.inf
    if isinstance(t, mi.RawType):
        return 0
    if isinstance(t, mi.UnionType):
        return max(type_depth(x, seen) for x in t.types)
    if isinstance(t, mi.StructType):
        if t.cls in seen:
            return math.inf
        inner = [type_depth(f.type, seen | {t.cls}) for f in t.fields]
        return 1 + max(inner, default=0)
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return 1 + type_depth(t.item_type, seen)
    if isinstance(t, mi.TupleType):
        return 1 + max((type_depth(x, seen) for x in t.item_types), default=0)
    if isinstance(t, mi.DictType):
        return 1 + type_depth(t.value_type, seen)
    return 0


def _typed_sources() -> dict[str, Any]:
    from karmad.protocol import METHODS
    from karmad.sync.statefile import StateFile, WireTeam
    from karmad.syncthing import models

    sources: dict[str, Any] = {"state file": StateFile, "team record": WireTeam}
    for name in dir(models):
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, msgspec.Struct):
            sources[f"syncthing {name}"] = value
    for name, spec in METHODS.items():
        sources[f"params of {name}"] = spec.params
    return sources


TYPED_DEPTH = 8
"""Deepest value a typed decode of peers' state files, Syncthing's payloads or RPC params
can make: their explicit bound, kept by the types themselves."""


def test_typed_sources_bound_their_own_depth() -> None:
    # These are decoded into types, not checked with max_depth: the type is the limit,
    # so none may hold an `Any` (or recurse) without a max_depth at its decode.
    depths = {name: type_depth(mi.type_info(t)) for name, t in _typed_sources().items()}
    assert len(depths) > 40
    too_deep = {name: d for name, d in depths.items() if d > TYPED_DEPTH}
    assert not too_deep, too_deep


@pytest.mark.parametrize("name", ["state file", "team record", "syncthing ConfigView"])
def test_typed_sources_refuse_hostile_nesting_as_invalid_data(name: str) -> None:
    type_ = _typed_sources()[name]
    for line in (
        nested(DEEP),
        b'{"unknownField": ' + nested(DEEP) + b"}",
        b'{"version": ' + nested(DEEP, b"1") + b"}",
    ):
        with pytest.raises(codec.InvalidData):
            codec.decode_json(line, type_)
        with pytest.raises(codec.InvalidData):
            codec.Decoder(type_).decode(line)
