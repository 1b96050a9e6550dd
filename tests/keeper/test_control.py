"""The leader's control and key files: what the keeper and members may believe."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from karmad import codec, deviceid
from karmad.domain import new_team
from karmad.keeper import control as ctl
from karmad.keeper.epoch import advance
from karmad.keeper.plan import HeldKind, KeeperPlan, keeper_folder_id, plan
from karmad.trust import keys, signed, wrap
from tests.support.identities import made_identity

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TEAM = "abcdefghijklmnopqrstuvwxyz"
LEADER = keys.device_key_from_pem(*made_identity("ecdsa-p384"))
MEMBER = keys.device_key_from_pem(*made_identity("ed25519"))
KEEPER = deviceid.from_bytes(b"\x07" * 32)
FOLDER = keeper_folder_id(TEAM)


def _plan() -> KeeperPlan:
    team = new_team(TEAM, "core", "lead.hq", LEADER.device_id, NOW)
    team = team.add_member("bob.box", MEMBER.device_id, NOW)
    return plan(team, KEEPER, advance(None, team, os.urandom(32)))


def _read(data: bytes, **overrides: str) -> ctl.Control:
    where = {"folder": FOLDER, "leader": LEADER.device_id, "keeper": KEEPER}
    where.update(overrides)
    return ctl.read_control(data, **where)


def test_the_keeper_reads_back_exactly_what_it_must_hold() -> None:
    keeper_plan = _plan()
    control = ctl.control_of(keeper_plan, seq=4)
    data = ctl.sign_control(LEADER, control, folder=FOLDER)
    assert _read(data) == control
    assert ctl.held_of(_read(data)) == dict(keeper_plan.held)


def test_repair_requests_travel_with_the_folder_they_concern() -> None:
    keeper_plan = _plan()
    content = next(f for f, h in keeper_plan.held.items() if h.kind is HeldKind.CONTENT)
    control = ctl.control_of(keeper_plan, seq=2, repairs={content: 3})
    read = _read(ctl.sign_control(LEADER, control, folder=FOLDER))
    assert {f.id: f.repair for f in read.folders if f.repair} == {content: 3}
    negative = [dict(codec.decode_any(codec.encode_json(f)), repair=-1) for f in control.folders]
    with pytest.raises(ctl.InvalidControl, match="repair"):
        _read(_signed_variant(folders=negative))


def test_only_the_leaders_control_file_for_this_keeper_and_folder_is_believed() -> None:
    control = ctl.control_of(_plan(), seq=1)
    forged = ctl.sign_control(MEMBER, control, folder=FOLDER)
    with pytest.raises(ctl.InvalidControl, match="not signed by the leader"):
        _read(forged)
    genuine = ctl.sign_control(LEADER, control, folder=FOLDER)
    with pytest.raises(ctl.InvalidControl, match="another leader or keeper"):
        _read(genuine, keeper=deviceid.from_bytes(b"\x08" * 32))
    other = keeper_folder_id("bbbbbbbbbbbbbbbbbbbbbbbbbb")
    with pytest.raises(ctl.InvalidControl, match="not signed"):
        _read(genuine, folder=other)


def _signed_variant(**changes: object) -> bytes:
    control = ctl.control_of(_plan(), seq=1)
    raw = codec.decode_any(codec.encode_json(control))
    raw.update(changes)
    payload = codec.encode_json(raw)
    return signed.sign(LEADER, payload, kind=ctl.CONTROL_KIND, folder=FOLDER, path="control")


def test_a_control_file_that_would_chain_keepers_or_lie_about_its_folder_is_refused() -> None:
    control = ctl.control_of(_plan(), seq=1)
    folders = [codec.decode_any(codec.encode_json(f)) for f in control.folders]
    chained = [
        dict(f, devices=[*f["devices"], KEEPER]) if f["kind"] == HeldKind.CONTENT else f
        for f in folders
    ]
    with pytest.raises(ctl.InvalidControl, match="keeper is listed"):
        _read(_signed_variant(folders=chained))
    without_control = [f for f in folders if f["kind"] != HeldKind.CONTROL]
    with pytest.raises(ctl.InvalidControl, match="folder it came in"):
        _read(_signed_variant(folders=without_control))
    duplicated = [*folders, folders[0]]
    with pytest.raises(ctl.InvalidControl, match="twice"):
        _read(_signed_variant(folders=duplicated))
    future = [dict(f, generation=9) if f["kind"] == HeldKind.CONTENT else f for f in folders]
    with pytest.raises(ctl.InvalidControl, match="past epoch"):
        _read(_signed_variant(folders=future))
    with pytest.raises(ctl.InvalidControl, match="not a valid control"):
        _read(_signed_variant(folders="nope"))
    with pytest.raises(ctl.InvalidControl, match="format"):
        _read(_signed_variant(format=2))


def test_a_member_opens_its_sealed_secret_from_the_key_file() -> None:
    secret = os.urandom(32)
    join = wrap.new_join_secret()
    sealed = wrap.seal_for_join(join, secret, scope=FOLDER, device=MEMBER.device_id, epoch=1)
    data = ctl.sign_keys(LEADER, ctl.Keys(seq=1, epoch=1, sealed=[sealed]), folder=FOLDER)
    keys_file = ctl.read_keys(data, folder=FOLDER, leader=LEADER.device_id)
    (mine,) = [s for s in keys_file.sealed if s.device == MEMBER.device_id]
    opened = wrap.open_sealed(mine, scope=FOLDER, device=MEMBER.device_id, join_secret=join)
    assert opened == secret
    with pytest.raises(ctl.InvalidControl):
        ctl.read_keys(data, folder=FOLDER, leader=MEMBER.device_id)


def test_oversized_files_are_refused_before_anything_is_parsed() -> None:
    with pytest.raises(ctl.InvalidControl, match="larger"):
        _read(b"x" * (ctl.MAX_BYTES + 1))
