"""Device IDs, pairing codes and invite codes: round trips and every way to get them wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from karmad import codes, deviceid
from karmad.domain import DomainError

REAL = "NBJFGFG-3BC3AS7-BHX55SN-PRC2NFE-LWZXZVX-QWBRJXS-CJKIHJ7-XWGLEAW"  # from syncthing 1.19


def test_real_syncthing_device_id() -> None:
    assert deviceid.parse(REAL) == REAL
    assert deviceid.parse(REAL.lower().replace("-", " ")) == REAL
    assert deviceid.from_bytes(deviceid.to_bytes(REAL)) == REAL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (REAL[:-1] + "B", "check character 4"),
        (REAL[:30], "56 characters"),
        (REAL.replace("N", "9", 1), "not '9'"),
    ],
)
def test_bad_device_ids(text: str, message: str) -> None:
    with pytest.raises(deviceid.InvalidDeviceId, match=message):
        deviceid.parse(text)


@given(st.binary(min_size=32, max_size=32))
def test_device_id_round_trip(raw: bytes) -> None:
    text = deviceid.from_bytes(raw)
    assert deviceid.parse(text) == text
    assert deviceid.to_bytes(text) == raw


def test_member_code_is_compact_and_forgiving() -> None:
    code = codes.encode_member(codes.MemberCode("alice.laptop", REAL))
    assert len(code) <= 100
    assert code.isalnum() and code.isupper()
    for spelling in (code, code.lower(), codes.grouped(code), " ".join(code), f"\n{code}\t"):
        decoded = codes.decode_member(spelling)
        assert decoded == codes.MemberCode("alice.laptop", REAL)


@given(
    st.from_regex(r"[a-z0-9][a-z0-9_-]{1,31}\.[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True),
    st.binary(min_size=32, max_size=32),
    st.lists(st.text(min_size=1, max_size=40), max_size=3).map(tuple),
)
def test_member_code_round_trip(tag: str, raw: bytes, addresses: tuple[str, ...]) -> None:
    member = codes.MemberCode(tag, deviceid.from_bytes(raw), addresses)
    assert codes.decode_member(codes.encode_member(member)) == member


@given(st.data())
def test_any_single_typo_is_caught(data: st.DataObject) -> None:
    code = codes.encode_member(codes.MemberCode("bob.desk", REAL))
    i = data.draw(st.integers(0, len(code) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    if replacement == code[i]:
        return
    typo = code[:i] + replacement + code[i + 1 :]
    with pytest.raises(DomainError) as info:
        codes.decode_member(typo)
    assert info.value.reason == "invalid_code"


@pytest.mark.parametrize("cut", [1, 5, 20, 40, 80])
def test_truncated_codes_say_so(cut: int) -> None:
    code = codes.encode_member(codes.MemberCode("bob.desk", REAL))
    with pytest.raises(DomainError) as info:
        codes.decode_member(code[:-cut])
    assert "cut off" in info.value.detail or "incomplete" in info.value.detail


def test_wrong_kind_and_garbage() -> None:
    invite = codes.encode_invite(
        codes.InviteCode("abcdefghijklmnopqrstuvwxya", "Core", "lead.box", REAL, ("tcp://h:1",))
    )
    with pytest.raises(DomainError, match="invite code, not a pairing code"):
        codes.decode_member(invite)
    with pytest.raises(DomainError, match="should start with KM"):
        codes.decode_member("hello world")
    with pytest.raises(DomainError, match="no pairing code"):
        codes.decode_member("  -- ")
    decoded = codes.decode_invite(codes.grouped(invite).lower())
    assert decoded.team_name == "Core" and decoded.addresses == ("tcp://h:1",)


OTHER = deviceid.from_bytes(bytes(range(32)))
TEAM = "abcdefghijklmnopqrstuvwxya"


def test_keeper_and_serve_codes_round_trip_and_are_told_apart() -> None:
    keeper = codes.KeeperCode(OTHER, ("tcp://198.51.100.7:22000",))
    text = codes.encode_keeper(keeper)
    assert text.startswith("KK")
    assert codes.decode_keeper(text) == keeper
    serve = codes.ServeCode(REAL, "karma-" + "a" * 26, ("tcp://192.0.2.1:22000",))
    served = codes.encode_serve(serve)
    assert codes.decode_serve(served) == serve
    with pytest.raises(DomainError, match="this is a keeper code, not a keeper serve code"):
        codes.decode_serve(text)
    with pytest.raises(DomainError, match="this is a keeper serve code, not an invite code"):
        codes.decode_invite(served)
    with pytest.raises(DomainError, match="checksum"):
        codes.decode_keeper(text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:])
    with pytest.raises(DomainError, match="folder id"):
        codes.decode_serve(codes.encode_serve(codes.ServeCode(REAL, "not-a-folder")))


def test_an_invite_carries_the_keeper_and_its_join_secret() -> None:
    keeper = codes.InviteKeeper(OTHER, ("tcp://198.51.100.7:22000",), bytes(range(16)))
    invite = codes.InviteCode(TEAM, "Core", "alice.laptop", REAL, (), keeper)
    decoded = codes.decode_invite(codes.encode_invite(invite))
    assert decoded == invite
    assert "join_secret" not in repr(decoded.keeper)
    plain = codes.InviteCode(TEAM, "Core", "alice.laptop", REAL)
    assert codes.decode_invite(codes.encode_invite(plain)).keeper is None
